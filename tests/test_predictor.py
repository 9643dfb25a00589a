"""The interactive Predictor: caching, growth across patches, history, replay, coordinates."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ctsam3d_nb import CTVolume
from ctsam3d_nb.modeling import build_model
from ctsam3d_nb.predictor import Predictor
from region_model import RegionModel


def tube_ct(length=260, direction=None, spacing=(1.5, 1.5, 1.5)):
    """Soft tissue (0 HU) with a bright tube (200 HU) along z and a side branch."""
    hu = np.zeros((length, 60, 60), np.int16)
    zz, yy, xx = np.indices(hu.shape)
    tube = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 25) & (zz >= 10) & (zz < length - 10)
    branch = (np.abs(zz - 120) <= 3) & (np.abs(yy - 30) <= 3) & (xx >= 30) & (xx < 55)
    hu[tube | branch] = 200
    ct = CTVolume.from_array(hu, spacing=spacing, direction=direction)
    return ct, tube, branch


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(0)
    return build_model("nano")


def test_click_gives_mask_of_ct_shape():
    ct, tube, _ = tube_ct(100)
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    mask = pred.click((50, 30, 30))
    assert mask.shape == ct.shape and mask.dtype == bool
    assert mask[50, 30, 30] and not mask[50, 5, 5]
    assert set(pred.last_timing) >= {"encode", "decode", "cpp", "to_ct", "total"}
    # the returned mask is the predictor's own: read-only, so an edit cannot change pred.mask behind label_map
    with pytest.raises(ValueError, match="read-only"):
        mask[:] = False
    assert pred.mask is mask and pred.mask[50, 30, 30] and (pred.label_map > 0).sum() == mask.sum()
    edited = pred.mask.copy()
    edited[:] = False  # a copy is the user's to edit
    assert pred.mask.any()


def test_growth_crosses_patches_on_long_tube():
    ct, tube, branch = tube_ct(260)  # 390 mm: more than four 96 mm patches
    model = RegionModel()
    pred = Predictor(model, cpp_heatmaps=True).set_volume(ct)
    mask = pred.click((130, 30, 30))
    obj = pred.object
    assert len(obj.masks.probs) >= 5 and pred.stats["cpp_calls"] >= 4
    z = np.nonzero(mask.any((1, 2)))[0]
    assert z.min() <= 12 and z.max() >= 247  # reached both ends of the tube from one click
    assert dice(mask, tube | branch) > 0.97


def test_growth_without_cpp_heatmaps_uses_the_overlap_seed_only():
    ct, tube, branch = tube_ct(260)
    pred = Predictor(RegionModel()).set_volume(ct)  # the default
    mask = pred.click((130, 30, 30))
    assert pred.stats["cpp_calls"] == 0  # the CPP net never ran ...
    assert len(pred.object.masks.probs) >= 5  # ... and the overlap seed alone still grew the mask
    assert dice(mask, tube | branch) > 0.97
    session = pred.session
    assert session["settings"]["cpp_heatmaps"] is False  # replayed as it was made
    again = Predictor.replay(session, ct, model=RegionModel())
    assert again.settings.cpp_heatmaps is False and np.array_equal(again.mask, mask)


class PromptLog(RegionModel):
    """RegionModel that keeps, per decode, whether its prompt held a positive click and a carried mask."""

    def __init__(self):
        super().__init__()
        self.prompts = []

    def decode(self, features, prompt):
        self.prompts.append((bool((prompt[:, 1] > 0.5).any()), bool((prompt[:, 0] > 0.5).any())))
        return super().decode(features, prompt)


def test_grown_patches_take_the_carried_mask_alone_without_the_growth_seed():
    ct, tube, branch = tube_ct(260)
    seeded, plain = PromptLog(), PromptLog()
    a = Predictor(seeded).set_volume(ct).click((130, 30, 30))  # the default: a seed click in every grown patch
    pred = Predictor(plain, growth_seed=False).set_volume(ct)
    b = pred.click((130, 30, 30))
    grown = [p for p in seeded.prompts if p[1]]
    assert len(grown) >= 4 and all(click for click, _ in grown)
    grown = [p for p in plain.prompts if p[1]]
    assert len(grown) >= 4 and not any(click for click, _ in grown)  # no click: the mask channel carries it
    assert dice(b, tube | branch) > 0.97 and dice(a, b) > 0.99
    again = Predictor.replay(pred.session, ct, model=RegionModel())
    assert again.settings.growth_seed is False and np.array_equal(again.mask, b)
    old = pred.session
    del old["settings"]["growth_seed"]  # a log from before the setting: seeded, as then
    assert Predictor.replay(old, ct, model=RegionModel()).settings.growth_seed is True
    with pytest.raises(ValueError, match="growth_seed"):
        Predictor(RegionModel(), growth_seed="no")


def test_logs_from_before_the_growth_settings_replay_with_the_defaults_of_their_time():
    ct, tube, branch = tube_ct(260)
    pred = Predictor(RegionModel(), cpp_heatmaps=True, keep_connected=False).set_volume(ct)  # until session 3
    mask = pred.click((130, 30, 30))
    old = pred.session
    old["settings"] = {k: old["settings"][k] for k in ("growth_budget", "threshold")}  # as such logs were written
    again = Predictor.replay(old, ct, model=RegionModel())
    assert (again.settings.cpp_heatmaps is True and again.settings.cpp_peak_threshold is None
            and not again.settings.growth_guard)
    assert again.settings.keep_connected is False
    assert again.stats["cpp_calls"] == pred.stats["cpp_calls"] > 0 and np.array_equal(again.mask, mask)


class BrightHeatModel(RegionModel):
    """CPP heatmap = the bright voxels of V (peaks wherever the structure continues)."""

    def cpp(self, image_u, mask_u, image_v):
        return (image_v > 0.5).float()


def test_peak_threshold_grows_only_where_the_heatmap_has_a_peak():
    ct, tube, branch = tube_ct(260)
    # all-zero heatmaps: no peak
    none = Predictor(RegionModel(), cpp_heatmaps=True, cpp_peak_threshold=0.5).set_volume(ct)
    none.click((130, 30, 30))
    assert len(none.object.masks.probs) == 1
    pred = Predictor(BrightHeatModel(), cpp_heatmaps=True, cpp_peak_threshold=0.5).set_volume(ct)
    mask = pred.click((130, 30, 30))
    assert len(pred.object.masks.probs) >= 5 and dice(mask, tube | branch) > 0.97
    again = Predictor.replay(pred.session, ct, model=BrightHeatModel())
    assert again.settings.cpp_peak_threshold == 0.5 and np.array_equal(again.mask, mask)
    with pytest.raises(ValueError, match="cpp_peak_threshold"):
        Predictor(RegionModel(), cpp_heatmaps=True, cpp_peak_threshold=1.5)
    with pytest.raises(ValueError, match="cpp_heatmaps=True"):
        Predictor(RegionModel(), cpp_peak_threshold=0.5)  # peaks of heatmaps that are off


class HazeModel(RegionModel):
    """The runaway of a weak CPP net: a faint heatmap over all of V, and a decoder that takes a
    faint positive prompt as "everything bright here" (``everything=True``: every voxel)."""

    def __init__(self, everything=False):
        super().__init__()
        self.everything = everything

    def cpp(self, image_u, mask_u, image_v):
        return torch.full_like(image_v, 0.3)

    def decode(self, features, prompt):
        logits = super().decode(features, prompt)
        hazy = ((prompt[:, 1:2] > 0.2) & (prompt[:, 1:2] < 0.5)).float().mean() > 0.5  # not a click's tail
        if not hazy:
            return logits
        leak = torch.ones_like(logits, dtype=torch.bool) if self.everything else features[0] > 0.5
        return torch.where(leak, torch.full_like(logits, 10.0), logits)


def blob_ct():
    """The tube of `tube_ct` plus a bright blob beside it, not connected to it."""
    ct, tube, branch = tube_ct(260)
    hu = ct.array.copy()
    blob = np.zeros_like(tube)
    blob[170:190, 5:15, 5:15] = True
    hu[blob] = 200
    return CTVolume.from_array(hu, spacing=ct.spacing), tube | branch, blob


def test_growth_guard_cuts_what_does_not_continue_the_overlap():
    ct, tube, blob = blob_ct()
    leaky = Predictor(HazeModel(), cpp_heatmaps=True, keep_connected=False).set_volume(ct).click((130, 30, 30))
    assert leaky[blob].mean() > 0.9  # without the guard the haze takes the unconnected blob in
    pred = Predictor(HazeModel(), cpp_heatmaps=True, growth_guard=True, keep_connected=False).set_volume(ct)
    mask = pred.click((130, 30, 30))
    assert not mask[blob].any() and dice(mask, tube) > 0.97  # kept: only what connects through the overlap
    again = Predictor.replay(pred.session, ct, model=HazeModel())
    assert again.settings.cpp_heatmaps and again.settings.growth_guard and again.settings.growth_min_agreement == 0.5
    assert np.array_equal(again.mask, mask)


def test_growth_guard_refuses_a_neighbour_that_disagrees_in_the_overlap():
    ct, tube, branch = tube_ct(260)
    runaway = Predictor(HazeModel(everything=True), cpp_heatmaps=True).set_volume(ct)
    runaway.click((130, 30, 30))
    assert len(runaway.object.masks.probs) == 27  # the whole budget, as the step-9000 weights did
    pred = Predictor(HazeModel(everything=True), cpp_heatmaps=True, growth_guard=True).set_volume(ct)
    mask = pred.click((130, 30, 30))
    assert len(pred.object.masks.probs) == 1 and dice(mask, tube | branch) > 0.3
    with pytest.raises(ValueError, match="growth_min_agreement"):
        Predictor(RegionModel(), growth_min_agreement=2)


def test_growth_guard_keeps_a_true_continuation():
    ct, tube, branch = tube_ct(260)
    plain = Predictor(RegionModel()).set_volume(ct).click((130, 30, 30))
    guarded = Predictor(RegionModel(), growth_guard=True).set_volume(ct).click((130, 30, 30))
    assert np.array_equal(plain, guarded)


def test_growth_budget_is_respected():
    ct, tube, _ = tube_ct(260)
    pred = Predictor(RegionModel(), growth_budget=2).set_volume(ct)
    pred.click((130, 30, 30))
    assert len(pred.object.masks.probs) == 2


def test_negative_click_removes_leak_and_keeps_the_rest():
    ct, tube, branch = tube_ct(260)
    pred = Predictor(RegionModel()).set_volume(ct)
    m1 = pred.click((130, 30, 30))
    assert m1[120, 30, 50]  # the branch leaked in
    m2 = pred.click((120, 30, 50), positive=False)
    assert not m2[120, 30, 50]
    assert dice(m2, tube) > 0.97  # the tube is kept in every patch


def test_click_inside_encoded_patch_reuses_encoder(nano):
    ct, _, _ = tube_ct(100)
    pred = Predictor(nano, growth_budget=1).set_volume(ct)
    pred.click((50, 30, 30))
    assert pred.stats["encoder_calls"] == 1
    pred.click((55, 28, 33), positive=False)
    pred.click((45, 31, 29))
    assert pred.stats["encoder_calls"] == 1 and pred.stats["decoder_calls"] == 3
    assert pred.last_timing["encode_calls"] == 0


def test_click_outside_keeps_earlier_mask():
    hu = np.zeros((200, 40, 40), np.int16)
    hu[20:40, 10:30, 10:30] = 200
    hu[160:180, 10:30, 10:30] = 200
    ct = CTVolume.from_array(hu, spacing=(1.5, 1.5, 1.5))
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    m1 = pred.click((30, 20, 20))
    assert m1[30, 20, 20] and not m1[170, 20, 20]
    m2 = pred.click((170, 20, 20))
    assert m2[170, 20, 20]
    np.testing.assert_array_equal(m2[:100], m1[:100])  # the first organ is untouched
    assert len(pred.object.masks.probs) == 2


def test_undo_redo_restore_exact_masks(nano):
    ct, _, _ = tube_ct(100)
    pred = Predictor(nano, growth_budget=3).set_volume(ct)
    m1 = pred.click((50, 30, 30)).copy()
    m2 = pred.click((40, 20, 20), positive=False).copy()
    assert pred.undo()
    np.testing.assert_array_equal(pred.mask, m1)
    assert pred.redo()
    np.testing.assert_array_equal(pred.mask, m2)
    assert pred.undo() and pred.undo()
    assert not pred.mask.any() and not pred.undo()
    assert pred.redo()
    np.testing.assert_array_equal(pred.mask, m1)
    pred.reset()
    assert not pred.mask.any()
    assert pred.undo()
    np.testing.assert_array_equal(pred.mask, m1)


def test_objects_and_label_map():
    hu = np.zeros((120, 40, 40), np.int16)
    hu[10:40, 10:30, 10:30] = 200
    hu[80:110, 10:30, 10:30] = 200
    ct = CTVolume.from_array(hu, spacing=(1.5, 1.5, 1.5))
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    pred.new_object("liver")
    pred.click((25, 20, 20))
    pred.new_object("spleen")
    pred.click((95, 20, 20))
    lm = pred.label_map
    assert lm.dtype == np.uint16 and lm.shape == ct.shape
    assert lm[25, 20, 20] == 5 and lm[95, 20, 20] == 1 and lm[60, 20, 20] == 0  # ontology ids
    pred.new_object("my lesion", label_id=1001)
    assert pred.object.label_id == 1001
    with pytest.raises(KeyError, match="objects"):
        pred.select_object("nope")


def test_replay_is_bit_exact(nano, tmp_path):
    ct, _, _ = tube_ct(120)
    pred = Predictor(nano, growth_budget=2).set_volume(ct)
    pred.new_object("aorta")
    pred.click((60, 30, 30))
    pred.click((70, 35, 30), positive=False)
    pred.undo()
    pred.click((50, 30, 28))
    pred.new_object("spleen")
    pred.click((20, 10, 10))
    session = json.loads(json.dumps(pred.session))  # survives JSON
    again = Predictor.replay(session, ct, model=nano)
    np.testing.assert_array_equal(again.label_map, pred.label_map)
    for a, b in zip(again.objects, pred.objects):
        assert a.masks.probs.keys() == b.masks.probs.keys()
        for k in a.masks.probs:
            np.testing.assert_array_equal(a.masks.probs[k], b.masks.probs[k])
    other, _, _ = tube_ct(121)
    with pytest.raises(ValueError, match="another CT"):
        Predictor.replay(session, other, model=nano)
    # the same scan as float HU (e.g. nibabel's get_fdata) is the same CT; other voxels are not
    as_float = CTVolume.from_array(ct.array.astype(np.float32), spacing=ct.spacing)
    np.testing.assert_array_equal(Predictor.replay(session, as_float, model=nano).label_map, pred.label_map)
    brighter = CTVolume.from_array(ct.array + np.int16(1), spacing=ct.spacing)
    with pytest.raises(ValueError, match="differs in: voxels_sha1"):
        Predictor.replay(session, brighter, model=nano)
    # logs written before session 29 hashed the int16 voxels themselves: they still replay on their scan
    import hashlib
    from ctsam3d_nb.session import _voxel_sample
    old = json.loads(json.dumps(session))
    old["ct"]["voxels_sha1"] = hashlib.sha1(_voxel_sample(ct).tobytes()).hexdigest()
    np.testing.assert_array_equal(Predictor.replay(old, ct, model=nano).label_map, pred.label_map)
    with pytest.raises(ValueError, match="another CT"):
        Predictor.replay(old, brighter, model=nano)


def test_clicks_are_named_records_and_the_log_is_unchanged():
    from ctsam3d_nb.predictor_state import Click

    ct, _, _ = tube_ct(100)
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    pred.click((50, 30, 30))
    pred.click((52.5, 31, 30), positive=False)
    first, second = pred.object.clicks
    assert isinstance(first, Click) and first.ct_zyx == (50.0, 30.0, 30.0) and first.positive
    assert second.ct_zyx == (52.5, 31.0, 30.0) and not second.positive
    assert first == (first.ct_zyx, first.grid_zyx, True)  # still a tuple: unpacking and equality work
    g = pred.grid.from_ct_index(ct, (50, 30, 30))
    assert first.grid_zyx == tuple(float(v) for v in g)
    # the log's events are what they were before clicks had names
    assert pred.session["events"] == [{"op": "click", "zyx": [50.0, 30.0, 30.0], "positive": True},
                                      {"op": "click", "zyx": [52.5, 31.0, 30.0], "positive": False}]
    again = Predictor.replay(json.loads(json.dumps(pred.session)), ct, model=RegionModel())
    assert again.object.clicks == pred.object.clicks
    np.testing.assert_array_equal(again.mask, pred.mask)


def test_autosave_and_restore(tmp_path):
    ct, _, _ = tube_ct(100)
    pred = Predictor(RegionModel(), growth_budget=2, autosave=tmp_path / "auto").set_volume(ct)
    pred.new_object("aorta")
    pred.click((50, 30, 30))
    auto = tmp_path / "auto" / "ctsam3d_session.json"
    assert sorted(p.name for p in auto.parent.iterdir()) == [auto.name]  # atomic: no temp file left
    assert auto.stat().st_mode & 0o044  # readable like any saved file, not private 0600
    saved = json.loads(auto.read_text())
    assert [e["op"] for e in saved["events"]] == ["new_object", "click"]
    back = Predictor.restore(tmp_path / "auto", ct, model=RegionModel())
    np.testing.assert_array_equal(back.label_map, pred.label_map)
    assert back.objects[0].name == "aorta"


@pytest.mark.parametrize("bad,err,match", [
    ((1, 2), ValueError, "3 coordinates"),
    ((1, 2, 3, 4), ValueError, "3 coordinates"),
    ((float("nan"), 1, 1), ValueError, "finite"),
    ((500, 10, 10), ValueError, "outside the volume"),
    ((-3, 10, 10), ValueError, "outside the volume"),
    ("abc", TypeError, "voxel index"),
    (("a", 1, 2), TypeError, "numbers"),
])
def test_bad_clicks_are_rejected(bad, err, match):
    ct, _, _ = tube_ct(100)
    pred = Predictor(RegionModel()).set_volume(ct)
    with pytest.raises(err, match=match):
        pred.click(bad)
    assert not pred.objects or not pred.object.clicks  # nothing recorded


def test_click_before_set_volume():
    with pytest.raises(RuntimeError, match="set_volume"):
        Predictor(RegionModel()).click((1, 2, 3))


@pytest.mark.parametrize("direction", [np.diag([-1.0, -1.0, 1.0]), np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0.0]])])
def test_clicks_map_through_flipped_anisotropic_geometry(direction):
    """A click at CT voxel (z, y, x) segments the structure at that voxel, whatever the orientation."""
    hu = np.zeros((40, 90, 80), np.int16)
    zz, yy, xx = np.indices(hu.shape)
    blob = ((zz - 12) * 3.0) ** 2 + ((yy - 60) * 0.8) ** 2 + ((xx - 25) * 0.8) ** 2 <= 14 ** 2
    other = ((zz - 28) * 3.0) ** 2 + ((yy - 25) * 0.8) ** 2 + ((xx - 55) * 0.8) ** 2 <= 12 ** 2
    hu[blob | other] = 200
    ct = CTVolume.from_array(hu, spacing=(3.0, 0.8, 0.8), origin=(-20, 13, 250), direction=direction)
    pred = Predictor(RegionModel(), growth_budget=1).set_volume(ct)
    mask = pred.click((12, 60, 25))
    assert mask[12, 60, 25] and dice(mask, blob) > 0.9 and not (mask & other).any()
