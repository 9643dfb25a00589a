"""SliceViewer as a widget: it fits a laptop, thin scans can be clicked, the status line, legend and
window presets guide the user, it takes more than a CTVolume, and its exports (label map, figure,
meshes) never overwrite without being told.

Clicks and overlays: ``test_slice_viewer.py``.
"""
from __future__ import annotations

import numpy as np
import pytest

from ctsam3d_nb import CTVolume, load_labels
from ctsam3d_nb.anatomy import by_name
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.render import WINDOWS
from ctsam3d_nb.viewer import SliceViewer, VIEWS
from region_model import RegionModel
from slice_viewer_helpers import BLOCK, INSIDE, LAI, block_ct, make_viewer, press

pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")  # ipympl's Toolbar


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
