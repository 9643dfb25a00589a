"""SliceViewer: mouse and programmatic clicks take one path, overlays follow the predictor, exports are safe."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from matplotlib.backend_bases import MouseEvent

from ctsam3d_nb import CTVolume, load_labels
from ctsam3d_nb.anatomy import by_name
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.render import WINDOWS
from ctsam3d_nb.viewer import SliceViewer, VIEWS, data_to_voxel, voxel_to_data
from ctsam3d_nb.viewer.geometry import view_layout
from region_model import RegionModel

pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")  # ipympl's Toolbar

LAI = np.diag([1.0, -1.0, -1.0])
BLOCK = (slice(6, 14), slice(8, 16), slice(8, 20))  # the bright structure, (z, y, x) of the file
INSIDE = (10, 12, 14)


def block_ct(direction=LAI, spacing=(3.0, 1.5, 1.2)):
    hu = np.zeros((26, 24, 28), np.int16)
    hu[BLOCK] = 200
    hu[21:25, 2:5, 2:6] = 200  # a second structure, beyond the stand-in model's reach
    hu += np.arange(28, dtype=np.int16)  # every column differs: a mapping error changes the HU
    return CTVolume.from_array(hu, spacing=spacing, direction=direction)


def make_viewer(interactive=False, **kw):
    ct = block_ct()
    return SliceViewer(ct, Predictor(RegionModel(), growth_budget=1), interactive=interactive, **kw)


def press(viewer, view, voxel, button=1):
    """A real matplotlib MouseEvent at the pixel of ``voxel``, through the canvas callbacks."""
    viewer.goto(voxel)  # show the slice that holds the voxel
    k, xd, yd = voxel_to_data(viewer.orient, view, voxel)
    ax, fig = viewer.axes[view], viewer.figures[view]
    x, y = ax.transData.transform((xd, yd))
    event = MouseEvent("button_press_event", fig.canvas, x, y, button=button)
    assert event.inaxes is ax
    fig.canvas.callbacks.process("button_press_event", event)
    return event


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


def test_export_refuses_to_overwrite_unless_ticked(tmp_path):
    viewer = make_viewer()
    viewer.predictor.new_object("liver")
    viewer.click(INSIDE)
    target = tmp_path / "seg.nii.gz"
    viewer.export_name.value = str(target)
    viewer.export_button.click()
    assert target.exists() and "saved" in viewer.status.value
    saved = load_labels(target, viewer.ct)
    assert np.array_equal(saved, viewer.predictor.label_map) and saved[INSIDE] == by_name("liver").id
    target.write_bytes(b"precious")
    viewer.export_button.click()
    assert target.read_bytes() == b"precious" and "overwrite" in viewer.status.value
    viewer.overwrite.value = True
    viewer.export_button.click()
    assert np.array_equal(load_labels(target, viewer.ct), saved)


def test_window_presets_and_custom_range():
    viewer = make_viewer()
    viewer.window.value = "lung"
    level, width = WINDOWS["lung"]
    assert viewer.images["axial"].get_clim() == (level - width / 2, level + width / 2)
    viewer.window_range.value = (-100.0, 100.0)
    assert viewer.window.value == "custom" and viewer.images["coronal"].get_clim() == (-100.0, 100.0)
    viewer.window.value = "bone"
    assert viewer.window_range.value == (-500.0, 1300.0)
    viewer.window_range.value = (-500.00000001, 1300.0)  # what the browser's slider echoes back
    assert viewer.window.value == "bone"


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


# ---------------------------------------------------------------------------- fits a laptop, thin scans, widgets
def thin_ct():
    """A 20-slice, 2 mm series (like the real DICOM one) with a bright block to click on."""
    hu = np.full((20, 96, 96), -50, np.int16)
    hu[6:14, 30:60, 30:70] = 200
    return CTVolume.from_array(hu, spacing=(2.0, 0.98, 0.98), direction=LAI)


def test_figures_have_the_planned_size_and_the_toolbar_sits_above_the_image():
    viewer = make_viewer(interactive=True, width=820)
    for v in VIEWS:
        fig, size = viewer.figures[v], viewer.plan[v]
        assert (round(fig.bbox.width), round(fig.bbox.height)) == size.figure_px
        bb = viewer.axes[v].get_window_extent()
        assert bb.y1 == pytest.approx(size.figure_px[1] - size.strip_px)  # the strip above the image is free
        assert (round(bb.width), round(bb.height)) == size.image_px
        canvas = fig.canvas
        assert canvas.toolbar_position == "top" and canvas.toolbar_visible == "visible"
        assert not canvas.header_visible and [t[0] for t in canvas.toolbar.toolitems] == ["Home", "Pan", "Zoom"]
        assert viewer.titles[v].get_text().startswith(v)
    assert sum(viewer.plan[v].figure_px[0] for v in VIEWS) <= 820


def test_thin_scan_views_can_be_clicked():
    ct = thin_ct()
    viewer = SliceViewer(ct, Predictor(RegionModel(), growth_budget=1), interactive=True)
    for v in ("coronal", "sagittal"):
        assert viewer.plan[v].image_px[1] >= 120 and viewer.plan[v].stretched
        assert any("stretched" in t.get_text() for t in viewer.axes[v].texts)
    press(viewer, "coronal", (10, 45, 50))
    assert viewer.predictor.mask[10, 45, 50] and viewer.voxel == (10, 45, 50)
    press(viewer, "sagittal", (3, 45, 50), button=3)  # a thin view, near its edge
    (first, _, _), (second, _, positive) = viewer.predictor.object.clicks
    assert tuple(int(c) for c in second) == (3, 45, 50) and not positive


def test_status_line_gives_a_hint_before_the_first_click():
    viewer = make_viewer(interactive=True)
    assert "left click" in viewer.status.value and "right click" in viewer.status.value
    plain = SliceViewer(block_ct(), interactive=True)
    assert "crosshair" in plain.status.value
    static = make_viewer()
    assert "(z, y, x)" in static.status.value and "add +" in static.status.value
    static.click(INSIDE)
    assert "left click" not in static.status.value  # replaced by what happened


def test_legend_names_the_objects_in_their_colours():
    viewer = make_viewer()
    assert "no objects" in viewer.legend.value and "ctsam3d-legend" in viewer.legend._dom_classes
    viewer.new_object("liver")
    viewer.click(INSIDE)
    viewer.new_object("spleen")
    liver, spleen = by_name("liver").color, by_name("spleen").color
    text = viewer.legend.value
    assert "liver" in text and "#%02x%02x%02x" % liver in text and "#%02x%02x%02x" % spleen in text
    assert "<b>spleen</b>" in text  # the current object
    labels = np.zeros(block_ct().shape, np.uint8)
    labels[BLOCK] = 7
    plain = SliceViewer(block_ct(), labels=labels, label_names={7: "my tumour"})
    assert "my tumour" in plain.legend.value
    assert "mask" in SliceViewer(block_ct(), labels=labels > 0).legend.value


def test_teaching_window_presets():
    viewer = make_viewer()
    expected = {"soft_tissue": (40, 400), "lung": (-600, 1500), "bone": (400, 1800), "liver": (30, 150),
                "brain": (40, 80), "mediastinum": (50, 350)}
    for name, (level, width) in expected.items():
        assert WINDOWS[name] == (level, width)
        viewer.window.value = name
        assert viewer.images["axial"].get_clim() == (level - width / 2, level + width / 2)
        assert f"W {width} / L {level}" in viewer.window_readout.value
    assert [v for _, v in viewer.window.options][:6] == list(expected)
    assert all(f"W {w} / L {l}" in label for label, n in viewer.window.options if n in expected
               for l, w in [WINDOWS[n]])
    with pytest.raises(ValueError, match="unknown window 'abdomen'.*presets"):
        SliceViewer(block_ct(), window="abdomen")
    with pytest.raises(ValueError, match="width must be positive"):
        SliceViewer(block_ct(), window=(40, 0))
    assert SliceViewer(block_ct(), window=(40, 400)).window.value == "custom"


def test_the_viewer_is_a_widget_that_fits_in_a_layout():
    import ipywidgets as W

    viewer = make_viewer(interactive=True)
    box = W.VBox([viewer, W.HBox([viewer.widget])])  # both spellings work
    assert box.children[0] is viewer and viewer.widget is viewer
    bundle = viewer._repr_mimebundle_()
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == viewer.model_id
    assert bundle["text/plain"].startswith("SliceViewer(")
    viewer.close()
    assert all(fig.canvas.comm is None for fig in viewer.figures.values())


def test_inputs_other_than_a_ctvolume(tmp_path):
    import SimpleITK as sitk

    from ctsam3d_nb.io import HUWarning

    ct = block_ct()
    with pytest.warns(HUWarning):  # the block CT has no air: load_ct says so, and goes on
        viewer = SliceViewer(ct.image)  # a SimpleITK image: read by load_ct (copied)
    assert viewer.ct.shape == ct.shape and np.array_equal(viewer.ct.array, ct.array)
    sitk.WriteImage(ct.image, str(tmp_path / "ct.nii.gz"))
    with pytest.warns(HUWarning):
        assert SliceViewer(tmp_path / "ct.nii.gz").ct.shape == ct.shape
    with pytest.raises(TypeError, match=r"load_ct\(array, spacing="):
        SliceViewer(ct.array)
    with pytest.raises(TypeError, match="CTVolume"):
        SliceViewer([1, 2, 3])


def test_save_figure_writes_a_picture_and_never_overwrites(tmp_path):
    viewer = make_viewer()
    viewer.new_object("liver")
    viewer.click(INSIDE)
    target = viewer.save_figure(tmp_path / "views.png")
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        viewer.save_figure(target)
    assert target.read_bytes() == b"precious"
    viewer.save_figure(target, overwrite=True)
    assert target.read_bytes()[:4] == b"\x89PNG"
    assert viewer.save_figure(tmp_path / "views.pdf").read_bytes()[:4] == b"%PDF"
    with pytest.raises(ValueError, match="suffix"):
        viewer.save_figure(tmp_path / "views.docx")
    with pytest.raises(FileNotFoundError, match="create it first"):
        viewer.save_figure(tmp_path / "missing" / "views.png")
    from ctsam3d_nb.viewer.exports import compose_figure

    fig = compose_figure(viewer)
    assert len(fig.axes) == 3 and [t.get_text() for t in fig.legends[0].get_texts()] == ["liver (current)"]


def test_meshes_from_the_viewer(tmp_path):
    from ctsam3d_nb.meshes import mask_mesh

    viewer = make_viewer()
    viewer.new_object("liver")
    viewer.click(INSIDE)
    viewer.new_object("spleen")
    viewer.click((22, 3, 4))
    stl = viewer.export_mesh(tmp_path / "spleen.stl")  # the current object
    liver = viewer.export_mesh(tmp_path / "liver.obj", which="liver")
    assert stl.stat().st_size == 84 + 50 * len(mask_mesh(viewer.predictor.mask, viewer.ct).faces)
    assert liver.read_text().startswith("# ctsam3d_nb mesh liver")
    with pytest.raises(FileExistsError):
        viewer.export_mesh(stl)
    with pytest.raises(KeyError, match="no object 'kidney'"):
        viewer.export_mesh(tmp_path / "k.stl", which="kidney")
    # the export box: the suffix picks label map, mesh or figure
    viewer.export_name.value = str(tmp_path / "current.ply")
    viewer.export_button.click()
    assert (tmp_path / "current.ply").exists() and "mesh" in viewer.status.value
    viewer.export_name.value = str(tmp_path / "slide.png")
    viewer.export_button.click()
    assert (tmp_path / "slide.png").exists() and "figure" in viewer.status.value
    viewer.export_button.click()
    assert "overwrite" in viewer.status.value
    # a plain viewer: one label exports directly, several need which=
    labels = np.zeros(viewer.ct.shape, np.uint8)
    labels[BLOCK] = by_name("liver").id
    plain = SliceViewer(viewer.ct, labels=labels)
    assert plain.export_mesh(tmp_path / "plain.stl").exists()
    labels[21:25, 2:5, 2:6] = by_name("spleen").id
    plain.set_labels(labels)
    with pytest.raises(ValueError, match="which="):
        plain.export_mesh(tmp_path / "two.stl")
    assert plain.export_mesh(tmp_path / "two.stl", which="spleen").exists()
