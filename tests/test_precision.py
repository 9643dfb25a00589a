"""ClickSettings.precision: the model's arithmetic on the click path (float32, or bfloat16 autocast)."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from ctsam3d_nb import ClickSettings, Predictor, cpu_features, first_click, load_model, load_sample
from ctsam3d_nb.settings import PRECISIONS, add_arguments, from_arguments

NATIVE_BF16 = cpu_features.cpu_has_native_bf16()
needs_bf16_hardware = pytest.mark.skipif(
    not NATIVE_BF16, reason="this CPU has no bfloat16 hardware (AVX512-BF16/AMX), so the click path refuses "
    "precision='bf16' (test_bf16_on_a_cpu_that_emulates_it_is_refused)")


@pytest.fixture(scope="module")
def spleen_sessions():
    """The shipped weights on the bundled sample: the spleen from its deepest point, then a second click,
    once per precision."""
    ct, labels, names = load_sample()
    gt = labels == {v: k for k, v in names.items()}["spleen"]
    model = load_model("nano")
    out = {}
    for precision in PRECISIONS if NATIVE_BF16 else ("auto", "fp32"):
        pred = Predictor(model, precision=precision, device="cpu").set_volume(ct)
        pred.new_object("spleen")
        first = pred.click(first_click(gt)).copy()
        second = pred.click((first_click(gt)[0] + 3, *first_click(gt)[1:]))
        out[precision] = (pred, first, second.copy())
    return ct, gt, out


@needs_bf16_hardware
def test_bf16_gives_nearly_the_same_masks_as_float32(spleen_sessions):
    ct, gt, out = spleen_sessions
    _, f32, f32b = out["fp32"]
    _, b16, b16b = out["bf16"]
    for a, b in ((f32, b16), (f32b, b16b)):
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.97  # the same organ
    dice = lambda m: 2 * (m & gt).sum() / (m.sum() + gt.sum())  # noqa: E731
    assert abs(dice(f32) - dice(b16)) < 0.03
    probs = lambda p: np.concatenate([v.ravel() for v in p.object.masks.probs.values()])  # noqa: E731
    # bfloat16 really ran: the stored probabilities are not float32's
    assert not np.array_equal(probs(out["fp32"][0]), probs(out["bf16"][0]))


def test_auto_is_float32_on_the_cpu(spleen_sessions):
    _, _, out = spleen_sessions
    assert np.array_equal(out["auto"][1], out["fp32"][1]) and np.array_equal(out["auto"][2], out["fp32"][2])
    for a, b in zip(out["auto"][0].object.masks.probs.values(), out["fp32"][0].object.masks.probs.values()):
        assert np.array_equal(a, b)


@needs_bf16_hardware
def test_the_session_log_keeps_the_precision_and_replays_it(spleen_sessions):
    ct, _, out = spleen_sessions
    pred = out["bf16"][0]
    session = json.loads(json.dumps(pred.session))
    assert session["settings"]["precision"] == "bf16"
    again = Predictor.replay(session, ct, model=pred.model)
    assert again.settings.precision == "bf16"
    np.testing.assert_array_equal(again.mask, pred.mask)


def test_precision_is_a_checked_setting_and_a_flag():
    assert ClickSettings().precision == "auto"
    with pytest.raises(ValueError, match="precision.*'auto', 'fp32', 'bf16'"):
        ClickSettings(precision="fp16")
    ap = argparse.ArgumentParser()
    add_arguments(ap)
    assert from_arguments(ap.parse_args(["--precision", "bf16"])).precision == "bf16"
    with pytest.raises(SystemExit):
        ap.parse_args(["--precision", "half"])


def test_bf16_on_a_cpu_that_emulates_it_is_refused(spleen_sessions, monkeypatch):
    """A CPU without bfloat16 hardware emulates it, ~190x slower per decode (AVX2, docs/benchmarks.md): the
    Predictor refuses precision='bf16' there with the fix, and a bf16 session log replays there in float32."""
    ct, _, out = spleen_sessions
    model = out["fp32"][0].model
    monkeypatch.setattr(cpu_features, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ValueError, match="'bf16' on a CPU without bfloat16 hardware.*precision='auto'"):
        Predictor(model, precision="bf16", device="cpu")
    with pytest.raises(ValueError, match="'bf16' on a CPU without bfloat16 hardware"):
        Predictor(model, ClickSettings(precision="bf16"), device="cpu")
    session = json.loads(json.dumps(out["fp32"][0].session))
    session["settings"]["precision"] = "bf16"  # as recorded on a machine with bf16 hardware
    with pytest.raises(ValueError, match="Predictor.replay\\(session, ct, precision='fp32'\\)"):
        Predictor.replay(session, ct, model=model)
    again = Predictor.replay(session, ct, model=model, precision="fp32")
    assert again.settings.precision == "fp32"
    np.testing.assert_array_equal(again.mask, out["fp32"][2])
