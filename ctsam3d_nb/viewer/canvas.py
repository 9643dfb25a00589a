"""The viewers' matplotlib figures: an ipympl canvas (clicks reach Python) or an Agg canvas (PNG).

``ipympl_active()`` tells which one a notebook gets by default (``%matplotlib widget``).
``new_view`` builds one view's figure and artists (image, overlay, crosshair, click markers,
title); ``show_slice`` updates them in place with ``set_data`` (mpl-interactions' pattern:
the figure is built once, a click only changes the artists' data). Plain functions, used by
:class:`~ctsam3d_nb.viewer.SliceViewer` and tested without a display.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import ipywidgets as W
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.lines import Line2D
from matplotlib.text import Text

from .geometry import view_layout
from .layout import ViewSize

__all__ = ["IPYMPL_BACKENDS", "ViewArtists", "ipympl_active", "new_figure", "new_view", "png_bytes", "show_slice"]

IPYMPL_BACKENDS = ("module://ipympl.backend_nbagg", "widget", "ipympl")
TOOLITEMS = ("Home", "Pan", "Zoom")  # a short toolbar: it must fit the strip above a narrow view
EDGE_LETTERS = {"axial": "RLAP", "coronal": "RLSI", "sagittal": "APSI"}  # left, right, top, bottom
CROSSHAIR = dict(color="#ffd54f", lw=0.7, alpha=0.7)


def ipympl_active() -> bool:
    """True if matplotlib's backend is ipympl (``%matplotlib widget``), so canvas clicks reach Python."""
    return matplotlib.get_backend() in IPYMPL_BACKENDS


def new_figure(figsize, interactive: bool):
    """A Figure with an ipympl canvas (interactive) or an Agg canvas (rendered to PNG)."""
    with plt.ioff():  # never auto-displayed, never registered with pyplot (no leak, no double canvas)
        fig = Figure(figsize=figsize, dpi=100)
        if interactive:
            from ipympl.backend_nbagg import Canvas, FigureManager  # only where a notebook front end runs

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
            FigureCanvasAgg(fig)
    return fig


@dataclass
class ViewArtists:
    """What one view draws; :func:`show_slice` changes their data, never the figure.

    Attributes:
        figure, axes: the view's figure and its image axes.
        image: the CT slice (grey, clim = the HU window).
        overlay: the labels of that slice as RGBA ``(rows, cols, 4)`` uint8.
        crosshair: ``(vertical, horizontal)`` lines through the crosshair voxel.
        markers: ``(positive, negative)`` click markers ("+" green, "_" red).
        title: the view's name and slice number, in the strip above the image.
    """

    figure: Figure
    axes: Axes
    image: AxesImage
    overlay: AxesImage
    crosshair: tuple[Line2D, Line2D]
    markers: tuple[Line2D, Line2D]
    title: Text


def new_view(view: str, size: ViewSize, image: np.ndarray, interactive: bool) -> ViewArtists:
    """The figure of one view, sized by :mod:`.layout`, showing ``image`` (a 2D slice in HU).

    Args:
        view: "axial", "coronal" or "sagittal".
        size: the view's :class:`~ctsam3d_nb.viewer.layout.ViewSize`.
        image: the first slice ``(rows, cols)`` (:func:`~ctsam3d_nb.viewer.geometry.view_slice`).
        interactive: an ipympl canvas (clicks reach Python) or an Agg one (PNG).
    """
    origin = view_layout(view)[3]
    fig = new_figure(size.figsize, interactive)
    ax = fig.add_axes(size.axes_rect)
    ax.set_axis_off()
    # the figure's pixels are laid out for this view's aspect (and stretch): fill the axes
    kw = dict(origin=origin, aspect="auto", interpolation="nearest")
    im = ax.imshow(image, cmap="gray", **kw)
    overlay = ax.imshow(np.zeros(image.shape + (4,), np.uint8), **kw)
    for layer in (im, overlay):
        layer.set_mouseover(False)  # the hover read-out is the viewer's format_coord: voxel and HU
    crosshair = (ax.axvline(0, **CROSSHAIR), ax.axhline(0, **CROSSHAIR))
    markers = (ax.plot([], [], "+", color="#00e000", ms=11, mew=2.5)[0],
               ax.plot([], [], "_", color="#ff3030", ms=11, mew=2.5)[0])
    for (x, y), letter in zip(((0.03, 0.5), (0.97, 0.5), (0.5, 0.96), (0.5, 0.04)), EDGE_LETTERS[view]):
        ax.text(x, y, letter, transform=ax.transAxes, color="#ffd54f", fontsize=8, ha="center", va="center")
    if size.stretched:
        sx, sy = size.stretch
        note = f"stretched ×{max(sx, sy):.1f} {'↕' if sy >= sx else '↔'}"
        ax.text(0.98, 0.04, note, transform=ax.transAxes, color="#80deea", fontsize=7, ha="right", va="bottom",
                bbox=dict(facecolor="black", alpha=0.55, pad=1.5, linewidth=0))
    # the strip above the image: the view's name and slice (the toolbar sits at its right end)
    title = fig.text(6 / size.figure_px[0], 1 - size.strip_px / 2 / size.figure_px[1], view, fontsize=9,
                     va="center", ha="left")
    return ViewArtists(fig, ax, im, overlay, crosshair, markers, title)


def show_slice(art: ViewArtists, image: np.ndarray, overlay: np.ndarray, cross_xy, positive_xy: np.ndarray,
               negative_xy: np.ndarray, title: str):
    """Put a slice on a view with ``set_data`` (no new artists; call ``draw_idle`` or :func:`png_bytes` after).

    Args:
        art: the view's artists (:func:`new_view`).
        image: the slice ``(rows, cols)`` in HU.
        overlay: RGBA ``(rows, cols, 4)`` uint8 of its labels.
        cross_xy: ``(xdata, ydata)`` of the crosshair.
        positive_xy, negative_xy: ``(N, 2)`` data coordinates of the click markers on this slice.
        title: the text of the strip above the image.
    """
    art.title.set_text(title)
    art.image.set_data(image)
    art.overlay.set_data(overlay)
    x, y = cross_xy
    art.crosshair[0].set_xdata([x, x])
    art.crosshair[1].set_ydata([y, y])
    for line, pts in zip(art.markers, (positive_xy, negative_xy)):
        line.set_data(pts[:, 0], pts[:, 1])


def png_bytes(fig: Figure) -> bytes:
    """The figure rendered as a PNG (for the static views, where clicks cannot reach Python)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
