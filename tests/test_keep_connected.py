"""ClickSettings.keep_connected: after a click only the mask's parts a positive click touches stay."""
from __future__ import annotations

import numpy as np
import pytest

from ctsam3d_nb import ClickSettings
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.reach import keep_connected
from region_model import RegionModel
from test_predictor import HazeModel, blob_ct, dice, tube_ct


def test_unconnected_leak_is_dropped_and_undo_brings_it_back():
    ct, tube, blob = blob_ct()
    off = Predictor(HazeModel(), cpp_heatmaps=True, keep_connected=False).set_volume(ct)
    assert off.click((130, 30, 30))[blob].mean() > 0.9  # the haze takes the unconnected blob in
    pred = Predictor(HazeModel(), cpp_heatmaps=True, keep_connected=True).set_volume(ct)
    mask = pred.click((130, 30, 30))
    assert not mask[blob].any() and dice(mask, tube) > 0.97
    assert pred.last_timing["connected"] >= 0
    again = Predictor.replay(pred.session, ct, model=HazeModel())
    assert again.settings.keep_connected and np.array_equal(again.mask, mask)
    both = pred.click((180, 10, 10)).copy()  # a positive click on the blob anchors it: both parts stay
    assert both[blob].mean() > 0.9 and dice(both & tube, tube) > 0.97
    assert pred.undo() and np.array_equal(pred.mask, mask)


def test_negative_click_that_cuts_a_leak_removes_what_lies_beyond():
    ct, tube, branch = tube_ct(260)  # the branch runs from the tube (x 30) to x 54 at z 117..123
    far = (120, 30, 52)
    for kc in (False, True):
        pred = Predictor(RegionModel(), keep_connected=kc).set_volume(ct)
        assert pred.click((130, 30, 30))[far]  # the branch leaked in
        mask = pred.click((120, 30, 40), positive=False)  # cuts the branch next to the tube
        assert not mask[120, 30, 40] and dice(mask & tube, tube) > 0.97
        # the decoder only erases around the negative click: the far end stays unless it is dropped
        assert mask[far] != kc


def test_clicks_off_the_mask_drop_nothing():
    ct, tube, blob = blob_ct()
    pred = Predictor(HazeModel(), cpp_heatmaps=True, keep_connected=True).set_volume(ct)
    pred.click((130, 30, 30))
    before = {o: p for o, p in pred.object.masks.probs.items()}
    pred.object.clicks[:] = [c._replace(grid_zyx=(130.0, 2.0, 2.0)) for c in pred.object.clicks]  # dark corner
    assert keep_connected(pred, pred.object) == 0
    assert all(pred.object.masks.probs[o] is p for o, p in before.items())  # not even copied


def test_coarse_zoom_levels_are_cleaned_too():
    ct, tube, _ = tube_ct(260)
    pred = Predictor(RegionModel(), mode="zoom").set_volume(ct)
    obj = pred.new_object("tube")
    p = np.zeros((64,) * 3, np.float16)
    p[10:20, 10:20, 10:20] = 1  # level-2 voxels 10..19: grid voxels 20..38
    p[40:50, 2:9, 2:9] = 1  # grid voxels z 80..98, y and x 4..16: not connected to the first
    obj.masks.level(2).probs[(0, 0, 0)] = p
    obj.add_click((30, 30, 30), (30.0, 30.0, 30.0), True)
    dropped = keep_connected(pred, obj)
    assert 19 * 13 * 13 // 2 <= dropped <= 19 * 13 * 13 * 2
    view = obj.masks.view(1, (0, 0, 0), (100, 60, 60)) > 0.5
    assert view[30, 30, 30] and not view[80:99, 4:17, 4:17].any()
    assert obj.masks.level(2).probs[(0, 0, 0)] is not p and p[45, 5, 5] == 1  # replaced, not changed in place


def test_keep_connected_is_a_checked_setting():
    assert ClickSettings().keep_connected is True
    with pytest.raises(ValueError, match="keep_connected"):
        ClickSettings(keep_connected=1)


def test_the_click_mask_reuses_one_blend_and_equals_a_fresh_one():
    """The click's mask is built from the blend keep_connected made (when it dropped nothing) or from a new one
    (when it did): either way it equals the object's patches blended again from scratch."""
    from ctsam3d_nb.predictor_state import to_ct_mask

    ct, tube, blob = blob_ct()
    pred = Predictor(HazeModel(), cpp_heatmaps=True, keep_connected=True).set_volume(ct)
    obj = pred.new_object("tube")
    for zyx, positive in (((130, 30, 30), True), ((180, 10, 10), True), ((60, 30, 30), False)):
        mask = pred.click(zyx, positive)
        fresh = to_ct_mask(obj.masks, pred.grid, pred.ct, pred.threshold)
        assert mask.any() and np.array_equal(mask, fresh)
        lo, hi, probs = obj.masks.mask_box(pred.threshold)
        assert np.array_equal(probs, obj.masks.view(1, lo, hi))
    assert keep_connected(pred, obj, box=obj.masks.mask_box(pred.threshold)) == 0  # nothing left to drop
