"""VolumeView builds headless: one surface per non-empty object, in its colour, updated after clicks."""
from __future__ import annotations

import numpy as np
import pytest

from ctsam3d_nb import CTVolume
from ctsam3d_nb.anatomy import by_name
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.viewer import SliceViewer
from region_model import RegionModel

ipv = pytest.importorskip("ipyvolume")
from ctsam3d_nb.viewer.volume_view import VolumeView  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")

RAS = np.diag([-1.0, -1.0, 1.0])


def two_blocks_ct(direction=RAS):
    hu = np.zeros((26, 24, 28), np.int16)
    hu[6:14, 8:16, 8:20] = 200
    hu[21:25, 2:5, 2:6] = 200
    return CTVolume.from_array(hu, spacing=(3.0, 1.5, 1.2), direction=direction)


def hexcolor(rgb):
    return "#%02x%02x%02x" % tuple(rgb)


def test_meshes_follow_the_predictor_objects():
    ct = two_blocks_ct()
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    view = VolumeView(pred)
    assert isinstance(view.figure, ipv.Figure) and view.figure.meshes == []
    assert view.widget.children[0] is view.figure
    pred.new_object("liver")
    pred.click((10, 12, 14))
    view.update()
    assert len(view.figure.meshes) == 1
    mesh = view.figure.meshes[0]
    first = np.asarray(mesh.x).copy()
    assert "liver" in view.legend.value
    pred.new_object("spleen")
    pred.click((22, 3, 4))
    view.update()
    assert len(view.figure.meshes) == 2 and view.figure.meshes[0] is mesh  # updated in place, not recreated
    colours = sorted(str(np.asarray(m.color)) for m in view.figure.meshes)
    assert colours == sorted([hexcolor(by_name("liver").color), hexcolor(by_name("spleen").color)])
    pred.select_object(0)
    pred.click((10, 12, 10), positive=False)
    view.update()
    assert not np.array_equal(np.asarray(view.figure.meshes[0].x), first) or \
        len(view.figure.meshes[0].triangles) != len(mesh.triangles)
    pred.reset()
    view.update()
    assert len(view.figure.meshes) == 1  # the emptied object has no surface


def test_slice_viewer_updates_its_volume_view():
    ct = two_blocks_ct()
    pred = Predictor(RegionModel(), growth_budget=1)
    view = VolumeView(pred.set_volume(ct))
    viewer = SliceViewer(ct, pred, volume_view=view)
    viewer.click((10, 12, 14))
    assert len(view.figure.meshes) == 1
    viewer.undo_button.click()
    assert len(view.figure.meshes) == 0


def test_label_map_surfaces_sit_at_the_physical_position():
    """Scene frame: x = patient left, y = head, z = anterior, in mm."""
    hu = np.zeros((10, 12, 14), np.int16)
    ct = CTVolume.from_array(hu, spacing=(2.0, 1.0, 0.5))  # LPS identity
    labels = np.zeros(ct.shape, np.uint8)
    labels[2:6, 3:9, 4:12] = by_name("liver").id
    labels[8:10, 0:2, 0:2] = by_name("aorta").id
    view = VolumeView(labels, ct)
    assert len(view.figure.meshes) == 2
    liver = next(m for m in view.figure.meshes if str(np.asarray(m.color)) == hexcolor(by_name("liver").color))
    x, y, z = (np.asarray(a) for a in (liver.x, liver.y, liver.z))
    assert 1.5 <= x.min() <= 2.0 and 5.5 <= x.max() <= 6.0  # voxels x 4..11 at 0.5 mm: 1.75 .. 5.75 mm
    assert 3.0 <= y.min() <= 4.0 and 10.0 <= y.max() <= 11.0  # z 2..5 at 2 mm: 3 .. 11 mm (head = +y)
    assert -8.5 <= z.min() <= -8.0 and -3.0 <= z.max() <= -2.5  # y 3..8 at 1 mm: anterior = -posterior
    limits = [view.figure.xlim, view.figure.ylim, view.figure.zlim]
    ranges = np.array([hi - lo for lo, hi in limits])
    assert np.allclose(ranges, [14 * 0.5, 10 * 2.0, 12 * 1.0])  # the CT's own box (x = 14 voxels of 0.5 mm, ...)
    assert np.allclose(np.asarray(view.figure.box_size) * ranges.max(), ranges)  # drawn in proportion: physical aspect


