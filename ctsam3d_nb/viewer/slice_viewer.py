"""`SliceViewer`: axial, coronal and sagittal views of a CT, click to segment.

    viewer = SliceViewer(ct, predictor)       # in a notebook cell, after %matplotlib widget
    viewer                                    # left click = include, right click = exclude
    viewer.click((z, y, x), positive=True)    # the same thing from code

Views are the canonical LPS slices (see :mod:`.geometry`): radiological
convention whatever the file's axis order, pixels with their physical shape.
Every click - mouse, coordinate boxes or code - goes through :meth:`SliceViewer.click`;
the display is then updated by ``set_data`` on the three current slices only.

The viewer is an ``ipywidgets.VBox``: display it, or put it in your own layout
(``HBox([viewer, view3d])``). View sizes come from :mod:`.layout` (plain functions).
"""
from __future__ import annotations

import functools
import html
import io
from pathlib import Path

import ipywidgets as W
import numpy as np

from ..session import ct_fingerprint
from ..volume import CTVolume
from .canvas import ipympl_active, new_figure
from .controls import ControlsMixin
from .exports import ExportMixin
from .geometry import (VIEWS, Orientation, canonical_to_data, data_to_voxel, label_colors, labels_legend,
                       predictor_labels, predictor_legend, view_layout, view_slice, voxel_to_data)
from .layout import DEFAULT_WIDTH_PX, MAX_HEIGHT_PX, MIN_SIDE_PX, viewer_plan

__all__ = ["SliceViewer", "ipympl_active"]

_EDGE_LETTERS = {"axial": "RLAP", "coronal": "RLSI", "sagittal": "APSI"}  # left, right, top, bottom


def zoom_note(timing: dict) -> str:
    """Where a click's mask was found, for the status line: "found at 6 mm, refined at 3 mm" ("" at 1.5 mm)."""
    found, refined = timing.get("found_mm"), timing.get("refined_mm")
    if found is None or found <= 1.5:
        return ""
    note = f"found at {found:g} mm"
    if refined is not None and refined == refined:  # not NaN
        return note + f", refined at {refined:g} mm"
    return note + " (not refined: too large for the refine budget)"


def _as_ct(ct) -> CTVolume:
    """The CT a viewer shows: a CTVolume, or what ``load_ct`` reads without extra geometry."""
    if isinstance(ct, CTVolume):
        return ct
    if isinstance(ct, np.ndarray):
        raise TypeError("SliceViewer got a bare numpy array: its voxel size is unknown. Wrap it first: "
                        "SliceViewer(load_ct(array, spacing=(z, y, x) mm), ...) (or affine= for nibabel/MONAI arrays)")
    import SimpleITK as sitk

    if isinstance(ct, (str, Path, sitk.Image)):
        from ..io import load_ct

        return load_ct(ct)
    raise TypeError(f"SliceViewer needs a CTVolume (from load_ct), a path or a SimpleITK image, got "
                    f"{type(ct).__name__}")


