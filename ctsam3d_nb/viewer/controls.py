"""The controls of :class:`~ctsam3d_nb.viewer.SliceViewer` as plain functions: the widgets it shows
(sliders, window/level presets, object and history buttons, coordinate entry) and the text of its
legend and status line.

The builders only make widgets; the viewer connects them to its public methods, so a button does
exactly what the same call from code does. Rows wrap instead of being cut when the notebook is narrow.
"""
from __future__ import annotations

import functools
import html
from typing import NamedTuple

import ipywidgets as W
import numpy as np

from ..anatomy import names
from ..render import WINDOWS
from .geometry import VIEWS, Orientation, view_layout

__all__ = ["PredictorControls", "WindowControls", "coordinate_boxes", "coordinate_row", "error_html", "guarded", "hint",
           "legend_html", "no_clicks_html", "predictor_controls", "slice_sliders", "status_html", "window_controls",
           "window_label", "window_range", "window_readout", "zoom_note"]

_NO_CLICKS_MSG = (
    "Clicks on the images cannot reach Python here (matplotlib backend: <code>{backend}</code>). "
    "Run <code>%matplotlib widget</code> (needs <code>ipympl</code>; in Colab first "
    "<code>from google.colab import output; output.enable_custom_widget_manager()</code>) and create "
    "the viewer again, or type voxel coordinates (z, y, x) below.")


def wrap_row(children, **layout) -> W.HBox:
    """A row of widgets that wraps onto a new line where the notebook is narrow."""
    return W.HBox(children, layout=W.Layout(**{"flex_flow": "row wrap", "align_items": "center", **layout}))


# ---------------------------------------------------------------------------- window / level
def window_range(window) -> tuple[float, float]:
    """``(low, high)`` HU of a preset name (``render.WINDOWS``) or ``(level, width)``; a clear error otherwise."""
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


def window_label(name: str) -> str:
    """The dropdown label of a preset: "soft tissue  (W 400 / L 40)"."""
    level, width = WINDOWS[name]
    return f"{name.replace('_', ' ')}  (W {width} / L {level})"


def window_readout(low: float, high: float) -> str:
    """The HU range as text (HTML), with its width and level."""
    return (f"{low:.0f} … {high:.0f} HU &nbsp;<span style='opacity:.7'>"
            f"(W {high - low:.0f} / L {(low + high) / 2:.0f})</span>")


class WindowControls(NamedTuple):
    window: W.Dropdown  # the presets, and "custom"
    window_range: W.FloatRangeSlider  # (low, high) HU
    window_readout: W.HTML  # the range as text (the slider's own read-out is too narrow)
    opacity: W.FloatSlider  # overlay opacity 0..1


def window_controls(window, hu_min: float, hu_max: float, alpha: float, interactive: bool) -> WindowControls:
    """The window/level and opacity widgets; the range slider spans the presets, -1024..3071 and the CT's HU."""
    ends = np.array([window_range(n) for n in WINDOWS] + [window_range(window)])
    dropdown = W.Dropdown(options=[(window_label(n), n) for n in WINDOWS] + [("custom", "custom")],
                          value=window if isinstance(window, str) else "custom", description="window",
                          layout=W.Layout(width="290px"))
    # the slider's own read-out box is too narrow for "-1024 – 3071": a label of its own instead
    hu = W.FloatRangeSlider(value=window_range(window), min=float(min(-1024, ends.min(), hu_min)),
                            max=float(max(3071, ends.max(), hu_max)), step=1, description="HU", readout=False,
                            continuous_update=interactive, layout=W.Layout(width="220px"))
    readout = W.HTML(layout=W.Layout(width="auto", min_width="150px"))
    readout.add_class("ctsam3d-window-readout")
    opacity = W.FloatSlider(value=alpha, min=0, max=1, step=0.05, description="overlay", continuous_update=False,
                            layout=W.Layout(width="230px"))
    return WindowControls(dropdown, hu, readout, opacity)


# ---------------------------------------------------------------------------- other widgets
def slice_sliders(orient: Orientation, plan: dict, cursor, interactive: bool) -> dict:
    """``{view: IntSlider}`` over the canonical slices, at ``cursor`` ``(z', y', x')``, as wide as the view."""
    sliders = {}
    for view in VIEWS:
        s = view_layout(view)[0]
        sliders[view] = W.IntSlider(value=cursor[s], min=0, max=orient.shape[s] - 1, description=view,
                                    continuous_update=interactive, style={"description_width": "initial"},
                                    layout=W.Layout(width=f"{plan[view].figure_px[0]}px"))
    return sliders


class PredictorControls(NamedTuple):
    mode: W.ToggleButtons  # what a left click does: "+", "-" or "move"
    object_select: W.Dropdown  # the current object (value: its index)
    object_name: W.Combobox  # the name of the next new object
    new_button: W.Button
    undo_button: W.Button
    redo_button: W.Button
    reset_button: W.Button
    export_name: W.Text  # the file to export to; its suffix picks what is written
    overwrite: W.Checkbox
    export_button: W.Button

    def rows(self) -> list[list]:
        """The widgets in two rows: objects, then history and export."""
        return [[self.mode, self.object_select, self.object_name, self.new_button],
                [self.undo_button, self.redo_button, self.reset_button, self.export_name, self.overwrite,
                 self.export_button]]


