"""`SliceViewer`: axial, coronal and sagittal views of a CT, click to segment.

    viewer = SliceViewer(ct, predictor)       # in a notebook cell, after %matplotlib widget
    viewer                                    # left click = include, right click = exclude
    viewer.click((z, y, x), positive=True)    # the same thing from code

Views are the canonical LPS slices (see :mod:`.geometry`): radiological
convention whatever the file's axis order, pixels with their physical shape.
Every click - mouse, coordinate boxes or code - goes through :meth:`SliceViewer.click`;
the display is then updated by ``set_data`` on the three current slices only.

One class over plain functions (mpl-interactions' ``image_segmenter`` is the model): an event
handler changes public state (the predictor, ``cursor``), then ``refresh_views`` puts the slices on the
figures (``set_data``) and ``draw_idle`` shows them. The pixel ↔ voxel geometry is in
:mod:`.geometry`, the figures in :mod:`.canvas`, the view sizes in :mod:`.layout`, the widgets and
status texts in :mod:`.controls`, the event handlers in :mod:`.events`, what is written to disk in
:mod:`.exports`.

The viewer is an ``ipywidgets.VBox``: display it, or put it in your own layout
(``HBox([viewer, view3d])``).
"""
from __future__ import annotations

import functools
import html

import ipywidgets as W
import matplotlib
import numpy as np
from IPython.display import display

from ..io import as_ct
from ..session import ct_fingerprint
from ..settings import is_number
from ..volume import CTVolume
from .canvas import ipympl_active, new_view, png_bytes, show_slice
from .controls import (coordinate_boxes, coordinate_row, error_html, guarded, hint, legend_html, no_clicks_html,
                       predictor_controls, slice_sliders, status_html, window_controls, window_range, wrap_row,
                       zoom_note)
from .events import ViewerEvents
from .exports import ViewerExports
from .geometry import (VIEWS, Orientation, canonical_to_data, check_labels, click_points, data_to_voxel,
                       label_colors, labels_legend, predictor_labels, predictor_legend, view_layout, view_slice)
from .layout import DEFAULT_WIDTH_PX, MAX_HEIGHT_PX, MIN_SIDE_PX, viewer_plan

__all__ = ["SliceViewer", "ipympl_active", "zoom_note"]