def test_large_masks_are_downsampled_and_ct_render_is_optional():
    hu = np.zeros((40, 64, 64), np.int16)
    ct = CTVolume.from_array(hu, spacing=(2.5, 0.8, 0.8), direction=RAS)
    mask = np.zeros(ct.shape, bool)
    mask[5:35, 10:54, 10:54] = True
    fine = VolumeView(mask, ct)
    coarse = VolumeView(mask, ct, max_size=16, show_ct=True)
    n_fine, n_coarse = (len(v.figure.meshes[0].triangles) for v in (fine, coarse))
    assert n_coarse < n_fine / 4
    assert np.allclose(np.ptp(np.asarray(coarse.figure.meshes[0].x)), np.ptp(np.asarray(fine.figure.meshes[0].x)),
                       atol=4 * 0.8)
    assert len(coarse.figure.volumes) == 1 and max(coarse.volume.data_original.shape) <= 128
    assert len(fine.figure.volumes) == 0


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="label map"):
        VolumeView(np.zeros((3, 3)))
    ct = two_blocks_ct()
    with pytest.raises(ValueError, match="differs"):
        VolumeView(np.zeros((2, 2, 2), np.uint8), ct)
    with pytest.raises(RuntimeError, match="set_volume"):
        VolumeView(Predictor(RegionModel()))


@pytest.mark.realct
def test_real_label_map_gives_one_surface_per_structure(real_ct_dir):
    from ctsam3d_nb import load_ct, load_labels

    ct = load_ct(real_ct_dir / "example_ct_sm.nii.gz")
    labels = load_labels(real_ct_dir / "example_seg.nii.gz", ct)
    view = VolumeView(labels, ct, max_size=64)
    present = set(np.unique(labels).tolist()) - {0}
    assert set(view.meshes) == present and len(view.figure.meshes) == len(present)
    assert "liver" in view.legend.value


# ---------------------------------------------------------------------------- widget, fallback, meshes
def test_volume_view_is_a_widget_that_fits_in_a_layout():
    import ipywidgets as W

    view = VolumeView(np.zeros((4, 5, 6), bool))
    box = W.HBox([view, view.widget])
    assert box.children[0] is view and view.widget is view and view.backend == "ipyvolume"
    assert view._repr_mimebundle_()["application/vnd.jupyter.widget-view+json"]["model_id"] == view.model_id
    with pytest.raises(ValueError, match="backend"):
        VolumeView(np.zeros((4, 5, 6), bool), backend="webgl")


def test_static_picture_when_ipyvolume_cannot_be_used(monkeypatch):
    from ctsam3d_nb.viewer import volume_view

    ct = two_blocks_ct()
    labels = np.zeros(ct.shape, np.uint8)
    labels[6:14, 8:16, 8:20] = by_name("liver").id
    chosen = VolumeView(labels, ct, backend="static")
    assert chosen.backend == "static" and chosen.figure is None and chosen.children[0] is chosen.image
    assert chosen.image.value[:8] == b"\x89PNG\r\n\x1a\n" and "liver" in chosen.legend.value
    assert set(chosen.meshes) == {by_name("liver").id}

    def broken():
        raise ImportError("No module named 'ipyvolume'")

    monkeypatch.setattr(volume_view, "_ipv", broken)
    auto = VolumeView(labels, ct, show_ct=True)
    assert auto.backend == "static" and "ipyvolume" in auto.legend.value and "CT volume render" in auto.legend.value
    before = auto.image.value
    labels[21:25, 2:5, 2:6] = by_name("spleen").id
    auto.update(labels=labels, colors={by_name("liver").id: by_name("liver").color,
                                       by_name("spleen").id: by_name("spleen").color})
    assert auto.image.value != before and "spleen" in auto.legend.value
    with pytest.raises(ImportError, match="ipyvolume"):
        VolumeView(labels, ct, backend="ipyvolume")


def test_static_view_follows_the_slice_viewer(monkeypatch):
    ct = two_blocks_ct()
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    view = VolumeView(pred, backend="static")
    viewer = SliceViewer(ct, pred, volume_view=view)
    viewer.click((10, 12, 14))
    assert len(view.meshes) == 1
    viewer.undo_button.click()
    assert len(view.meshes) == 0 and "no masks" in view.legend.value


def test_3d_surfaces_are_watertight():
    ct = two_blocks_ct()
    rng = np.random.default_rng(0)
    labels = (rng.random(ct.shape) > 0.6).astype(np.uint8) * by_name("liver").id  # many touching voxels
    view = VolumeView(labels, ct)
    (x, y, z, tris, rgb), = view.surfaces().values()
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)
