"""The control widgets of :class:`~ctsam3d_nb.viewer.SliceViewer` (a mixin).

Sliders, window/level presets, object selector, history and export buttons, coordinate
entry, the legend and the status line (with a hint before the first click). Each handler
calls the viewer's public methods, so a button does exactly what the same call from code
does. Rows wrap instead of being cut when the notebook is narrow.
"""
from __future__ import annotations

import functools
import html

import numpy as np

from ..anatomy import names
from ..render import WINDOWS
from .exports import FIGURE_FORMATS
from .geometry import VIEWS, view_layout

_NO_CLICKS_MSG = (
    "Clicks on the images cannot reach Python here (matplotlib backend: <code>{backend}</code>). "
    "Run <code>%matplotlib widget</code> (needs <code>ipympl</code>; in Colab first "
    "<code>from google.colab import output; output.enable_custom_widget_manager()</code>) and create "
    "the viewer again, or type voxel coordinates (z, y, x) below.")


class ControlsMixin:
    """Widget construction and callbacks; mixed into ``SliceViewer``."""

    # ------------------------------------------------------------------ widgets
    @staticmethod
    def _window_range(window):
        """``(low, high)`` HU of a preset name or ``(level, width)``; a clear error for anything else."""
        if isinstance(window, str):
            if window not in WINDOWS:
                raise ValueError(f"unknown window {window!r}; presets are {', '.join(WINDOWS)}, or pass "
                                 "(level, width) in HU")
            level, width = WINDOWS[window]
        else:
            try:
                level, width = (float(v) for v in window)
            except (TypeError, ValueError):
                raise ValueError(f"window must be a preset name ({', '.join(WINDOWS)}) or (level, width) in HU, "
                                 f"got {window!r}") from None
            if not width > 0:
                raise ValueError(f"the window width must be positive, got (level, width) = {tuple(window)}")
        return float(level - width / 2), float(level + width / 2)

    @staticmethod
    def _window_label(name):
        level, width = WINDOWS[name]
        return f"{name.replace('_', ' ')}  (W {width} / L {level})"

    def _build_widgets(self, window):
        import ipywidgets as W

        wrap = functools.partial(W.Layout, flex_flow="row wrap", align_items="center")
        self.sliders, boxes, self._pngs = {}, [], {}
        for view in VIEWS:
            s = view_layout(view)[0]
            fig_w = self.plan[view].figure_px[0]
            self.sliders[view] = W.IntSlider(value=self.cursor[s], min=0, max=self.orient.shape[s] - 1,
                                             description=view, continuous_update=self.interactive,
                                             style={"description_width": "initial"},
                                             layout=W.Layout(width=f"{fig_w}px"))
            self.sliders[view].observe(functools.partial(self._on_slider, view), "value")
            if not self.interactive:
                self._pngs[view] = W.Image(format="png")
            boxes.append(W.VBox([self._pngs.get(view, self.figures[view].canvas), self.sliders[view]],
                                layout=W.Layout(flex="0 0 auto", margin="0 4px 4px 0")))
        ends = np.array([self._window_range(n) for n in WINDOWS] + [self._window_range(window)])
        self.window = W.Dropdown(options=[(self._window_label(n), n) for n in WINDOWS] + [("custom", "custom")],
                                 value=window if isinstance(window, str) else "custom", description="window",
                                 layout=W.Layout(width="290px"))
        # the slider's own read-out box is too narrow for "-1024 – 3071": a label of its own instead
        self.window_range = W.FloatRangeSlider(
            value=self._window_range(window), min=float(min(-1024, ends.min(), np.min(self.ct.array))),
            max=float(max(3071, ends.max(), np.max(self.ct.array))), step=1, description="HU", readout=False,
            continuous_update=self.interactive, layout=W.Layout(width="220px"))
        self.window_readout = W.HTML(layout=W.Layout(width="auto", min_width="150px"))
        self.window_readout.add_class("ctsam3d-window-readout")
        self.opacity = W.FloatSlider(value=self.alpha, min=0, max=1, step=0.05, description="overlay",
                                     continuous_update=False, layout=W.Layout(width="230px"))
        self.window.observe(self._on_window, "value")
        self.window_range.observe(self._on_range, "value")
        self.opacity.observe(self._on_opacity, "value")
        self._on_range({"new": self.window_range.value})
        self.legend = W.HTML(value="")
        self.legend.add_class("ctsam3d-legend")
        self.status = W.HTML(value="")
        self.status.add_class("ctsam3d-status")
        rows = [W.HBox(boxes, layout=wrap(align_items="flex-start")), self.legend,
                W.HBox([self.window, self.window_range, self.window_readout, self.opacity], layout=wrap())]
        if self.predictor is not None:
            rows += [W.HBox(r, layout=wrap()) for r in self._predictor_widgets(W)]
        if not self.interactive:
            import matplotlib

            self.message = W.HTML(_NO_CLICKS_MSG.format(backend=html.escape(matplotlib.get_backend())))
            self.message.add_class("ctsam3d-no-clicks")
            rows += [self.message, self._coordinate_widgets(W)]
        self.children = rows + [self.status]

    def _hint(self) -> str:
        """What to do, for the status line before the first click."""
        if not self.interactive:
            return ("type a voxel (z, y, x) below and press <b>go to</b>" +
                    (", <b>add +</b> or <b>add −</b>" if self.predictor is not None else ""))
        if self.predictor is None:
            return "click: move the crosshair · wheel or slider: change slice"
        return ("<b>left click</b>: add (include) · <b>right click</b>: remove (exclude) · middle click or "
                "<i>move</i>: crosshair only · wheel or slider: change slice")

    def _update_legend(self):
        items = []
        for _, name, (r, g, b), current in self._legend_entries():
            label = html.escape(name)
            items.append(f"<span style='white-space:nowrap'><span style='color:#{r:02x}{g:02x}{b:02x};"
                         f"font-size:1.2em'>■</span> " + (f"<b>{label}</b>" if current else label) + "</span>")
        self.legend.value = " &nbsp; ".join(items) if items else "<i>no objects yet</i>"

    def _predictor_widgets(self, W):
        btn = functools.partial(W.Button, layout=W.Layout(width="auto"))
        self.mode = W.ToggleButtons(options=[("+ include", "+"), ("− exclude", "-"), ("move", "move")],
                                    tooltips=["left click: positive prompt (right click: negative)",
                                              "left click: negative prompt (for trackpads)",
                                              "clicks only move the crosshair"], style={"button_width": "95px"})
        self.object_select = W.Dropdown(options=[], description="object")
        self.object_select.observe(self._on_select, "value")
        self.object_name = W.Combobox(options=list(names()), placeholder="structure, e.g. liver",
                                      layout=W.Layout(width="200px"))
        self.new_button = btn(description="new object", icon="plus")
        self.undo_button = btn(description="undo", icon="undo")
        self.redo_button = btn(description="redo", icon="repeat")
        self.reset_button = btn(description="reset object", icon="trash")
        self.export_name = W.Text(value="segmentation.nii.gz", description="file",
                                  tooltip="the suffix picks what is written: .nii.gz/.nrrd/.mha label map, "
                                          ".stl/.ply/.obj mesh of the current object, .png/.pdf/.svg figure")
        self.overwrite = W.Checkbox(value=False, description="overwrite", indent=False, layout=W.Layout(width="100px"))
        self.export_button = btn(description="export", icon="save")
        for b, fn in ((self.new_button, lambda _: self.new_object(self.object_name.value.strip())),
                      (self.undo_button, lambda _: self.undo()), (self.redo_button, lambda _: self.redo()),
                      (self.reset_button, lambda _: self.reset()), (self.export_button, self._on_export)):
            b.on_click(self._guarded(fn))
        return [[self.mode, self.object_select, self.object_name, self.new_button],
                [self.undo_button, self.redo_button, self.reset_button, self.export_name, self.overwrite,
                 self.export_button]]

    def _coordinate_widgets(self, W):
        self.coord_boxes = [W.IntText(value=v, description=a, layout=W.Layout(width="130px"),
                                      style={"description_width": "15px"}) for v, a in zip(self.voxel, "zyx")]
        typed = lambda: [box.value for box in self.coord_boxes]  # noqa: E731
        actions = [("go to", lambda _: self.goto(typed()))]
        if self.predictor is not None:
            actions += [("add +", lambda _: self.click(typed(), True)),
                        ("add −", lambda _: self.click(typed(), False))]
        buttons = [W.Button(description=d, layout=W.Layout(width="auto")) for d, _ in actions]
        for b, (_, fn) in zip(buttons, actions):
            b.on_click(self._guarded(fn))
        return W.HBox(self.coord_boxes + buttons, layout=W.Layout(flex_flow="row wrap"))

    def _guarded(self, fn):
        """A widget callback whose errors appear in the status line (else they vanish into the log)."""
        @functools.wraps(fn)
        def run(*args):
            try:
                fn(*args)
            except Exception as e:
                self._error(e)
        return run

    def _status(self, text_html):
        self.status.value = text_html

    def _error(self, e):
        self.status.value = f"<span style='color:#c62828'>⚠ {html.escape(str(e))}</span>"

    def _on_window(self, change):
        if change["new"] != "custom":
            self.window_range.value = self._window_range(change["new"])

    def _on_range(self, change):
        lo, hi = change["new"]
        for im in self.images.values():
            im.set_clim(lo, max(hi, lo + 1))
        self.window_readout.value = (f"{lo:.0f} … {hi:.0f} HU &nbsp;<span style='opacity:.7'>"
                                     f"(W {hi - lo:.0f} / L {(lo + hi) / 2:.0f})</span>")
        preset = self.window.value
        # the browser's slider sends back values off by float rounding: compare to the step
        if preset != "custom" and not np.allclose(change["new"], self._window_range(preset), atol=0.5):
            self.window.value = "custom"
        if "old" in change:  # not the initial call
            for view in VIEWS:
                self._draw(view)

    def _on_opacity(self, change):
        self.alpha = float(change["new"])
        self._lut[1:, 3] = int(round(255 * self.alpha))
        self._redraw_all()

    def _sync_objects(self):
        p = self.predictor
        self._hold = True
        try:
            self.object_select.options = [(f"{i + 1}. {o.name}", i) for i, o in enumerate(p.objects)]
            self.object_select.value = p.current if p.objects else None
        finally:
            self._hold = False

    def _on_select(self, change):
        if not self._hold and change["new"] is not None and change["new"] != self.predictor.current:
            self._guarded(self.select_object)(change["new"])

    def _on_export(self, _):
        """The suffix of the file name picks what is written: a label map, a mesh or the figure."""
        from ..meshes import MESH_SUFFIXES

        name = self.export_name.value.strip()
        suffix = name.lower().rsplit(".", 1)[-1] if "." in name else ""
        try:
            if f".{suffix}" in MESH_SUFFIXES:
                path, what = self.export_mesh(name, overwrite=self.overwrite.value), "mesh of the current object"
            elif suffix in FIGURE_FORMATS:
                path, what = self.save_figure(name, overwrite=self.overwrite.value), "figure"
            else:
                path, what = self.export(name, overwrite=self.overwrite.value), "label map"
        except FileExistsError as e:
            raise FileExistsError(f"{e.args[0].split(';')[0]}: tick 'overwrite' to replace it, or change the "
                                  "file name") from None
        self._status(f"saved {what}: {html.escape(str(path))}")