class SliceViewer(ControlsMixin, ExportMixin, W.VBox):
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

    Example:
        >>> viewer = SliceViewer(ct, Predictor(load_model("nano")))   # doctest: +SKIP
        >>> viewer.click((60, 250, 200)); viewer.predictor.mask.sum()   # doctest: +SKIP
        >>> HBox([viewer, VolumeView(viewer.predictor)])               # doctest: +SKIP
    """

    def __init__(self, ct: CTVolume, predictor=None, labels=None, window="soft_tissue", interactive=None,
                 volume_view=None, width: int = DEFAULT_WIDTH_PX, max_height: int = MAX_HEIGHT_PX,
                 min_side: int = MIN_SIDE_PX, alpha: float = 0.45, label_names: dict | None = None):
        ct = _as_ct(ct)
        if predictor is not None and labels is not None:
            raise ValueError("pass either predictor= (interactive segmentation) or labels= (plain viewer), not both")
        if predictor is not None:
            if getattr(predictor, "ct", None) is None:
                predictor.set_volume(ct)
            elif predictor.ct is not ct and ct_fingerprint(predictor.ct) != ct_fingerprint(ct):
                raise ValueError("the predictor holds another CT (its geometry or voxels differ from this one): "
                                 "clicks would segment a scan other than the one shown. Call "
                                 "predictor.set_volume(ct) first, or pass the CT it was set up with")
        self._window_range(window)  # validates it before anything is built
        orient = Orientation.from_ct(ct)
        plan = viewer_plan(orient, width, max_height, min_side)  # validates the sizes
        super().__init__()
        self.add_class("ctsam3d-viewer")
        self.ct, self.predictor, self.volume_view = ct, predictor, volume_view
        self.orient, self.plan = orient, plan
        self.interactive = ipympl_active() if interactive is None else bool(interactive)
        self.alpha = float(alpha)
        self._hu = self.orient.to_canonical(ct.array)  # a view: no copy of the CT
        self.cursor = [n // 2 for n in self.orient.shape]  # canonical (z', y', x') of the crosshair
        self._hold = False  # True while several widgets change at once: draw once, at the end
        self._labels = self._labels_c = None
        self._colors, self._names, self._lut, self._present = {}, {}, label_colors(2, alpha=self.alpha), ()
        if labels is not None:
            self.set_labels(labels, names=label_names, _draw=False)
        self._build_figures()
        self._build_widgets(window)
        self._status(self._hint())
        if predictor is not None and predictor.objects:
            self._after_change(self._hint(), draw=False)
        self._update_legend()
        self._redraw_all()

    # ------------------------------------------------------------------ public API
    @property
    def widget(self):
        """The viewer itself (an ``ipywidgets.VBox``); kept for layouts written as ``VBox([viewer.widget])``."""
        return self

    def _ipython_display_(self):
        from IPython.display import display

        display(self._repr_mimebundle_(), raw=True)

    def __repr__(self) -> str:
        objs = len(self.predictor.objects) if getattr(self, "predictor", None) is not None else None
        what = f", {objs} object{'s' * (objs != 1)}" if objs is not None else ""
        return f"SliceViewer({getattr(self, 'ct', None)!r}{what})"

    def show(self):
        """Display the viewer in the current notebook cell."""
        self._ipython_display_()

    def click(self, voxel_zyx, positive: bool = True) -> np.ndarray:
        """Add a prompt at CT voxel ``(z, y, x)``, exactly as a mouse click would.

        Moves the crosshair there, updates overlays, markers, legend, status (and the linked
        VolumeView). Returns the current object's mask (bool, ``ct.shape``).
        """
        if self.predictor is None:
            raise RuntimeError("this viewer has no predictor: create it with SliceViewer(ct, predictor)")
        mask = self.predictor.click(voxel_zyx, positive=bool(positive))
        self.goto(voxel_zyx, _draw=False)
        where = tuple(int(round(v)) for v in voxel_zyx)
        self._after_change(f"{'+' if positive else '−'} click at (z, y, x) = {where}", timing=True)
        return mask

    def goto(self, voxel_zyx, _draw=True):
        """Move the crosshair (and the three slices) to CT voxel ``(z, y, x)``."""
        c = self.orient.canonical_index(np.rint(np.asarray(voxel_zyx, float)).astype(int))
        if np.any(c < 0) or np.any(c >= np.asarray(self.orient.shape)):
            raise ValueError(f"voxel {tuple(voxel_zyx)} is outside the CT (shape (z, y, x) = {self.ct.shape})")
        self._hold = True
        try:
            self.cursor = [int(v) for v in c]
            for view in VIEWS:
                self.sliders[view].value = self.cursor[view_layout(view)[0]]
        finally:
            self._hold = False
        for box, v in zip(getattr(self, "coord_boxes", ()), self.voxel):
            box.value = v
        if _draw:
            self._redraw_all()

    @property
    def voxel(self) -> tuple[int, int, int]:
        """The crosshair position as CT voxel ``(z, y, x)``."""
        return tuple(int(v) for v in self.orient.ct_index(np.asarray(self.cursor)))

    def new_object(self, name: str | None = None):
        """Start a new object (an ontology name such as "liver" gets its id and colour)."""
        obj = self.predictor.new_object(name or f"object {len(self.predictor.objects) + 1}")
        self._after_change(f"new object {html.escape(obj.name)!r} (label {obj.label_id}): click on it")
        return obj

    def select_object(self, which):
        """Make an existing object (index or name) current and show its clicks."""
        obj = self.predictor.select_object(which)
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

    def set_labels(self, labels, colors: dict | None = None, names: dict | None = None, _draw=True, _top=None):
        """Show a label map / bool mask on the CT grid ``(z, y, x)``.

        ``colors``: value → RGB; ``names``: value → legend name (default: the ontology's names,
        "mask" for a bool mask).
        """
        present = ()
        if labels is None:
            self._labels = self._labels_c = None
        else:
            lab = np.asarray(labels)
            if lab.shape != self.ct.shape:
                raise ValueError(f"labels shape {lab.shape} differs from the CT's {self.ct.shape} (z, y, x)")
            if lab.dtype.kind not in "biu":
                raise TypeError(f"labels must be bool or integer ids, got dtype {lab.dtype}")
            if lab.dtype == bool:
                colors, names, lab = colors or {1: (255, 64, 64)}, names or {1: "mask"}, lab.view(np.uint8)
            elif _top is None and lab.size and lab.min() < 0:
                raise ValueError(f"labels hold negative values ({lab.min()}): label ids must be >= 0")
            self._labels, self._labels_c = lab, self.orient.to_canonical(lab)
            if _top is None and lab.size:  # which ids are there (for the legend), and the largest
                _top = int(lab.max())
                ids = np.flatnonzero(np.bincount(lab.ravel())) if _top < 65536 else np.unique(lab)
                present = tuple(int(i) for i in ids if i > 0)
        self._colors, self._names, self._present = dict(colors or {}), dict(names or {}), present
        self._lut = label_colors(max([_top or 0, *self._colors]) + 1, self._colors, self.alpha)
        if _draw:
            self._update_legend()
            self._redraw_all()

    def close(self):
        """Close the three canvases, the controls and the viewer widget (frees their front-end views)."""
        for fig in getattr(self, "figures", {}).values():
            getattr(fig.canvas, "close", lambda: None)()
        super().close()

    # ------------------------------------------------------------------ figures
    def _build_figures(self):
        self.figures, self.axes, self.images, self.overlays, self.markers, self.crosshair = {}, {}, {}, {}, {}, {}
        self.titles = {}
        for view in VIEWS:
            s, _, _, origin = view_layout(view)
            size = self.plan[view]
            fig = new_figure(size.figsize, self.interactive)
            ax = fig.add_axes(size.axes_rect)
            ax.set_axis_off()
            # the figure's pixels are laid out for this view's aspect (and stretch): fill the axes
            kw = dict(origin=origin, aspect="auto", interpolation="nearest")
            sl = view_slice(self._hu, view, self.cursor[s])
            self.images[view] = ax.imshow(sl, cmap="gray", **kw)
            self.overlays[view] = ax.imshow(np.zeros(sl.shape + (4,), np.uint8), **kw)
            for im in (self.images[view], self.overlays[view]):
                im.set_mouseover(False)  # the hover read-out is _format_coord's voxel and HU
            line = dict(color="#ffd54f", lw=0.7, alpha=0.7)
            self.crosshair[view] = (ax.axvline(0, **line), ax.axhline(0, **line))
            self.markers[view] = (ax.plot([], [], "+", color="#00e000", ms=11, mew=2.5)[0],
                                  ax.plot([], [], "_", color="#ff3030", ms=11, mew=2.5)[0])
            for (x, y), letter in zip(((0.03, 0.5), (0.97, 0.5), (0.5, 0.96), (0.5, 0.04)), _EDGE_LETTERS[view]):
                ax.text(x, y, letter, transform=ax.transAxes, color="#ffd54f", fontsize=8, ha="center", va="center")
            if size.stretched:
                sx, sy = size.stretch
                note = f"stretched ×{max(sx, sy):.1f} {'↕' if sy >= sx else '↔'}"
                ax.text(0.98, 0.04, note, transform=ax.transAxes, color="#80deea", fontsize=7, ha="right",
                        va="bottom", bbox=dict(facecolor="black", alpha=0.55, pad=1.5, linewidth=0))
            # the strip above the image: the view's name and slice (the toolbar sits at its right end)
            fh = size.figure_px[1]
            self.titles[view] = fig.text(6 / size.figure_px[0], 1 - size.strip_px / 2 / fh, view, fontsize=9,
                                         va="center", ha="left")
            ax.format_coord = functools.partial(self._format_coord, view)  # hover read-out: voxel and HU
            fig.canvas.mpl_connect("button_press_event", functools.partial(self._on_press, view))
            fig.canvas.mpl_connect("scroll_event", functools.partial(self._on_scroll, view))
            self.figures[view], self.axes[view] = fig, ax

    def _format_coord(self, view, x, y):
        try:
            v = data_to_voxel(self.orient, view, self.cursor[view_layout(view)[0]], x, y)
        except ValueError:
            return ""
        return f"({v[0]}, {v[1]}, {v[2]})  HU {self.ct.array[v]}"  # short: the footer is as wide as the view

    def _update_view(self, view):
        """``set_data`` on one view's artists: slice, overlay, crosshair, click markers, title."""
        s = view_layout(view)[0]
        k = self.cursor[s]
        self.titles[view].set_text(f"{view}  {k + 1}/{self.orient.shape[s]}")
        self.images[view].set_data(view_slice(self._hu, view, k))
        if self._labels_c is None:
            self.overlays[view].set_data(np.zeros(self.images[view].get_array().shape + (4,), np.uint8))
        else:
            self.overlays[view].set_data(self._lut[view_slice(self._labels_c, view, k)])
        _, x, y = canonical_to_data(view, self.cursor)
        self.crosshair[view][0].set_xdata([x, x])
        self.crosshair[view][1].set_ydata([y, y])
        p = self.predictor
        clicks = p.objects[p.current].clicks if p is not None and p.objects else []
        for line, sign in zip(self.markers[view], (True, False)):
            pts = [voxel_to_data(self.orient, view, zyx) for zyx, _, pos in clicks if pos == sign]
            pts = np.array([(px, py) for sl, px, py in pts if sl == k]).reshape(-1, 2)
            line.set_data(pts[:, 0], pts[:, 1])

    def _draw(self, view):
        fig = self.figures[view]
        if self.interactive:
            fig.canvas.draw_idle()
        elif hasattr(self, "_pngs"):
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            self._pngs[view].value = buf.getvalue()

    def _redraw_all(self):
        for view in VIEWS:
            self._update_view(view)
            self._draw(view)

    # ------------------------------------------------------------------ events
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
                self._status(f"crosshair at (z, y, x) = {voxel}, HU {self.ct.array[voxel]}")
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
            self._redraw_all()  # this view's slice, and the crosshair lines of the other two

    def _history(self, op):
        done = getattr(self.predictor, op)()
        self._after_change(f"{op}: nothing to {op}" if done is False else op)
        return done

    def _after_change(self, message, timing=False, draw=True):
        """After any predictor change: label map once, object list, overlays, legend, status, 3D view."""
        p = self.predictor
        labels, colors = predictor_labels(p)
        self.set_labels(labels, colors, _draw=False, _top=max(colors, default=0))
        self._sync_objects()
        self._update_legend()
        if draw:
            self._redraw_all()
        parts = [message] if message else []
        if timing and p.last_timing.get("total") is not None:
            parts.append(f"{1000 * p.last_timing['total']:.0f} ms")
            note = zoom_note(p.last_timing)
            if note:
                parts.append(note)
        if p.objects:
            obj, n = p.objects[p.current], len(p.objects[p.current].clicks)
            ml = np.count_nonzero(p.mask) * self.ct.voxel_volume_ml
            parts.append(f"{html.escape(obj.name)}: {ml:.1f} mL, {n} click{'s' * (n != 1)}")
        self._status(" · ".join(parts))
        if self.volume_view is not None:
            self.volume_view.update(labels=labels, colors=colors)

    def _legend_entries(self):
        """``(label value, name, rgb, is_current)`` of what the overlays show."""
        if self.predictor is not None:
            return predictor_legend(self.predictor)
        return labels_legend(self._present, self._lut, self._names)
