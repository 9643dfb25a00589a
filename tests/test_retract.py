"""ClickSettings.retract_budget: a negative click's removal followed into the patches beside it."""
from __future__ import annotations

import numpy as np
import pytest

from ctsam3d_nb import ClickSettings
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.volume import CTVolume
from region_model import RegionModel
from test_predictor import dice


class LeakModel(RegionModel):
    """RegionModel that reads a negative click as "not this structure": it drops every voxel of the mask whose
    intensity is that under the click (what the leak-prior training teaches), not only a ball around it."""

    def decode(self, features, prompt):
        logits = super().decode(features, prompt)
        image, neg = features[0], prompt[:, 2:3] > 0.5
        for b in range(image.shape[0]):
            if neg[b].any():
                value = image[b][neg[b]].mean()
                logits[b][(logits[b] > 0) & ((image[b] - value).abs() < 0.05)] = -10.0
        return logits


def leak_ct(length=260):
    """A bright tube (200 HU, the target) along z, and beside it, touching it over most of its length, a
    dimmer bar (120 HU: the leak); soft tissue (0 HU) around."""
    hu = np.zeros((length, 60, 60), np.int16)
    zz, yy, xx = np.indices(hu.shape)
    tube = ((yy - 30) ** 2 + (xx - 30) ** 2 <= 25) & (zz >= 10) & (zz < length - 10)
    bar = (yy >= 35) & (yy < 43) & (np.abs(xx - 30) <= 4) & (zz >= 30) & (zz < length - 30)
    hu[tube] = 200
    hu[bar & ~tube] = 120
    return CTVolume.from_array(hu, spacing=(1.5, 1.5, 1.5)), tube, bar & ~tube


def test_a_negative_click_on_a_leak_removes_it_in_every_patch():
    ct, tube, bar = leak_ct()
    got = {}
    for budget in (0, 16):
        pred = Predictor(LeakModel(), retract_budget=budget).set_volume(ct)
        first = pred.click((130, 30, 30))
        assert first[bar].mean() > 0.9 and len(pred.object.masks.probs) >= 4  # grown over the tube and the bar
        mask = pred.click((130, 39, 30), positive=False)
        got[budget] = (mask[bar].mean(), dice(mask, tube), pred.last_timing["decode_calls"])
    (left0, dice0, calls0), (left, dice_, calls) = got[0], got[16]
    assert left0 > 0.3  # without retraction the bar stays in the patches that do not hold the click
    assert left < 0.02 and dice_ > 0.97 and dice_ > dice0 + 0.1  # with it the bar is gone, the tube kept
    assert calls > calls0


def test_retraction_is_undone_and_replayed():
    ct, tube, bar = leak_ct()
    pred = Predictor(LeakModel(), retract_budget=16).set_volume(ct)
    before = pred.click((130, 30, 30)).copy()
    after = pred.click((130, 39, 30), positive=False).copy()
    again = Predictor.replay(pred.session, ct, model=LeakModel())
    assert again.settings.retract_budget == 16 and np.array_equal(again.mask, after)
    assert pred.undo() and np.array_equal(pred.mask, before)


def test_logs_from_before_retraction_replay_without_it():
    ct, tube, bar = leak_ct()
    pred = Predictor(LeakModel(), retract_budget=0).set_volume(ct)  # as every session before session 11
    pred.click((130, 30, 30))
    mask = pred.click((130, 39, 30), positive=False)
    old = pred.session
    del old["settings"]["retract_budget"]  # such logs have no such key
    again = Predictor.replay(old, ct, model=LeakModel())
    assert again.settings.retract_budget == 0 and np.array_equal(again.mask, mask) and mask[bar].any()


def test_positive_clicks_and_small_trims_retract_nothing():
    ct, tube, bar = leak_ct()
    calls = {}
    for budget in (0, 16):
        pred = Predictor(RegionModel(), retract_budget=budget).set_volume(ct)
        pred.click((130, 30, 30))
        pred.click((60, 30, 30))
        positive = pred.last_timing["decode_calls"]
        mask = pred.click((130, 30, 36), positive=False)  # the tube's edge: the ball trims a few hundred voxels
        calls[budget] = (positive, pred.last_timing["decode_calls"], int(mask.sum()))
    assert calls[16] == calls[0]  # nothing beyond the patches that hold the click is re-decoded


def test_retract_budget_is_a_checked_setting():
    assert ClickSettings().retract_budget == 0
    with pytest.raises(ValueError, match="retract_budget"):
        ClickSettings(retract_budget=-1)
    with pytest.raises(ValueError, match="retract_budget"):
        ClickSettings(retract_budget=2.5)