def predictor_controls() -> PredictorControls:
    """The widgets of an interactive segmentation (none of them connected yet)."""
    btn = functools.partial(W.Button, layout=W.Layout(width="auto"))
    mode = W.ToggleButtons(options=[("+ include", "+"), ("− exclude", "-"), ("move", "move")],
                           tooltips=["left click: positive prompt (right click: negative)",
                                     "left click: negative prompt (for trackpads)",
                                     "clicks only move the crosshair"], style={"button_width": "95px"})
    return PredictorControls(
        mode=mode,
        object_select=W.Dropdown(options=[], description="object"),
        object_name=W.Combobox(options=list(names()), placeholder="structure, e.g. liver",
                               layout=W.Layout(width="200px")),
        new_button=btn(description="new object", icon="plus"),
        undo_button=btn(description="undo", icon="undo"),
        redo_button=btn(description="redo", icon="repeat"),
        reset_button=btn(description="reset object", icon="trash"),
        export_name=W.Text(value="segmentation.nii.gz", description="file",
                           tooltip="the suffix picks what is written: .nii.gz/.nrrd/.mha label map, "
                                   ".stl/.ply/.obj mesh of the current object, .png/.pdf/.svg figure"),
        overwrite=W.Checkbox(value=False, description="overwrite", indent=False, layout=W.Layout(width="100px")),
        export_button=btn(description="export", icon="save"),
    )


def coordinate_boxes(voxel_zyx) -> list[W.IntText]:
    """Three boxes z, y, x for typing a voxel (where clicks cannot reach Python)."""
    return [W.IntText(value=v, description=a, layout=W.Layout(width="130px"), style={"description_width": "15px"})
            for v, a in zip(voxel_zyx, "zyx")]


def coordinate_row(boxes, actions: dict, on_error) -> W.HBox:
    """The coordinate boxes and a button per ``{label: callback(button)}``; errors go to ``on_error(e)``."""
    buttons = []
    for label, fn in actions.items():
        buttons.append(W.Button(description=label, layout=W.Layout(width="auto")))
        buttons[-1].on_click(guarded(fn, on_error))
    return W.HBox(list(boxes) + buttons, layout=W.Layout(flex_flow="row wrap"))


def guarded(fn, on_error):
    """``fn`` for a widget callback: an exception goes to ``on_error(e)`` (else it vanishes into the log)."""
    @functools.wraps(fn)
    def run(*args):
        try:
            fn(*args)
        except Exception as e:
            on_error(e)
    return run


# ---------------------------------------------------------------------------- text
def hint(interactive: bool, has_predictor: bool) -> str:
    """What to do, for the status line before the first click (HTML)."""
    if not interactive:
        return ("type a voxel (z, y, x) below and press <b>go to</b>" +
                (", <b>add +</b> or <b>add −</b>" if has_predictor else ""))
    if not has_predictor:
        return "click: move the crosshair · wheel or slider: change slice"
    return ("<b>left click</b>: add (include) · <b>right click</b>: remove (exclude) · middle click or "
            "<i>move</i>: crosshair only · wheel or slider: change slice")


def no_clicks_html(backend: str) -> str:
    """Why clicks cannot reach Python with this matplotlib backend, and the fix (HTML)."""
    return _NO_CLICKS_MSG.format(backend=html.escape(backend))


def legend_html(entries) -> str:
    """The legend: ``(label value, name, rgb, is_current)`` entries as coloured squares and names (HTML)."""
    items = []
    for _, name, (r, g, b), current in entries:
        label = html.escape(name)
        items.append(f"<span style='white-space:nowrap'><span style='color:#{r:02x}{g:02x}{b:02x};"
                     f"font-size:1.2em'>■</span> " + (f"<b>{label}</b>" if current else label) + "</span>")
    return " &nbsp; ".join(items) if items else "<i>no objects yet</i>"


def error_html(e: BaseException) -> str:
    """An error for the status line (HTML)."""
    return f"<span style='color:#c62828'>⚠ {html.escape(str(e))}</span>"


def zoom_note(timing: dict) -> str:
    """Where a click's mask was found, for the status line: "found at 6 mm, refined at 3 mm" ("" at 1.5 mm)."""
    found, refined = timing.get("found_mm"), timing.get("refined_mm")
    if found is None or found <= 1.5:
        return ""
    note = f"found at {found:g} mm"
    if refined is not None and refined == refined:  # not NaN
        return note + f", refined at {refined:g} mm"
    return note + " (not refined: too large for the refine budget)"


def status_html(message: str, predictor, voxel_ml: float, timing: bool = False) -> str:
    """The status line after a change: ``message``, the click's time and zoom level (``timing``), then the
    current object's name, volume (``voxel_ml`` mL per CT voxel) and number of clicks (HTML)."""
    p = predictor
    parts = [message] if message else []
    if timing and p.last_timing.get("total") is not None:
        parts.append(f"{1000 * p.last_timing['total']:.0f} ms")
        note = zoom_note(p.last_timing)
        if note:
            parts.append(note)
    if p.objects:
        obj = p.objects[p.current]
        n = len(obj.clicks)
        ml = np.count_nonzero(p.mask) * voxel_ml
        parts.append(f"{html.escape(obj.name)}: {ml:.1f} mL, {n} click{'s' * (n != 1)}")
    return " · ".join(parts)
