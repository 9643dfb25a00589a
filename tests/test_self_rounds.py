"""ClickSettings.self_rounds: a positive click's patches decoded again with their own mask in the prompt."""
from __future__ import annotations

import numpy as np
import pytest

from ctsam3d_nb import ClickSettings
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.volume import CTVolume
from region_model import RegionModel


def ball_ct(radius=22, size=64):
    """A bright ball (200 HU) of ``radius`` voxels in soft tissue, inside one 64³ patch."""
    zz, yy, xx = np.indices((size,) * 3) - size // 2
    ball = zz ** 2 + yy ** 2 + xx ** 2 <= radius ** 2
    return CTVolume.from_array(np.where(ball, 200, 0).astype(np.int16), spacing=(1.5, 1.5, 1.5)), ball


def slow_model():
    return RegionModel(reach=3, steps=2)  # one decode reaches 6 voxels beyond its seeds: partial, like nano


def test_each_round_extends_the_mask_the_model_left_partial():
    ct, ball = ball_ct()
    sizes, calls = [], []
    for rounds in (0, 1, 3):
        pred = Predictor(slow_model(), self_rounds=rounds).set_volume(ct)
        mask = pred.click((32, 32, 32))
        sizes.append(int(mask.sum()))
        calls.append(pred.last_timing["decode_calls"])
        assert not (mask & ~ball).any()  # the model's own bounds still hold
    assert sizes[0] < sizes[1] < sizes[2] <= ball.sum()
    assert sizes[0] < 0.2 * ball.sum() and sizes[2] > 0.5 * ball.sum()
    assert calls == [1, 2, 4]  # one patch holds the click: decoded 1 + self_rounds times


def test_negative_clicks_take_no_extra_rounds_and_sessions_replay():
    ct, ball = ball_ct()
    pred = Predictor(slow_model(), self_rounds=2).set_volume(ct)
    pred.click((32, 32, 32))
    mask = pred.click((32, 32, 40), positive=False).copy()
    assert pred.last_timing["decode_calls"] == 1
    again = Predictor.replay(pred.session, ct, model=slow_model())
    assert again.settings.self_rounds == 2 and np.array_equal(again.mask, mask)
    old = pred.session
    del old["settings"]["self_rounds"]  # a log from before session 12 has no such key: replayed without rounds
    assert Predictor.replay(old, ct, model=slow_model()).settings.self_rounds == 0
    for bad in (-1, 9, 1.5, True):
        with pytest.raises(ValueError, match="self_rounds"):
            ClickSettings(self_rounds=bad)
