"""SliceViewer: mouse and programmatic clicks take one path, overlays follow the predictor.

Layout, thin scans, legend, window presets, other inputs and exports: ``test_slice_viewer_widgets.py``.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ctsam3d_nb import load_labels
from ctsam3d_nb.anatomy import by_name
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.viewer import SliceViewer, VIEWS, data_to_voxel, voxel_to_data
from ctsam3d_nb.viewer.geometry import view_layout
from region_model import RegionModel
from slice_viewer_helpers import BLOCK, INSIDE, block_ct, make_viewer, press

pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")  # ipympl's Toolbar


def find_button(widget, description):
    """The Button with this label anywhere in a widget tree."""
    if getattr(widget, "description", None) == description and hasattr(widget, "on_click"):
        return widget
    for child in getattr(widget, "children", ()):
        found = find_button(child, description)
        if found is not None:
            return found
    return None


def overlay_alpha(viewer, view):
    return np.asarray(viewer.overlays[view].get_array())[..., 3]


@pytest.mark.parametrize("view", VIEWS)
def test_mouse_click_prompts_the_voxel_under_the_pointer(view):
    viewer = make_viewer(interactive=True)
    from ipympl.backend_nbagg import Canvas

    assert isinstance(viewer.figures[view].canvas, Canvas)
    before = {v: overlay_alpha(viewer, v).copy() for v in VIEWS}
    press(viewer, view, INSIDE)
    (ct_zyx, _, positive), = viewer.predictor.object.clicks
    assert tuple(int(c) for c in ct_zyx) == INSIDE and positive
    assert viewer.predictor.mask[INSIDE]
    for v in VIEWS:  # all three overlays now show the mask
        assert overlay_alpha(viewer, v).any() and not np.array_equal(overlay_alpha(viewer, v), before[v])
    assert viewer.voxel == INSIDE  # the crosshair moved to the click


def test_right_click_and_toggle_give_negative_prompts():
    viewer = make_viewer(interactive=True)
    press(viewer, "axial", INSIDE)
    press(viewer, "coronal", (10, 9, 9), button=3)
    viewer.mode.value = "-"
    press(viewer, "sagittal", (7, 14, 18), button=1)
    assert [pos for *_, pos in viewer.predictor.object.clicks] == [True, False, False]
    viewer.mode.value = "move"
    press(viewer, "axial", (12, 3, 3))
    assert len(viewer.predictor.object.clicks) == 3 and viewer.voxel == (12, 3, 3)


def test_duck_typed_event_calls_the_same_handler():
    viewer = make_viewer(interactive=True)
    viewer.goto(INSIDE)
    k, xd, yd = voxel_to_data(viewer.orient, "coronal", INSIDE)
    event = SimpleNamespace(inaxes=viewer.axes["coronal"], xdata=xd, ydata=yd, button=1)
    viewer._on_press("coronal", event)
    assert viewer.predictor.mask[INSIDE] and len(viewer.predictor.object.clicks) == 1
    # outside the axes, or while zoom/pan is active: ignored
    viewer._on_press("coronal", SimpleNamespace(inaxes=None, xdata=None, ydata=None, button=1))
    busy = SimpleNamespace(inaxes=viewer.axes["coronal"], xdata=xd, ydata=yd, button=1,
                           canvas=SimpleNamespace(toolbar=SimpleNamespace(mode="zoom rect")))
    viewer._on_press("coronal", busy)
    assert len(viewer.predictor.object.clicks) == 1


def test_programmatic_click_updates_display_exactly_like_the_mouse():
    mouse, code = make_viewer(interactive=True), make_viewer(interactive=True)
    press(mouse, "sagittal", INSIDE)
    code.click(INSIDE, positive=True)
    for v in VIEWS:
        assert np.array_equal(overlay_alpha(mouse, v), overlay_alpha(code, v))
        assert mouse.sliders[v].value == code.sliders[v].value
        assert np.array_equal(mouse.markers[v][0].get_xydata(), code.markers[v][0].get_xydata())
    assert np.array_equal(mouse.predictor.mask, code.predictor.mask)


def test_click_updates_artists_in_place_and_draws_markers():
    viewer = make_viewer()
    ids = {v: (id(viewer.figures[v]), id(viewer.images[v]), id(viewer.overlays[v])) for v in VIEWS}
    viewer.click(INSIDE)
    viewer.click((10, 9, 9), positive=False)
    assert ids == {v: (id(viewer.figures[v]), id(viewer.images[v]), id(viewer.overlays[v])) for v in VIEWS}
    assert all(len(viewer.figures[v].axes[0].images) == 2 for v in VIEWS)
    viewer.goto((10, 9, 9))
    # the negative click lies on all three current slices; the positive one (z=10) on the axial slice too
    for v in VIEWS:
        pos, neg = viewer.markers[v]
        _, xd, yd = voxel_to_data(viewer.orient, v, (10, 9, 9))
        assert np.allclose(neg.get_xydata(), [[xd, yd]])
    assert len(viewer.markers["axial"][0].get_xydata()) == 1
    assert len(viewer.markers["coronal"][0].get_xydata()) == 0  # y=12 is not on coronal slice y=9


def test_overlay_colour_and_hu_match_the_voxel():
    viewer = make_viewer()
    viewer.predictor.new_object("liver")
    viewer.click(INSIDE)
    liver = by_name("liver").color
    for v in VIEWS:
        k, xd, yd = voxel_to_data(viewer.orient, v, INSIDE)
        assert viewer.sliders[v].value == k
        row, col = int(round(yd)), int(round(xd))
        assert tuple(np.asarray(viewer.overlays[v].get_array())[row, col, :3]) == liver
        assert viewer.images[v].get_array()[row, col] == viewer.ct.array[INSIDE]
        assert data_to_voxel(viewer.orient, v, k, xd, yd) == INSIDE


def test_two_objects_have_their_own_colours_and_selection_follows():
    viewer = make_viewer()
    viewer.object_name.value = "liver"
    viewer.new_button.click()
    viewer.click(INSIDE)
    viewer.object_name.value = "spleen"
    viewer.new_button.click()
    viewer.click((22, 3, 4))
    assert [o.name for o in viewer.predictor.objects] == ["liver", "spleen"]
    assert viewer.object_select.value == 1
    viewer.goto((22, 3, 4))
    k, xd, yd = voxel_to_data(viewer.orient, "axial", (22, 3, 4))
    assert tuple(np.asarray(viewer.overlays["axial"].get_array())[int(yd), int(xd), :3]) == by_name("spleen").color
    viewer.object_select.value = 0
    assert viewer.predictor.current == 0 and "liver" in viewer.status.value


def test_undo_redo_reset_buttons():
    viewer = make_viewer()
    viewer.click(INSIDE)
    viewer.undo_button.click()
    assert not viewer.predictor.objects[0].clicks if viewer.predictor.objects else True
    assert not overlay_alpha(viewer, "axial").any()
    viewer.redo_button.click()
    assert overlay_alpha(viewer, "axial").any()
    viewer.reset_button.click()
    assert not overlay_alpha(viewer, "axial").any() and "reset" in viewer.status.value
    viewer.redo_button.click()
    assert "nothing to redo" in viewer.status.value


def test_status_line_shows_latency_and_volume():
    viewer = make_viewer()
    assert "ctsam3d-status" in viewer.status._dom_classes
    viewer.click(INSIDE)
    ml = viewer.predictor.mask.sum() * viewer.ct.voxel_volume_ml
    assert f"{ml:.1f} mL" in viewer.status.value
    assert f"{1000 * viewer.predictor.last_timing['total']:.0f} ms" in viewer.status.value


def test_errors_show_in_the_status_line():
    viewer = make_viewer()
    viewer.coord_boxes[0].value = 99
    find_button(viewer.widget, "add +").click()
    assert "outside the volume" in viewer.status.value and not viewer.predictor.objects
    with pytest.raises(ValueError, match="outside"):
        viewer.click((99, 0, 0))
    # a click half a voxel past the last slice is the predictor's last voxel: the viewer goes there too
    last = tuple(n - 0.5 for n in viewer.ct.shape)
    viewer.click(last)
    assert viewer.voxel == tuple(n - 1 for n in viewer.ct.shape) and len(viewer.predictor.object.clicks) == 1
    with pytest.raises(ValueError, match="outside the CT"):
        viewer.goto((viewer.ct.shape[0] - 0.4, 0, 0))


def test_static_mode_says_so_and_offers_coordinate_entry():
    viewer = make_viewer()  # pytest runs matplotlib's Agg backend: clicks cannot reach Python
    assert not viewer.interactive and "%matplotlib widget" in viewer.message.value
    assert all(len(img.value) > 100 for img in viewer._pngs.values())  # PNG views
    for box, v in zip(viewer.coord_boxes, INSIDE):
        box.value = v
    png_before = viewer._pngs["axial"].value
    find_button(viewer.widget, "add +").click()
    assert viewer.predictor.mask[INSIDE] and viewer._pngs["axial"].value != png_before


def test_ipympl_backend_is_detected(monkeypatch):
    import matplotlib

    monkeypatch.setattr(matplotlib, "get_backend", lambda: "module://ipympl.backend_nbagg")
    viewer = make_viewer(interactive=None)
    assert viewer.interactive and not hasattr(viewer, "message")
    first_row = viewer.widget.children[0].children
    assert [box.children[0] for box in first_row] == [viewer.figures[v].canvas for v in VIEWS]


def test_sliders_scroll_and_crosshair_stay_in_sync():
    viewer = make_viewer(interactive=True)
    viewer.sliders["axial"].value = 5
    z_prime = viewer.cursor[view_layout("axial")[0]]
    assert z_prime == 5
    assert viewer.crosshair["coronal"][1].get_ydata()[0] == 5  # coronal horizontal line = axial slice
    ax = viewer.axes["sagittal"]
    event = SimpleNamespace(inaxes=ax, button="up")
    viewer._on_scroll("sagittal", event)
    assert viewer.sliders["sagittal"].value == viewer.orient.shape[2] // 2 + 1


def test_plain_viewer_with_labels_navigates():
    ct = block_ct()
    labels = np.zeros(ct.shape, np.uint8)
    labels[BLOCK] = by_name("liver").id
    viewer = SliceViewer(ct, labels=labels, interactive=True)
    viewer.goto(INSIDE)
    assert overlay_alpha(viewer, "axial").any()
    press(viewer, "axial", (10, 3, 3))
    assert viewer.voxel == (10, 3, 3)
    with pytest.raises(RuntimeError, match="no predictor"):
        viewer.click(INSIDE)
    mask_viewer = SliceViewer(ct, labels=labels > 0)
    assert hasattr(mask_viewer, "_ipython_display_") and mask_viewer.widget is not None
    with pytest.raises(ValueError, match="either"):
        SliceViewer(ct, Predictor(RegionModel()), labels=labels)


@pytest.mark.realct
def test_real_ct_and_label_map(real_ct_dir):
    """The RAS abdominal CT: the pixel under each mapped voxel shows its HU and its label colour."""
    from ctsam3d_nb import load_ct
    from ctsam3d_nb.anatomy import color_lut

    ct = load_ct(real_ct_dir / "example_ct_sm.nii.gz")
    labels = load_labels(real_ct_dir / "example_seg.nii.gz", ct)
    viewer = SliceViewer(ct, labels=labels)
    liver = tuple(int(c) for c in np.argwhere(labels == by_name("liver").id)[::97][3])
    viewer.goto(liver)
    for v in VIEWS:
        k, xd, yd = voxel_to_data(viewer.orient, v, liver)
        row, col = int(yd), int(xd)
        assert viewer.images[v].get_array()[row, col] == ct.array[liver]
        assert tuple(np.asarray(viewer.overlays[v].get_array())[row, col, :3]) == tuple(color_lut()[labels[liver]])
