"""The viewers' matplotlib figures: an ipympl canvas (clicks reach Python) or an Agg canvas (PNG).

``ipympl_active()`` tells which one a notebook gets by default (``%matplotlib widget``).
"""
from __future__ import annotations

import ipywidgets as W

__all__ = ["IPYMPL_BACKENDS", "ipympl_active", "new_figure"]

IPYMPL_BACKENDS = ("module://ipympl.backend_nbagg", "widget", "ipympl")
TOOLITEMS = ("Home", "Pan", "Zoom")  # a short toolbar: it must fit the strip above a narrow view


def ipympl_active() -> bool:
    """True if matplotlib's backend is ipympl (``%matplotlib widget``), so canvas clicks reach Python."""
    import matplotlib

    return matplotlib.get_backend() in IPYMPL_BACKENDS


def new_figure(figsize, interactive: bool):
    """A Figure with an ipympl canvas (interactive) or an Agg canvas (rendered to PNG)."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    with plt.ioff():  # never auto-displayed, never registered with pyplot (no leak, no double canvas)
        fig = Figure(figsize=figsize, dpi=100)
        if interactive:
            from ipympl.backend_nbagg import Canvas, FigureManager

            canvas = Canvas(fig)
            FigureManager(canvas, 0)  # gives the canvas its toolbar (zoom, pan)
            canvas.header_visible = canvas.resizable = False
            canvas.capture_scroll = True  # the wheel changes slices, not the page
            # ipympl draws its toolbar over the canvas (position: absolute); at the top it covers the
            # strip the layout keeps free above the image, and it stays visible (no fading in over the image)
            canvas.toolbar_position, canvas.toolbar_visible = "top", "visible"
            canvas.toolbar.toolitems = [t for t in canvas.toolbar.toolitems if t[0] in TOOLITEMS]
            canvas.layout = W.Layout(flex="0 0 auto")
        else:
            from matplotlib.backends.backend_agg import FigureCanvasAgg

            FigureCanvasAgg(fig)
    return fig
