"""Faults found in session 31's review of the predictor, its session log and the slice viewer, each reproduced
first: autosaves of two predictors in one folder, state changed by reading ``pred.mask``, replays that picked other
cached patches, a viewer left on a CT its predictor no longer holds, and arguments that crashed without a message."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from ctsam3d_nb.modeling import build_model
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.viewer import SliceViewer, VolumeView
from region_model import RegionModel
from slice_viewer_helpers import INSIDE, block_ct, make_viewer
from test_predictor import tube_ct

pytestmark = pytest.mark.filterwarnings("ignore:Passing unrecognized arguments:DeprecationWarning")  # ipympl's Toolbar


def _objects(path):
    return [e["name"] for e in json.loads(path.read_text())["events"] if e["op"] == "new_object"]


def test_two_predictors_autosaving_to_one_folder_keep_both_sessions(tmp_path):
    """A re-run ``Predictor(...)`` cell while an older viewer still clicks with the old predictor: neither session
    may overwrite the other's file (the older one kept writing over the newer one's)."""
    ct, _, _ = tube_ct(60)
    a = Predictor(RegionModel(), autosave=tmp_path).set_volume(ct)
    b = Predictor(RegionModel(), autosave=tmp_path).set_volume(ct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.new_object("liver")
        b.new_object("spleen")
        b.new_object("pancreas")
        a.new_object("aorta")
        a.new_object("stomach")  # a's own file now: replaced in place, nothing more rotated
    files = sorted(tmp_path.glob("ctsam3d_session*.json"))
    found = sorted(_objects(f) for f in files)
    assert found == [["liver"], ["liver", "aorta", "stomach"], ["spleen", "pancreas"]]
    assert _objects(tmp_path / "ctsam3d_session.json") == ["liver", "aorta", "stomach"]
    with pytest.warns(UserWarning, match="held an earlier session"):
        b.new_object("heart")  # a's file is in the way again: kept, not replaced
    assert sorted(_objects(f) for f in tmp_path.glob("ctsam3d_session*.json"))[-1] == ["spleen", "pancreas", "heart"]
    assert ["liver", "aorta", "stomach"] in [_objects(f) for f in tmp_path.glob("ctsam3d_session.*.json")]


def test_a_restored_session_continues_its_own_file(tmp_path):
    ct, _, _ = tube_ct(60)
    a = Predictor(RegionModel(), autosave=tmp_path).set_volume(ct)
    a.new_object("liver")
    back = Predictor.restore(tmp_path, ct, model=RegionModel())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "held an earlier session": it is its own
        back.new_object("spleen")
    assert [p.name for p in tmp_path.iterdir()] == ["ctsam3d_session.json"]
    assert _objects(tmp_path / "ctsam3d_session.json") == ["liver", "spleen"]


def test_reading_mask_or_object_changes_nothing_and_replays():
    ct, _, _ = tube_ct(60)
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    assert pred.object is None and pred.objects == []
    empty = pred.mask
    assert empty.shape == ct.shape and not empty.any() and not empty.flags.writeable
    assert pred.objects == []  # reading made no "object 1" the log does not know of
    pred.new_object("liver")
    pred.click((30, 30, 30))
    pred.select_object(0)
    again = Predictor.replay(json.loads(json.dumps(pred.session)), ct, model=RegionModel())
    assert [o.name for o in again.objects] == [o.name for o in pred.objects] == ["liver"]
    np.testing.assert_array_equal(again.mask, pred.mask)
    first = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    first.click((30, 30, 30))  # a first click still makes "object 1", and replays so
    assert [o.name for o in Predictor.replay(first.session, ct, model=RegionModel()).objects] == ["object 1"]


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return build_model("nano").eval()


def _noise_ct():
    from ctsam3d_nb import CTVolume
    rng = np.random.default_rng(0)
    return CTVolume.from_array(rng.integers(-200, 300, (40, 64, 64)).astype(np.int16), spacing=(2.0, 1.5, 1.5))


def test_a_failed_click_leaves_no_cached_patch_behind(nano, monkeypatch):
    """Which cached patch a click reuses decides its mask: an interrupted click must not leave one that a replay
    of the session (which never made that click) would not have."""
    import ctsam3d_nb.predictor as predictor_module
    ct = _noise_ct()
    pred = Predictor(nano, growth_budget=1).set_volume(ct)
    before = pred.net.cached_origins()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(predictor_module, "keep_connected", interrupted)
        with pytest.raises(KeyboardInterrupt):
            pred.click((20, 32, 20))
    assert pred.net.cached_origins() == before and pred.session["events"] == []
    pred.click((20, 32, 32))
    again = Predictor.replay(pred.session, ct, model=nano, growth_budget=1)
    np.testing.assert_array_equal(again.mask, pred.mask)


def test_replay_uses_the_recorded_feature_cache_size(nano):
    ct = _noise_ct()
    pred = Predictor(nano, growth_budget=1, cache_patches=1).set_volume(ct)
    for x in (8, 56):
        pred.click((20, 32, x))
    pred.undo()
    pred.undo()
    pred.click((20, 32, 14))
    assert pred.session["cache_patches"] == 1
    again = Predictor.replay(pred.session, ct, model=nano)
    assert again.cache_patches == 1
    np.testing.assert_array_equal(again.mask, pred.mask)
    with pytest.raises(ValueError, match="cache_patches must be a whole number >= 1"):
        Predictor(nano, cache_patches=0)


def test_a_misspelled_organ_is_named_not_made_a_custom_object():
    ct, _, _ = tube_ct(60)
    pred = Predictor(RegionModel()).set_volume(ct)
    with pytest.raises(ValueError, match=r"did you mean 'liver'\? .*label_id=1000"):
        pred.new_object("livr")
    assert pred.objects == [] and pred.session["events"] == []
    assert pred.new_object("livr", label_id=1000).label_id == 1000  # a custom object of that name, when asked
    assert pred.new_object("tumour").label_id == 1001  # a name near no ontology name stays a custom object
    # a log from before the check replays as it was made
    old = pred.session
    old["events"][0]["label_id"] = None
    assert [o.label_id for o in Predictor.replay(old, ct, model=RegionModel()).objects] == [1000, 1001]


def test_viewer_refuses_to_click_after_its_predictor_got_another_ct():
    viewer = make_viewer()
    other = block_ct()
    flipped = other.array[:, :, ::-1].copy()
    from ctsam3d_nb import CTVolume
    viewer.predictor.set_volume(CTVolume.from_array(flipped, spacing=other.spacing, direction=other.direction))
    for act in (lambda: viewer.click(INSIDE), lambda: viewer.new_object("liver"), viewer.undo):
        with pytest.raises(RuntimeError, match=r"another CT .*SliceViewer\(new_ct, predictor\)"):
            act()
    assert viewer.predictor.objects == []
    same = make_viewer()
    same.predictor.set_volume(block_ct())  # the same scan loaded again: fine
    assert same.click(INSIDE)[INSIDE]


def test_viewer_click_passes_positive_through_and_rounds_halves_like_the_markers():
    viewer = make_viewer()
    for bad in (None, "no"):
        with pytest.raises(TypeError, match="positive must be True or False"):
            viewer.click(INSIDE, positive=bad)
    viewer.click((9.5, 12, 14))
    assert viewer.voxel == (10, 12, 14)  # np.rint gave 10 here, but 2.5 -> 2; the markers' slices round up
    viewer.click((8.5, 12, 14))
    assert viewer.voxel == (9, 12, 14)


@pytest.mark.parametrize("kw,err,match", [
    ({"alpha": 45}, ValueError, "alpha is the overlays' opacity"),
    ({"alpha": -0.2}, ValueError, "alpha is the overlays' opacity"),
    ({"width": "820px"}, TypeError, "width_px is a number of pixels"),
])
def test_viewer_arguments_are_named(kw, err, match):
    with pytest.raises(err, match=match):
        make_viewer(**kw)


def test_viewer_second_argument_is_a_predictor():
    ct = block_ct()
    with pytest.raises(TypeError, match=r"labels=labels"):
        SliceViewer(ct, np.zeros(ct.shape, np.uint8), interactive=False)
    with pytest.raises(TypeError, match=r"Predictor\(load_model\('nano'\)\)"):
        SliceViewer(ct, RegionModel(), interactive=False)


def test_volume_view_max_size_and_export_to_a_folder(tmp_path):
    ct = block_ct()
    with pytest.raises(ValueError, match="max_size .* whole number >= 1"):
        VolumeView(np.zeros(ct.shape, np.uint8), ct=ct, max_size=0)
    viewer = make_viewer()
    viewer.click(INSIDE)
    (tmp_path / "seg.nii.gz").mkdir()
    with pytest.raises(IsADirectoryError, match="is a folder; give a file name"):
        viewer.export(tmp_path / "seg.nii.gz", overwrite=True)
