"""The viewer's plain functions: window/level, status and legend text, figures updated in place, exports."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ctsam3d_nb.render import WINDOWS
from ctsam3d_nb.viewer.canvas import new_view, png_bytes, show_slice
from ctsam3d_nb.viewer.controls import (coordinate_boxes, coordinate_row, error_html, guarded, hint, legend_html,
                                        predictor_controls, status_html, window_label, window_range, window_readout,
                                        zoom_note)
from ctsam3d_nb.viewer.exports import export_kind, label_mask
from ctsam3d_nb.viewer.layout import plan_views


def test_window_range_of_presets_and_level_width():
    for name, (level, width) in WINDOWS.items():
        assert window_range(name) == (level - width / 2, level + width / 2)
        assert f"W {width} / L {level}" in window_label(name)
    assert window_range((40, 400)) == (-160.0, 240.0)
    assert "-160 … 240 HU" in window_readout(-160, 240) and "W 400 / L 40" in window_readout(-160, 240)
    with pytest.raises(ValueError, match="unknown window 'abdomen'.*presets"):
        window_range("abdomen")
    with pytest.raises(ValueError, match="width must be positive"):
        window_range((40, -1))
    with pytest.raises(ValueError, match="preset name"):
        window_range(3)


def test_texts_of_the_status_line_and_legend():
    assert "left click" in hint(True, True) and "crosshair" in hint(True, False)
    assert "add +" in hint(False, True) and "add +" not in hint(False, False)
    assert legend_html([]) == "<i>no objects yet</i>"
    text = legend_html([(1, "liver <1>", (255, 0, 16), True), (2, "spleen", (1, 2, 3), False)])
    assert "#ff0010" in text and "<b>liver &lt;1&gt;</b>" in text and "#010203" in text
    assert "⚠ a &lt;b&gt;" in error_html(ValueError("a <b>"))
    assert zoom_note({"found_mm": 1.5}) == "" and zoom_note({"found_mm": 6.0, "refined_mm": 3.0}) == \
        "found at 6 mm, refined at 3 mm"
    obj = SimpleNamespace(name="liver", clicks=[0, 1])
    pred = SimpleNamespace(objects=[obj], current=0, mask=np.ones((2, 2, 2), bool),
                           last_timing={"total": 0.0421, "found_mm": 1.5})
    assert status_html("+ click", pred, 0.5, timing=True) == "+ click · 42 ms · liver: 4.0 mL, 2 clicks"
    assert status_html("", pred, 0.5) == "liver: 4.0 mL, 2 clicks"


def test_guarded_callbacks_report_errors_instead_of_raising():
    seen = []
    guarded(lambda x: 1 / x, seen.append)(0)
    assert isinstance(seen[0], ZeroDivisionError)
    boxes = coordinate_boxes((1, 2, 3))
    assert [b.value for b in boxes] == [1, 2, 3] and [b.description for b in boxes] == list("zyx")
    row = coordinate_row(boxes, {"go": lambda _: 1 / 0}, seen.append)
    row.children[-1].click()
    assert len(seen) == 2 and row.children[:3] == tuple(boxes)
    controls = predictor_controls()
    assert [w.description for w in controls.rows()[1][:3]] == ["undo", "redo", "reset object"]


def test_a_view_is_updated_in_place():
    size = plan_views({"axial": (100.0, 80.0)})["axial"]
    art = new_view("axial", size, np.zeros((8, 10), np.int16), interactive=False)
    artists = (art.image, art.overlay, *art.crosshair, *art.markers, art.title)
    show_slice(art, np.full((8, 10), 7, np.int16), np.full((8, 10, 4), 9, np.uint8), (3.0, 4.0),
               np.array([[1.0, 2.0]]), np.zeros((0, 2)), "axial  3/9")
    assert (art.image, art.overlay, *art.crosshair, *art.markers, art.title) == artists
    assert len(art.axes.images) == 2 and art.image.get_array()[0, 0] == 7 and art.overlay.get_array()[0, 0, 0] == 9
    assert art.crosshair[0].get_xdata()[0] == 3.0 and art.crosshair[1].get_ydata()[0] == 4.0
    assert art.markers[0].get_xydata().tolist() == [[1.0, 2.0]] and len(art.markers[1].get_xydata()) == 0
    assert art.title.get_text() == "axial  3/9" and png_bytes(art.figure)[:4] == b"\x89PNG"


def test_export_kind_and_label_masks():
    assert [export_kind(n) for n in ("a.STL", " b.ply ", "c.obj", "d.png", "e.pdf", "f.nii.gz", "g.nrrd", "h")] == \
        ["mesh", "mesh", "mesh", "figure", "figure", "labels", "labels", "labels"]
    labels = np.array([[[0, 5, 7]]])
    entries = [(5, "liver", (1, 2, 3), False), (7, "spleen", (4, 5, 6), False)]
    mask, name, rgb = label_mask(labels, entries, "Spleen")
    assert mask.tolist() == [[[False, False, True]]] and (name, rgb) == ("spleen", (4, 5, 6))
    assert label_mask(labels, entries[:1])[1] == "liver"
    with pytest.raises(ValueError, match="which="):
        label_mask(labels, entries)
    with pytest.raises(KeyError, match="no label 9"):
        label_mask(labels, entries, 9)
    with pytest.raises(RuntimeError, match="no labels"):
        label_mask(None, [])
