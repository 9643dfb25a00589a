"""Zoom-out, then refine: the multi-level click path, with the deterministic stand-in model."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from ctsam3d_nb import CTVolume
from ctsam3d_nb.grid import ModelGrid, downsample
from ctsam3d_nb.patches import PATCH, STRIDE, LevelMasks, PatchMasks, tile_origins
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.reach import surface_tiles
from ctsam3d_nb.settings import ClickSettings, add_arguments, from_arguments
from region_model import RegionModel


def organ_ct(radius_mm=70.0, shape=(150, 150, 150), centre=(75, 75, 75), spacing=1.5):
    """Soft tissue (0 HU) with a bright ellipsoid organ (200 HU) and a small bright blob far from it."""
    hu = np.zeros(shape, np.int16)
    zz, yy, xx = np.indices(shape)
    r = radius_mm / spacing
    organ = ((zz - centre[0]) / r) ** 2 + ((yy - centre[1]) / (0.8 * r)) ** 2 + ((xx - centre[2]) / r) ** 2 <= 1
    hu[organ] = 200
    ct = CTVolume.from_array(hu, spacing=(spacing,) * 3, origin=(10.0, -20.0, 5.0))
    return ct, organ


def dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def zoom(**kw):
    return ClickSettings(mode="zoom", **kw)


def test_a_large_organ_is_found_at_a_coarse_level_and_refined():
    ct, organ = organ_ct(70)  # 140 mm wide: more than one 96 mm patch
    coarse = Predictor(RegionModel(), zoom(refine_budget=0)).set_volume(ct)
    mask = coarse.click((75, 75, 75))
    t = coarse.last_timing
    assert t["found_mm"] == 3.0 and np.isnan(t["refined_mm"])  # 192 mm field holds it; nothing refined
    assert dice(mask, organ) > 0.93
    assert set(coarse.object.masks.levels[2].probs) and not coarse.object.masks.levels[4].probs

    fine = Predictor(RegionModel(), zoom(refine_budget=64)).set_volume(ct)
    mask_fine = fine.click((75, 75, 75))
    assert fine.last_timing["found_mm"] == 3.0 and fine.last_timing["refined_mm"] == 1.5
    n_tiles = len(fine.object.masks.probs) - 1  # level-1 patches besides the first one centred on the click
    assert n_tiles >= 8 and fine.last_timing["decode_calls"] == 2 + n_tiles
    assert dice(mask_fine, organ) > 0.98 and dice(mask_fine, organ) >= dice(mask, organ)


def test_the_refine_level_is_the_finest_whose_surface_fits_the_budget():
    ct, organ = organ_ct(100, shape=(200, 200, 200), centre=(100, 100, 100))  # 200 mm: found at 6 mm
    pred = Predictor(RegionModel(), zoom(refine_budget=12)).set_volume(ct)
    mask = pred.click((100, 100, 100))
    t = pred.last_timing
    assert t["found_mm"] == 6.0 and t["refined_mm"] == 3.0
    assert 1 <= len(pred.object.masks.levels[2].probs) <= 12
    assert dice(mask, organ) > 0.95


def test_a_small_organ_never_zooms_out():
    ct, organ = organ_ct(20)
    pred = Predictor(RegionModel(), zoom()).set_volume(ct)
    mask = pred.click((75, 75, 75))
    assert pred.last_timing["found_mm"] == 1.5 and pred.last_timing["decode_calls"] == 1
    assert pred.object.masks.n_patches() == 1
    assert dice(mask, organ) > 0.97


def test_a_later_click_re_decodes_only_the_patches_holding_it():
    ct, organ = organ_ct(70)
    pred = Predictor(RegionModel(), zoom(refine_budget=64)).set_volume(ct)
    pred.click((75, 75, 75))
    total = pred.object.masks.n_patches()
    assert total >= 10
    pred.click((75, 75, 118), positive=False)  # cut a bit off the organ's side
    holding = 1 + sum(1 for f, m in pred.object.masks.levels.items() for o in m.probs
                      if all(0 <= g / f - c < PATCH for g, c in zip(pred.object.clicks[-1][1], o)))
    t = pred.last_timing
    assert t["decode_calls"] <= holding <= 6 and t["decode_calls"] < total / 2
    assert np.isnan(t["refined_mm"]) or t["found_mm"] == 1.5  # no zoom-out again
    assert not pred.mask[75, 75, 118] and pred.mask[75, 75, 75]


def test_undo_redo_and_replay_are_bit_exact_with_zoom():
    ct, organ = organ_ct(70)
    pred = Predictor(RegionModel(), zoom(refine_budget=64)).set_volume(ct)
    pred.new_object("liver")
    first = pred.click((75, 75, 75)).copy()
    second = pred.click((75, 75, 118), positive=False).copy()
    assert pred.undo() and np.array_equal(pred.mask, first)
    assert pred.redo() and np.array_equal(pred.mask, second)
    pred.new_object("spleen")
    pred.click((75, 75, 80))
    session = json.loads(json.dumps(pred.session))
    assert session["settings"]["mode"] == "zoom" and session["settings"]["levels"] == [1, 2, 4]
    again = Predictor.replay(session, ct, model=RegionModel())
    assert again.settings == pred.settings
    np.testing.assert_array_equal(again.label_map, pred.label_map)
    for a, b in zip(again.objects, pred.objects):
        for f in b.masks.levels:
            assert a.masks.levels[f].probs.keys() == b.masks.levels[f].probs.keys()
            for k, v in b.masks.levels[f].probs.items():
                np.testing.assert_array_equal(a.masks.levels[f].probs[k], v)


def test_logs_without_a_mode_replay_with_cross_patch_growth():
    ct, organ = organ_ct(70)
    pred = Predictor(RegionModel(), mode="grow").set_volume(ct)
    mask = pred.click((75, 75, 75))
    old = pred.session
    del old["settings"]["mode"], old["settings"]["levels"], old["settings"]["refine_budget"]  # as session 3 wrote
    again = Predictor.replay(old, ct, model=RegionModel())
    assert again.settings.mode == "grow" and np.array_equal(again.mask, mask)


class FailingModel(RegionModel):
    """Fails on the n-th decode."""

    def __init__(self, fail_at):
        super().__init__()
        self.fail_at, self.calls = fail_at, 0

    def decode(self, features, prompt):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("out of memory (injected)")
        return super().decode(features, prompt)


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_click_that_fails_leaves_the_predictor_as_it_was(fail_at, tmp_path):
    ct, organ = organ_ct(70)
    model = FailingModel(fail_at=10**9)
    pred = Predictor(model, zoom(), autosave=tmp_path).set_volume(ct)
    pred.click((75, 75, 75))
    before_mask, before_events = pred.mask.copy(), json.dumps(pred.session["events"])
    saved = (tmp_path / "ctsam3d_session.json").read_text()
    n_undo = len(pred._undo)
    model.fail_at, model.calls = fail_at, 0
    with pytest.raises(RuntimeError, match="injected"):
        pred.click((75, 75, 118), positive=False)
    assert np.array_equal(pred.mask, before_mask) and json.dumps(pred.session["events"]) == before_events
    assert len(pred._undo) == n_undo and len(pred.object.clicks) == 1
    assert (tmp_path / "ctsam3d_session.json").read_text() == saved
    assert pred.undo() and not pred.mask.any()  # the history is the one from before the failed click


def test_a_failing_autosave_warns_once_and_the_click_succeeds(tmp_path):
    ct, organ = organ_ct(20)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    pred = Predictor(RegionModel(), zoom(), autosave=blocker).set_volume(ct)
    with pytest.warns(UserWarning, match="autosave"):
        mask = pred.click((75, 75, 75))
    assert mask.any() and blocker.read_text() == "not a folder"


def test_level_masks_with_one_level_blend_exactly_like_patch_masks():
    rng = np.random.default_rng(0)
    pm, lm = PatchMasks((150, 140, 130)), LevelMasks((150, 140, 130))
    for o in [(0, 0, 0), (48, 0, 0), (48, 48, 30), (-10, 100, 90)]:
        p = rng.random((PATCH,) * 3).astype(np.float16)
        pm.probs[o] = lm.probs[o] = p
    assert np.array_equal(pm.blended(), lm.blended()) and np.array_equal(pm.bbox()[0], lm.bbox()[0])


def test_level_masks_view_up_and_down_keeps_voxel_centres():
    lm = LevelMasks((200, 200, 200), (1, 2))
    coarse = np.zeros((PATCH,) * 3, np.float16)
    coarse[20:40, 20:40, 20:40] = 1  # level-2 voxels 20..39 = level-1 voxels 40..78
    lm.level(2).probs[(0, 0, 0)] = coarse
    fine = lm.view(1, (0, 0, 0), (128, 128, 128))
    assert fine[40, 60, 78] == 1 and fine[39, 60, 60] == 0.5 and fine[79, 60, 60] == 0.5 and fine[30, 60, 60] == 0
    assert np.array_equal(lm.view(2, (0, 0, 0), (64, 64, 64)) > 0.5, coarse > 0.5)
    lm.probs[(40, 40, 40)] = np.zeros((PATCH,) * 3, np.float16)  # a finer patch overrides the coarse one there
    fine = lm.view(1, (0, 0, 0), (128, 128, 128))
    assert fine[72, 72, 72] == 0 and fine[41, 60, 60] > 0.5  # ramps into the coarse level at its faces


def test_tiles_hold_points_in_their_cores():
    pts = np.array([[0, 0, 0], [47, 47, 47], [48, 0, 0], [100, 5, 200]])
    tiles = tile_origins(pts)
    assert len(tiles) == 3
    for p in pts:
        assert sum(all(o + (PATCH - STRIDE) // 2 <= v < o + (PATCH + STRIDE) // 2 for v, o in zip(p, t))
                   for t in tiles) == 1


def test_downsample_matches_the_coarser_grid():
    ct, organ = organ_ct(30, shape=(61, 50, 47))
    grid = ModelGrid.covering(ct)
    img = grid.resample_ct(ct)
    small = downsample(img, 4)
    coarse = grid.coarser(4)
    assert small.shape == coarse.shape and coarse.spacing == 6.0 and coarse.origin_mm == grid.origin_mm
    assert abs(float(small[7, 6, 6]) - float(img[28, 24, 24])) < 0.05  # centred on voxel 4 i, smoothed
    for f in (2, 3, 4):  # filtered axis by axis on ever fewer voxels: scipy's 3D Gaussian, then every f-th voxel
        full = ndimage.gaussian_filter(img, sigma=0.42 * f, mode="nearest", truncate=3.0)[::f, ::f, ::f]
        np.testing.assert_allclose(downsample(img, f), full, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        downsample(img, 0)


@pytest.mark.parametrize("bad,match", [
    (dict(mode="zoomy"), "mode"), (dict(threshold=1.5), "threshold"), (dict(threshold=float("nan")), "threshold"),
    (dict(levels=(2, 4)), "levels"), (dict(levels=(1, 3, 4)), "levels"), (dict(refine_budget=-1), "refine_budget"),
    (dict(growth_budget=0), "growth_budget"), (dict(cpp_heatmaps="no"), "cpp_heatmaps"),
    (dict(cpp_peak_threshold=0.5), "cpp_heatmaps=True"), (dict(growth_min_agreement=2), "growth_min_agreement"),
])
def test_click_settings_refuse_nonsense(bad, match):
    with pytest.raises(ValueError, match=match):
        ClickSettings(**bad)


def test_whole_number_counts_from_json_become_ints_and_a_click_runs():
    """A log or JSON that holds 1.0 for a count was accepted, kept as a float, and the first click then failed
    in range(1 + self_rounds) (session 30 review)."""
    s = ClickSettings.from_dict({"self_rounds": 1.0, "growth_budget": 4.0, "refine_budget": 2.0,
                                 "retract_budget": 3.0})
    counts = (s.self_rounds, s.growth_budget, s.refine_budget, s.retract_budget)
    assert counts == (1, 4, 2, 3) and all(type(v) is int for v in counts)
    assert s.to_dict()["self_rounds"] == 1 and type(s.to_dict()["self_rounds"]) is int
    pred = Predictor(RegionModel(), s)
    pred.set_volume(CTVolume.from_array(np.full((40, 40, 40), 40, np.int16), spacing=(1.5, 1.5, 1.5)))
    assert pred.click((20, 20, 20)).shape == (40, 40, 40)


def test_click_settings_flags_are_generated_from_the_fields():
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    s = from_arguments(ap.parse_args(["--mode", "zoom", "--levels", "1", "2", "--refine-budget", "4",
                                      "--cpp-peak-threshold", "0.5", "--no-growth-guard"]))
    assert s == ClickSettings(mode="zoom", levels=(1, 2), refine_budget=4, cpp_heatmaps=True,
                              cpp_peak_threshold=0.5, growth_guard=False)
    assert from_arguments(ap.parse_args([])) == ClickSettings()
    with pytest.raises(SystemExit):
        from_arguments(ap.parse_args(["--threshold", "2"]), ap)
    with pytest.raises(TypeError, match="device="):
        Predictor(RegionModel(), "cpu")
    with pytest.raises(TypeError, match="unknown Predictor arguments"):
        Predictor(RegionModel(), growth_bugdet=3)


def test_zoom_runs_the_real_network_batched(tmp_path):
    """The batched refine path gives the same probabilities as one patch at a time (random nano weights)."""
    from ctsam3d_nb.modeling import build_model

    torch.manual_seed(0)
    model = build_model("nano")
    ct, organ = organ_ct(20, shape=(100, 100, 100), centre=(50, 50, 50))
    pred = Predictor(model, zoom(), device="cpu").set_volume(ct)
    obj = pred.new_object("organ")
    items = [(1, o, pred._prompt(obj, o)) for o in [(0, 0, 0), (48, 0, 0), (0, 48, 48)]]
    batched = pred.net.decode_many(items, batched=True)
    single = [pred.net.decode(o, pr, f) for f, o, pr in items]
    for a, b in zip(batched, single):
        np.testing.assert_allclose(a.astype(np.float32), b.astype(np.float32), atol=2e-3)


def test_the_status_line_says_where_the_mask_was_found():
    from ctsam3d_nb.viewer.slice_viewer import zoom_note

    assert zoom_note({"found_mm": 6.0, "refined_mm": 3.0}) == "found at 6 mm, refined at 3 mm"
    assert zoom_note({"found_mm": 1.5, "refined_mm": 1.5}) == "" and zoom_note({}) == ""
    assert "not refined" in zoom_note({"found_mm": 3.0, "refined_mm": float("nan")})


def test_the_viewer_status_shows_the_zoom_level_and_time():
    from ctsam3d_nb.viewer import SliceViewer

    ct, organ = organ_ct(70)
    viewer = SliceViewer(ct, Predictor(RegionModel(), zoom(refine_budget=0)), interactive=False)
    viewer.click((75, 75, 75))
    assert "found at 3 mm" in viewer.status.value and " ms" in viewer.status.value
    viewer.close()


def test_the_model_config_sigma_shapes_the_click_prompt():
    from ctsam3d_nb.modeling import build_model

    ct, organ = organ_ct(20, shape=(80, 80, 80), centre=(40, 40, 40))
    maps = []
    for sigma in (2.0, 4.0):
        model = build_model("nano", sigma=sigma)
        pred = Predictor(model, zoom(), device="cpu").set_volume(ct)
        pred.new_object("organ").add_click((40, 40, 40), (40.0, 40.0, 40.0), True)
        maps.append(pred._prompt(pred.object, (8, 8, 8))[1])
    assert maps[0][32, 32, 32] == maps[1][32, 32, 32] == 1
    assert maps[1][32, 32, 36] > maps[0][32, 32, 36] + 0.3  # a wider Gaussian 4 voxels from the click


def test_a_coarse_view_that_contradicts_the_finer_mask_is_not_kept():
    ct, organ = organ_ct(70)
    pred = Predictor(RegionModel(), zoom()).set_volume(ct)
    real = pred.net.decode

    def elsewhere(origin, prompt, factor=1):  # the coarse level "sees" another structure
        p = real(origin, prompt, factor)
        if factor > 1:
            p = np.zeros_like(p)
            p[:10, :10, :10] = 1
        return p

    pred.net.decode = elsewhere
    mask = pred.click((75, 75, 75))
    assert pred.last_timing["found_mm"] == 1.5 and not pred.object.masks.levels[2].probs
    assert pred.last_timing["decode_calls"] == 2 and mask[75, 75, 75]  # tried once, then kept the finer mask
    trusting = Predictor(RegionModel(), zoom(zoom_min_agreement=0)).set_volume(ct)
    keep = trusting.net.decode
    trusting.net.decode = lambda o, pr, f=1: keep(o, pr, f) * np.float16(f == 1)  # an empty coarse view
    trusting.click((75, 75, 75))
    assert trusting.last_timing["found_mm"] == 3.0  # 0 = always zoom


def test_when_no_level_fits_the_budget_the_surface_nearest_the_click_is_refined():
    from ctsam3d_nb.patches import origin_for

    ct, organ = organ_ct(70)
    pred = Predictor(RegionModel(), zoom(refine_budget=3)).set_volume(ct)
    mask = pred.click((75, 75, 60))
    found, refined = pred.last_timing["found_mm"], pred.last_timing["refined_mm"]
    assert found >= 3.0 and refined == found / 2  # the level below the coarse one
    f = int(refined / 1.5)
    g = np.asarray(pred.object.clicks[0][1]) / f
    tiles = [o for o in pred.object.masks.levels[f].probs if o != origin_for(g)]  # besides the zoom step
    assert len(tiles) == 3
    all_tiles = surface_tiles(pred, pred.object, f)
    dist = lambda o: float(np.sum((np.asarray(o) + 31.5 - g) ** 2))  # noqa: E731
    assert len(all_tiles) > 3 and max(dist(o) for o in tiles) <= sorted(dist(o) for o in all_tiles)[2] + 1e-6
    assert dice(mask, organ) > 0.9


@pytest.mark.filterwarnings("ignore:.*Hounsfield")  # the toy CT has no air
def test_set_volume_takes_what_load_ct_reads_and_summary_lists_the_objects():
    ct, organ = organ_ct(20, shape=(60, 60, 60), centre=(30, 30, 30))
    pred = Predictor(RegionModel(), zoom())
    pred.set_volume(ct.array, spacing=ct.spacing, origin=ct.origin)
    assert pred.ct.same_geometry(ct) and np.array_equal(pred.ct.array, ct.array)
    with pytest.raises(TypeError, match="spacing"):
        pred.set_volume(ct.array)  # no silent 1 mm
    with pytest.raises(TypeError, match="has its geometry"):
        pred.set_volume(ct, spacing=(1, 1, 1))
    pred.set_volume(ct.image)  # a SimpleITK image
    pred.new_object("liver")
    pred.click((30, 30, 30))
    pred.click((30, 30, 45), positive=False)
    pred.new_object("spleen")
    table = pred.summary()
    assert list(table["name"]) == ["liver", "spleen"] and list(table["clicks"]) == [2, 0]
    assert list(table["negative"]) == [1, 0] and table["voxels"][1] == 0
    liver = table.iloc[0]
    assert abs(liver["ml"] - organ.sum() * ct.voxel_volume_ml) < 0.1 * liver["ml"]
    assert abs(liver["mean_hu"] - 200) < 1