class SliceViewer(ViewerEvents, ViewerExports, W.VBox):
    """Three orthogonal views of a CT with masks, crosshair, window presets and click prompts.

    An ``ipywidgets.VBox``: the last expression of a cell displays it, and it can sit in any
    ipywidgets layout (``HBox([viewer, view3d])``).

    Args:
        ct: the CT (any axis order; shown in canonical LPS orientation): a CTVolume, a path or a
            SimpleITK image (read by ``load_ct``). A numpy array needs its spacing: ``load_ct(array, spacing=...)``.
        predictor: a :class:`~ctsam3d_nb.predictor.Predictor`; its volume is set to ``ct`` if
            unset. Without one the viewer only navigates and shows ``labels``.
        labels: optional label map or bool mask on ``ct``'s grid ``(z, y, x)`` (plain viewer).
        window: a name in ``render.WINDOWS`` (soft_tissue, lung, bone, liver, brain, mediastinum,
            model) or ``(level, width)`` in HU.
        interactive: ipympl canvases that receive clicks; default: whether the ipympl backend
            is active. Otherwise the views are PNG images and coordinate boxes replace clicks.
        volume_view: a :class:`~ctsam3d_nb.viewer.VolumeView` to update after every change.
        width: CSS pixels available for the three views side by side (default 820: the notebook
            of a 1280-px window with JupyterLab's file browser open). Narrower output areas wrap
            the views onto a new line; they are never cut or scrolled.
        max_height: the tallest image, in pixels.
        min_side: no image side is drawn shorter: a thin scan's coronal/sagittal strip is stretched
            to this height (the view says "stretched ×k") so that it can be clicked.
        alpha: overlay opacity 0..1.
        label_names: ``{label id: name}`` for the legend of ``labels`` (default: the ontology names).

    Attributes:
        ct, predictor, orient, plan: the CT, the predictor (or None), its :class:`Orientation` and view sizes.
        cursor: the crosshair as a canonical index ``(z', y', x')`` (:attr:`voxel` gives CT ``(z, y, x)``).
        views: ``{view: ViewArtists}``; ``figures``, ``axes``, ``images``, ``overlays``, ``crosshair``,
            ``markers`` and ``titles`` are the same artists by kind (``viewer.images["axial"]``).
        sliders, window, window_range, window_readout, opacity, legend, status: the widgets; with a
            predictor also ``mode``, ``object_select``, ``object_name``, the buttons (``new_button``,
            ``undo_button``, ``redo_button``, ``reset_button``, ``export_button``), ``export_name`` and
            ``overwrite``; in static mode ``message`` and the ``coord_boxes``.

    Example:
        >>> viewer = SliceViewer(ct, Predictor(load_model("nano")))   # doctest: +SKIP
        >>> viewer.click((60, 250, 200)); viewer.predictor.mask.sum()   # doctest: +SKIP
        >>> HBox([viewer, VolumeView(viewer.predictor)])               # doctest: +SKIP
    """

    def __init__(self, ct: CTVolume, predictor=None, labels=None, window="soft_tissue", interactive=None,
                 volume_view=None, width: int = DEFAULT_WIDTH_PX, max_height: int = MAX_HEIGHT_PX,
                 min_side: int = MIN_SIDE_PX, alpha: float = 0.45, label_names: dict | None = None):
        ct = as_ct(ct, "SliceViewer")
        if predictor is not None and labels is not None:
            raise ValueError("pass either predictor= (interactive segmentation) or labels= (plain viewer), not both")
        if isinstance(predictor, np.ndarray):
            raise TypeError("the second argument is the predictor; to show a label map or mask, pass it by name: "
                            "SliceViewer(ct, labels=labels)")
        if predictor is not None and not all(hasattr(predictor, a) for a in ("set_volume", "click", "objects")):
            raise TypeError(f"predictor must be a Predictor, e.g. Predictor(load_model('nano')), got "
                            f"{type(predictor).__name__}")
        if not (is_number(alpha) and 0 <= alpha <= 1):
            raise ValueError(f"alpha is the overlays' opacity, from 0 (hidden) to 1 (opaque), got {alpha!r}")
        if predictor is not None:
            if getattr(predictor, "ct", None) is None:
                predictor.set_volume(ct)
            elif predictor.ct is not ct and ct_fingerprint(predictor.ct) != ct_fingerprint(ct):
                raise ValueError("the predictor holds another CT (its geometry or voxels differ from this one): "
                                 "clicks would segment a scan other than the one shown. Call "
                                 "predictor.set_volume(ct) first, or pass the CT it was set up with")
        window_range(window)  # validates it before anything is built
        orient = Orientation.from_ct(ct)
        plan = viewer_plan(orient, width, max_height, min_side)  # validates the sizes
        super().__init__()
        self.add_class("ctsam3d-viewer")
        self.ct, self.predictor, self.volume_view = ct, predictor, volume_view
        self._predictor_ct = getattr(predictor, "ct", None)  # the predictor's CT as checked against this one
        self.orient, self.plan = orient, plan
        self.interactive = ipympl_active() if interactive is None else bool(interactive)
        self.alpha = float(alpha)
        self._hu = self.orient.to_canonical(ct.array)  # a view: no copy of the CT
        self.cursor = [n // 2 for n in self.orient.shape]  # canonical (z', y', x') of the crosshair
        self._hold = False  # True while several widgets change at once: draw once, at the end
        self._labels = self._labels_c = None  # label map on the CT grid, and its canonical view
        self._colors, self._names, self._lut, self._present = {}, {}, label_colors(2, alpha=self.alpha), ()
        if labels is not None:
            self.set_labels(labels, names=label_names, _draw=False)
        # the static views are PNG images of Agg figures; interactive ones are the ipympl canvases
        self._pngs = {} if self.interactive else {v: W.Image(format="png") for v in VIEWS}
        self._build_views()
        self._build_widgets(window)
        self.status.value = hint(self.interactive, predictor is not None)
        if predictor is not None and predictor.objects:
            self._after_change(hint(self.interactive, True), draw=False)
        self.legend.value = legend_html(self.legend_entries)
        self.refresh_views()

    # ------------------------------------------------------------------ public API
    @property
    def widget(self):
        """The viewer itself (an ``ipywidgets.VBox``); kept for layouts written as ``VBox([viewer.widget])``."""
        return self

    def _ipython_display_(self):
        display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        objs = len(self.predictor.objects) if getattr(self, "predictor", None) is not None else None
        what = f", {objs} object{'s' * (objs != 1)}" if objs is not None else ""
        return f"SliceViewer({getattr(self, 'ct', None)!r}{what})"  # also while __init__ failed half-way

    def show(self):
        """Display the viewer in the current notebook cell."""
        self._ipython_display_()

    def click(self, voxel_zyx, positive: bool = True) -> np.ndarray:
        """Add a prompt at CT voxel ``(z, y, x)``, exactly as a mouse click would.

        Moves the crosshair there, updates overlays, markers, legend, status (and the linked
        VolumeView). Returns the current object's mask (bool, ``ct.shape``).
        """
        mask = self._checked_predictor().click(voxel_zyx, positive=positive)
        self.goto(voxel_zyx, _draw=False)
        where = self.voxel
        self._after_change(f"{'+' if positive else '−'} click at (z, y, x) = {where}", timing=True)
        return mask

    def goto(self, voxel_zyx, _draw=True):
        """Move the crosshair (and the three slices) to CT voxel ``(z, y, x)``."""
        v, shape = np.asarray(voxel_zyx, float), np.asarray(self.ct.shape)
        if np.any(v < -0.5) or np.any(v > shape - 0.5):  # the predictor's rule: within half a voxel of the CT
            raise ValueError(f"voxel {tuple(voxel_zyx)} is outside the CT (shape (z, y, x) = {self.ct.shape})")
        # halves round up, as the click markers' slices do (np.rint would round 2.5 to 2)
        c = self.orient.canonical_index(np.clip(np.floor(v + 0.5), 0, shape - 1).astype(int))
        self._hold = True
        try:
            self.cursor = [int(v) for v in c]
            for view in VIEWS:
                self.sliders[view].value = self.cursor[view_layout(view)[0]]
        finally:
            self._hold = False
        for box, v in zip(self.coord_boxes, self.voxel):
            box.value = v
        if _draw:
            self.refresh_views()

    def _checked_predictor(self):
        """The predictor, once it is known to still hold this viewer's CT (``predictor.set_volume`` with another
        scan after the viewer was made would have clicks segment a scan other than the one shown)."""
        p = self.predictor
        if p is None:
            raise RuntimeError("this viewer has no predictor: create it with SliceViewer(ct, predictor)")
        if p.ct is not self._predictor_ct:
            if p.ct is None or (p.ct is not self.ct and ct_fingerprint(p.ct) != ct_fingerprint(self.ct)):
                raise RuntimeError("the predictor was given another CT (predictor.set_volume) after this viewer was "
                                   "made: clicks would segment a scan other than the one shown. Show that CT in a "
                                   "new viewer: SliceViewer(new_ct, predictor)")
            self._predictor_ct = p.ct
        return p

    @property
    def voxel(self) -> tuple[int, int, int]:
        """The crosshair position as CT voxel ``(z, y, x)``."""
        return tuple(int(v) for v in self.orient.ct_index(np.asarray(self.cursor)))

    @property
    def clicks(self) -> list:
        """The current object's clicks (:class:`~ctsam3d_nb.predictor_state.Click`: ``ct_zyx``, ``grid_zyx``,
        ``positive``), oldest first; [] without a predictor or objects."""
        p = self.predictor
        return list(p.objects[p.current].clicks) if p is not None and p.objects else []

    @property
    def legend_entries(self) -> list[tuple[int, str, tuple[int, int, int], bool]]:
        """``(label value, name, rgb, is_current)`` of what the overlays show."""
        if self.predictor is not None:
            return predictor_legend(self.predictor)
        return labels_legend(self._present, self._lut, self._names)

    def new_object(self, name: str | None = None):
        """Start a new object (an ontology name such as "liver" gets its id and colour)."""
        p = self._checked_predictor()
        obj = p.new_object(name or f"object {len(p.objects) + 1}")
        self._after_change(f"new object {html.escape(obj.name)!r} (label {obj.label_id}): click on it")
        return obj

    def select_object(self, which):
        """Make an existing object (index or name) current and show its clicks."""
        obj = self._checked_predictor().select_object(which)
        self._after_change(f"object {html.escape(obj.name)!r} selected")
        return obj

    def undo(self) -> bool:
        """Undo the last click / new object / reset, and show the result."""
        return self._history("undo")

    def redo(self) -> bool:
        """Redo what :meth:`undo` took back, and show the result."""
        return self._history("redo")

    def reset(self):
        """Clear the current object's clicks and mask (undoable)."""
        self._history("reset")

    def refresh(self):
        """Redraw from the predictor's state (after calling the predictor directly)."""
        self._after_change("")

    def set_labels(self, labels, colors: dict | None = None, names: dict | None = None, _draw=True):
        """Show a label map / bool mask on the CT grid ``(z, y, x)``.

        ``colors``: value → RGB; ``names``: value → legend name (default: the ontology's names,
        "mask" for a bool mask).
        """
        if labels is None:
            self._show_labels(None, colors, names)
        else:
            is_mask = np.asarray(labels).dtype == bool
            lab, present = check_labels(labels, self.ct.shape)
            if is_mask:
                colors, names = colors or {1: (255, 64, 64)}, names or {1: "mask"}
            self._show_labels(lab, colors, names, present, top=max(present, default=0))
        if _draw:
            self.legend.value = legend_html(self.legend_entries)
            self.refresh_views()

    def close(self):
        """Close the three canvases, the controls and the viewer widget (frees their front-end views)."""
        for art in getattr(self, "views", {}).values():  # also after a failed __init__ (Widget.__del__ closes)
            getattr(art.figure.canvas, "close", lambda: None)()
        super().close()

    # ------------------------------------------------------------------ display
    def refresh_views(self):
        """Put the current slices on the three figures (``set_data``) and draw them."""
        for view in VIEWS:
            self._update_view(view)
            self._draw(view)

    def _build_views(self):
        self.views = {v: new_view(v, self.plan[v], view_slice(self._hu, v, self.cursor[view_layout(v)[0]]),
                                  self.interactive) for v in VIEWS}
        for view, art in self.views.items():
            art.axes.format_coord = functools.partial(self._format_coord, view)  # hover read-out: voxel and HU
            art.figure.canvas.mpl_connect("button_press_event", functools.partial(self._on_press, view))
            art.figure.canvas.mpl_connect("scroll_event", functools.partial(self._on_scroll, view))
        by_kind = lambda attr: {v: getattr(a, attr) for v, a in self.views.items()}  # noqa: E731
        self.figures, self.axes, self.images, self.overlays = (by_kind(k) for k in ("figure", "axes", "image",
                                                                                   "overlay"))
        self.crosshair, self.markers, self.titles = (by_kind(k) for k in ("crosshair", "markers", "title"))

    def _format_coord(self, view, x, y):
        try:
            v = data_to_voxel(self.orient, view, self.cursor[view_layout(view)[0]], x, y)
        except ValueError:
            return ""
        return f"({v[0]}, {v[1]}, {v[2]})  HU {self.ct.array[v]}"  # short: the footer is as wide as the view

    def _update_view(self, view):
        s = view_layout(view)[0]
        k = self.cursor[s]
        image = view_slice(self._hu, view, k)
        overlay = (np.zeros(image.shape + (4,), np.uint8) if self._labels_c is None
                   else self._lut[view_slice(self._labels_c, view, k)])
        _, x, y = canonical_to_data(view, self.cursor)
        positive, negative = click_points(self.orient, view, k, self.clicks)
        show_slice(self.views[view], image, overlay, (x, y), positive, negative,
                   f"{view}  {k + 1}/{self.orient.shape[s]}")

    def _draw(self, view):
        if self.interactive:
            self.figures[view].canvas.draw_idle()
        else:
            self._pngs[view].value = png_bytes(self.figures[view])

    def _show_labels(self, lab, colors=None, names=None, present=(), top=0):
        """Overlay state: ``lab`` on the CT grid (checked) or None, legend colours/names, ids present."""
        self._labels = lab
        self._labels_c = None if lab is None else self.orient.to_canonical(lab)
        self._colors, self._names, self._present = dict(colors or {}), dict(names or {}), present
        self._lut = label_colors(max([top, *self._colors]) + 1, self._colors, self.alpha)

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self, window):
        self.sliders = slice_sliders(self.orient, self.plan, self.cursor, self.interactive)
        for view, slider in self.sliders.items():
            slider.observe(functools.partial(self._on_slider, view), "value")
        boxes = [W.VBox([self._pngs.get(v, self.figures[v].canvas), self.sliders[v]],
                        layout=W.Layout(flex="0 0 auto", margin="0 4px 4px 0")) for v in VIEWS]
        self.window, self.window_range, self.window_readout, self.opacity = window_controls(
            window, np.min(self.ct.array), np.max(self.ct.array), self.alpha, self.interactive)
        self.window.observe(self._on_window, "value")
        self.window_range.observe(self._on_range, "value")
        self.opacity.observe(self._on_opacity, "value")
        self._on_range({"new": self.window_range.value})
        self.legend, self.status = W.HTML(value=""), W.HTML(value="")
        self.legend.add_class("ctsam3d-legend")
        self.status.add_class("ctsam3d-status")
        rows = [wrap_row(boxes, align_items="flex-start"), self.legend,
                wrap_row([self.window, self.window_range, self.window_readout, self.opacity])]
        if self.predictor is not None:
            controls = predictor_controls()
            (self.mode, self.object_select, self.object_name, self.new_button, self.undo_button, self.redo_button,
             self.reset_button, self.export_name, self.overwrite, self.export_button) = controls
            self.object_select.observe(self._on_select, "value")
            for button, fn in ((self.new_button, lambda _: self.new_object(self.object_name.value.strip())),
                               (self.undo_button, lambda _: self.undo()), (self.redo_button, lambda _: self.redo()),
                               (self.reset_button, lambda _: self.reset()), (self.export_button, self._on_export)):
                button.on_click(guarded(fn, self._error))
            rows += [wrap_row(r) for r in controls.rows()]
        self.coord_boxes = [] if self.interactive else coordinate_boxes(self.voxel)
        if not self.interactive:
            self.message = W.HTML(no_clicks_html(matplotlib.get_backend()))
            self.message.add_class("ctsam3d-no-clicks")
            rows += [self.message, self._coordinate_row()]
        self.children = rows + [self.status]

    def _coordinate_row(self):
        typed = lambda: [box.value for box in self.coord_boxes]  # noqa: E731
        actions = {"go to": lambda _: self.goto(typed())}
        if self.predictor is not None:
            actions["add +"] = lambda _: self.click(typed(), True)
            actions["add −"] = lambda _: self.click(typed(), False)
        return coordinate_row(self.coord_boxes, actions, self._error)

    def _error(self, e):
        self.status.value = error_html(e)

    # ------------------------------------------------------------------ after a predictor change
    def _history(self, op):
        done = getattr(self._checked_predictor(), op)()
        self._after_change(f"{op}: nothing to {op}" if done is False else op)
        return done

    def _after_change(self, message, timing=False, draw=True):
        """After any predictor change: label map once, object list, overlays, legend, status, 3D view."""
        p = self.predictor
        labels, colors = predictor_labels(p)
        # the predictor's own masks: no need to check or scan them for ids (the legend lists its objects)
        lab = labels.view(np.uint8) if labels is not None and labels.dtype == bool else labels
        self._show_labels(lab, colors, top=max(colors, default=0))
        self._hold = True
        try:
            self.object_select.options = [(f"{i + 1}. {o.name}", i) for i, o in enumerate(p.objects)]
            self.object_select.value = p.current if p.objects else None
        finally:
            self._hold = False
        self.legend.value = legend_html(self.legend_entries)
        if draw:
            self.refresh_views()
        self.status.value = status_html(message, p, self.ct.voxel_volume_ml, timing)
        if self.volume_view is not None:
            self.volume_view.update(labels=labels, colors=colors)
