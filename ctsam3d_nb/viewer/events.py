"""What the viewer's figures and widgets do when used: mouse presses and scrolls on the views, the slice
sliders, the window and opacity controls, the object list and the export button.

:class:`ViewerEvents` is a mixin of :class:`~.slice_viewer.SliceViewer`: each handler reads the event,
changes the viewer's public state (``cursor``, the predictor through :meth:`SliceViewer.click`) and lets
``refresh_views`` / ``_draw`` show it. Errors go to the status line (widget callbacks show no traceback).
"""
from __future__ import annotations

import html

import numpy as np

from . import exports
from .controls import guarded, window_range, window_readout
from .geometry import VIEWS, data_to_voxel, view_layout

__all__ = ["ViewerEvents"]


class ViewerEvents:
    """The event handlers of :class:`~.slice_viewer.SliceViewer` (wired to its figures and widgets there)."""
    def _on_press(self, view, event):
        """Mouse press on a view: left = the ± toggle's mode, right = exclude, middle = move."""
        if event.inaxes is not self.axes[view] or event.xdata is None:
            return
        toolbar = getattr(getattr(event, "canvas", None), "toolbar", None)
        if toolbar is not None and str(getattr(toolbar, "mode", "")):
            return  # zoom / pan is active: that click is for the toolbar
        try:
            voxel = data_to_voxel(self.orient, view, self.cursor[view_layout(view)[0]], event.xdata, event.ydata)
            button = int(getattr(event, "button", 1) or 1)
            mode = self.mode.value if self.predictor is not None else "move"
            if mode == "move" or button == 2:
                self.goto(voxel)
                self.status.value = f"crosshair at (z, y, x) = {voxel}, HU {self.ct.array[voxel]}"
            else:
                self.click(voxel, positive=(button != 3 and mode == "+"))
        except Exception as e:  # shown in the status line: widget callbacks have no visible traceback
            self._error(e)

    def _on_scroll(self, view, event):
        if event.inaxes is self.axes[view]:
            slider = self.sliders[view]
            slider.value = int(np.clip(slider.value + (1 if event.button == "up" else -1), 0, slider.max))

    def _on_slider(self, view, change):
        self.cursor[view_layout(view)[0]] = int(change["new"])
        if not self._hold:
            self.refresh_views()  # this view's slice, and the crosshair lines of the other two

    def _on_window(self, change):
        if change["new"] != "custom":
            self.window_range.value = window_range(change["new"])

    def _on_range(self, change):
        lo, hi = change["new"]
        for im in self.images.values():
            im.set_clim(lo, max(hi, lo + 1))
        self.window_readout.value = window_readout(lo, hi)
        preset = self.window.value
        # the browser's slider sends back values off by float rounding: compare to the step
        if preset != "custom" and not np.allclose(change["new"], window_range(preset), atol=0.5):
            self.window.value = "custom"
        if "old" in change:  # not the initial call
            for view in VIEWS:
                self._draw(view)

    def _on_opacity(self, change):
        self.alpha = float(change["new"])
        self._lut[1:, 3] = int(round(255 * self.alpha))
        self.refresh_views()

    def _on_select(self, change):
        if not self._hold and change["new"] is not None and change["new"] != self.predictor.current:
            guarded(self.select_object, self._error)(change["new"])

    def _on_export(self, _):
        path, what = exports.export_by_name(self, self.export_name.value, self.overwrite.value)
        self.status.value = f"saved {what}: {html.escape(str(path))}"
