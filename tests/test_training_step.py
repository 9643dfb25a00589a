"""The training step itself: bfloat16 against float32, a non-finite step skipped, one gradient round (RITM);
its data workers' priority."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from ctsam3d_nb.training import TrainConfig, train
from ctsam3d_nb.training.data import PatchSampler, phantom_source
from ctsam3d_nb.training.losses import mask_loss
from test_training import SMALL, _cfg


def test_bf16_precision_gives_the_fp32_loss_and_gradients():
    """bfloat16 autocast (TrainConfig.precision) computes the same step as float32, to bf16 round-off.

    Fresh models, fp32 and bf16 steps alternating: the order in which oneDNN's bf16 depthwise weight
    gradient once gave inf (see modeling/common.conv3d).
    """
    from ctsam3d_nb.modeling import build_model
    from ctsam3d_nb.training.loop import TrainStep, _collate
    from ctsam3d_nb.training.precision import cpu_has_native_bf16, use_bf16

    if not cpu_has_native_bf16():
        pytest.skip("this CPU emulates bfloat16 (no AVX512-BF16/AMX): its bf16 weight gradients are wrong, and "
                    "train() refuses bf16 here (test_bf16_on_a_cpu_that_emulates_it_is_refused)")
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert use_bf16("bf16", cpu) and not use_bf16("fp32", cpu) and not use_bf16("fp32", cuda)
    assert use_bf16("auto", cuda) and use_bf16("auto", cpu) == cpu_has_native_bf16()
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")

    cfg = TrainConfig(batch_size=2, click_rounds=2, cpp_pos_weight=500.0)
    sampler = PatchSampler([(phantom_source(11, SMALL), 1.0)], seed=2, pool_size=1, p_cpp=1.0)
    samples = [sampler.sample(i) for i in range(2)]
    results = []
    for bf16 in (False, True, False, True):
        torch.manual_seed(0)
        model = build_model("nano")
        batch = _collate(samples, cfg, np.random.default_rng(0), "cpu", model.config.cpp_sigma)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, metrics = TrainStep(model, cfg)(batch, np.random.default_rng(5))
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        assert torch.isfinite(grad).all(), f"bf16={bf16}: non-finite gradient"
        results.append((float(loss.detach()), metrics, grad))
    (l32, m32, g32), (l16, m16, g16) = results[:2]
    assert abs(l16 - l32) < 0.03 * l32, (l32, l16)
    assert m16["dice_r1"] == pytest.approx(m32["dice_r1"], abs=0.05)
    for _, _, g in results[1::2]:
        cos = float(torch.nn.functional.cosine_similarity(g32, g, dim=0))
        assert cos > 0.95, cos  # the update points the same way
        assert g.norm() < 2 * g32.norm()


def test_convs_on_small_maps_keep_float32_weight_gradients_under_cpu_autocast():
    """oneDNN's bf16 3D weight gradient on a 2x2x2 map (channels-last, the decoder's coarsest level) came out
    ~1e30 instead of ~1, or inf, in every trial on an AVX512-BF16 CPU without AMX (torch 2.13); larger maps were
    right. conv3d runs such convs in float32 under CPU autocast: their weight gradients equal float32's."""
    import torch.nn.functional as F

    from ctsam3d_nb.modeling.common import SMALL_CONV_VOXELS, conv3d

    for side, cin, cout in ((2, 3, 16), (2, 96, 96), (4, 64, 64), (8, 32, 32), (16, 16, 16)):
        torch.manual_seed(side + cin)
        x = torch.randn(2, cin, side, side, side).to(memory_format=torch.channels_last_3d)
        w = torch.randn(cout, cin, 3, 3, 3, requires_grad=True)
        upstream = torch.randn(2, cout, side, side, side)
        (F.conv3d(x, w, None, 1, 1) * upstream).sum().backward()
        g32, w.grad = w.grad.clone(), None
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = conv3d(x, w, None, 1, 1)
        (y.float() * upstream).sum().backward()
        small = side ** 3 <= SMALL_CONV_VOXELS
        assert (y.dtype == torch.float32) == small, (side, y.dtype)
        err = float((w.grad - g32).abs().max() / g32.abs().max())
        assert err < (1e-5 if small else 0.05), (side, cin, err)  # float32 exactly; bf16 to its round-off


def test_auto_precision_takes_bf16_only_on_cpus_with_bf16_hardware(tmp_path, monkeypatch):
    """precision="auto" picks bf16 on an x86 CPU only when its flags name AVX512-BF16 or AMX: oneDNN reports
    bf16 support on every AVX512 CPU, where bf16 is emulated and the step is slower (docs/benchmarks.md)."""
    import platform

    from ctsam3d_nb.training import precision

    head = "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512vl avx512dq"
    cases = {"avx512 only": (head, False), "avx512_bf16": (head + " avx512_bf16 avx512_vnni", True),
             "amx": (head + " amx_tile amx_bf16 amx_int8", True), "no flags line": ("processor\t: 0", False)}
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    for name, (text, native) in cases.items():
        info = tmp_path / name.replace(" ", "_")
        info.write_text(text + "\n\n" + text.replace("processor\t: 0", "processor\t: 1") + "\n")
        assert precision.cpu_has_native_bf16(str(info)) is native, name
    assert precision.cpu_has_native_bf16(str(tmp_path / "missing")) is False  # unreadable: float32, never slower
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert not precision.use_bf16("auto", torch.device("cpu")) and precision.use_bf16("bf16", torch.device("cpu"))
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.use_bf16("auto", torch.device("cpu"))


def test_bf16_on_a_cpu_that_emulates_it_is_refused(tmp_path, monkeypatch):
    """precision="bf16" on a CPU without bf16 hardware: one clear error before anything is written."""
    from ctsam3d_nb.training import precision

    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    out = tmp_path / "run"  # where _cfg puts the run
    with pytest.raises(ValueError, match="precision = 'bf16' on a CPU without bfloat16 hardware.*fp32"):
        train(_cfg(tmp_path, precision="bf16", device="cpu", steps=1))
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("factor", [float("inf"), 1e12])
def test_a_non_finite_or_absurd_step_is_skipped_not_applied(tmp_path, monkeypatch, factor):
    """A step whose loss/gradient is inf or NaN, or whose gradient norm is absurd (a broken bf16 kernel gave
    1e30), leaves the weights as they were."""
    import ctsam3d_nb.training.loop as loop

    real_loss, calls = loop.mask_loss, []

    def poisoned(*a, **k):  # the first step's loss is infinite, or finite with a gradient norm of ~1e11
        calls.append(1)
        loss = real_loss(*a, **k)
        return loss * factor if len(calls) <= 2 else loss  # click_rounds=2: 2 calls per step

    monkeypatch.setattr(loop, "mask_loss", poisoned)
    model = train(_cfg(tmp_path, steps=2), progress=False)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [l["skipped_steps"] for l in lines] == [1, 1]
    assert lines[0]["precision"] in ("bf16", "fp32")
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_one_gradient_round_back_propagates_only_the_last_round():
    """grad_rounds="one" (RITM): a step runs 1..click_rounds rounds, the earlier ones without gradient (they
    only place the next click), and its loss is the last round's mask loss; "all" trains every round."""
    from ctsam3d_nb.modeling import build_model
    from ctsam3d_nb.training.loop import TrainStep, _collate

    with pytest.raises(ValueError, match="grad_rounds"):
        TrainConfig(grad_rounds="last")
    sampler = PatchSampler([(phantom_source(11, SMALL), 1.0)], seed=2, pool_size=1, p_cpp=0.0)
    samples = [sampler.sample(i) for i in range(2)]
    torch.manual_seed(0)
    model = build_model("nano")
    calls = []  # (grad enabled, logits) per decoder pass
    model.mask_decoder.register_forward_hook(lambda m, a, out: calls.append((torch.is_grad_enabled(), out)))
    for mode in ("all", "one"):
        cfg = TrainConfig(batch_size=2, click_rounds=3, grad_rounds=mode, p_seeded=0.0)
        batch = _collate(samples, cfg, np.random.default_rng(0), "cpu", model.config.cpp_sigma)
        seen = set()
        for seed in range(12):
            calls.clear()
            loss, metrics = TrainStep(model, cfg)(batch, np.random.default_rng(seed))
            rounds = metrics["rounds"]
            seen.add(rounds)
            assert len(calls) == rounds and all(f"dice_r{r + 1}" in metrics for r in range(rounds))
            grads = [g for g, _ in calls]
            if mode == "all":
                assert rounds == 3 and all(grads)
                continue
            assert grads == [False] * (rounds - 1) + [True]
            last = mask_loss(calls[-1][1], batch["target"], cfg.dice_weight, cfg.focal_weight, cfg.focal_alpha,
                             cfg.focal_gamma)
            assert float(loss.detach()) == pytest.approx(float(last.detach()), rel=1e-5)
            model.zero_grad()
            loss.backward()
            assert all(p.grad is not None for p in model.mask_decoder.parameters() if p.requires_grad)
            assert any(float(p.grad.abs().sum()) > 0 for p in model.image_encoder.parameters() if p.grad is not None)
            if len(seen) == 3:
                break
        assert seen == ({3} if mode == "all" else {1, 2, 3})


class _Niceness(torch.utils.data.IterableDataset):
    def __iter__(self):
        yield os.nice(0)


@pytest.mark.skipif(not hasattr(os, "nice"), reason="no process priorities on this platform")
def test_data_workers_yield_the_cores_to_the_step():
    """A training data worker runs at a lower priority than the process that steps the model."""
    from ctsam3d_nb.training.loop import _yield_cores

    if os.nice(0) >= 19:
        pytest.skip("this process already runs at the lowest priority")
    loader = torch.utils.data.DataLoader(_Niceness(), batch_size=None, num_workers=1, worker_init_fn=_yield_cores)
    (worker,) = list(loader)
    assert worker > os.nice(0)


def test_first_click_depth_reaches_the_round_one_clicks(monkeypatch):
    """TrainConfig.first_click_depth is the depth fraction of each target's round-1 click in the step."""
    from ctsam3d_nb.clicks import first_click
    from ctsam3d_nb.modeling import build_model
    from ctsam3d_nb.training import loop

    with pytest.raises(ValueError, match="first_click_depth"):
        TrainConfig(first_click_depth=1.5)
    sampler = PatchSampler([(phantom_source(11, SMALL), 1.0)], seed=2, pool_size=1, p_cpp=0.0)
    samples = [sampler.sample(i) for i in range(2)]
    fractions = []
    monkeypatch.setattr(loop, "first_click", lambda g, rng=None, min_fraction=0.5: (
        fractions.append(min_fraction), first_click(g, rng=rng, min_fraction=min_fraction))[1])
    torch.manual_seed(0)
    model = build_model("nano")
    for depth in (0.5, 0.1):
        cfg = TrainConfig(batch_size=2, click_rounds=1, p_seeded=0.0, first_click_depth=depth)
        batch = _collate_for(samples, cfg, model)
        fractions.clear()
        with torch.no_grad():
            loop.TrainStep(model, cfg)(batch, np.random.default_rng(0))
        targets = sum(f == "target" for f in batch["first"])
        assert targets and fractions == [depth] * targets


def test_contents_samples_get_their_samplers_click_in_the_step(monkeypatch):
    """TrainConfig.p_contents: a "contents" sample's round-1 click is the one its sampler placed (`Sample.click`),
    carried through the batch into the step (other samples: test_training_patch_kinds)."""
    from ctsam3d_nb.modeling import build_model
    from ctsam3d_nb.training import loop

    with pytest.raises(ValueError, match="p_contents"):
        TrainConfig(p_contents=-0.1)
    with pytest.raises(ValueError, match="p_contents = 0.5 \\+ 0.0 \\+ 0.0 \\+ 0.6"):
        TrainConfig(p_lesion=0.5, p_contents=0.6)
    sampler = PatchSampler([(phantom_source(11, SMALL), 1.0)], seed=2, pool_size=1, p_cpp=0.0)
    samples = [sampler.sample(i) for i in range(2)]
    for s in samples:
        z, y, x = np.argwhere(s.target)[0]
        s.first, s.click = "contents", (int(z), int(y), int(x))  # an edge voxel: never the deep click
    got, real = [], loop._first_clicks
    monkeypatch.setattr(loop, "_first_clicks", lambda *a, **k: got.append(real(*a, **k)) or got[-1])
    torch.manual_seed(0)
    model = build_model("nano")
    cfg = TrainConfig(batch_size=2, click_rounds=1, p_seeded=0.0)
    batch = _collate_for(samples, cfg, model)
    assert batch["clicks"] == [s.click for s in samples]
    with torch.no_grad():
        loop.TrainStep(model, cfg)(batch, np.random.default_rng(0))
    assert got[0][0] == [[s.click] for s in samples]


def _collate_for(samples, cfg, model):
    from ctsam3d_nb.training.loop import _collate
    return _collate(samples, cfg, np.random.default_rng(0), "cpu", model.config.cpp_sigma)


def _face_slabs(target):
    """The seeded round's candidate slabs (`loop._collate`): SLAB-deep at each face the target touches."""
    from ctsam3d_nb.training.loop import SLAB
    out = []
    for a in range(3):
        for d in (-1, 1):
            edge = (slice(None),) * a + ((slice(0, 2) if d < 0 else slice(-2, None)),)
            if target[edge].any():
                sl = np.zeros(target.shape, bool)
                sl[(slice(None),) * a + ((slice(0, SLAB) if d < 0 else slice(-SLAB, None)),)] = True
                out.append(sl)
    return out


def test_partial_seeded_slabs_hold_part_of_the_target_at_a_face():
    """TrainConfig.p_seeded_partial: a seeded round's mask slab is then a ball of the target's voxels there (what an
    under-segmenting neighbour carries into a grown patch); without it the slab is the target's, unchanged."""
    from ctsam3d_nb.training.loop import SLAB
    from ctsam3d_nb.training.targets import partial_slab

    with pytest.raises(ValueError, match="p_seeded_partial"):
        TrainConfig(p_seeded_partial=1.5)
    sampler = PatchSampler([(phantom_source(11, SMALL), 1.0)], seed=2, pool_size=1, p_cpp=0.0)
    samples = [s for s in (sampler.sample(i) for i in range(12))
               if s.prior is None and min((s.target & f).sum() for f in _face_slabs(s.target) or [0]) > 200]
    assert len(samples) >= 3
    shares = []
    for partial in (0.0, 1.0):
        cfg = TrainConfig(batch_size=len(samples), p_seeded=1.0, p_seeded_partial=partial)
        batch = _collate_for(samples, cfg, build_model_nano())
        # a partial slab's round-1 click lies in it (the predictor seeds a grown patch in what it carried)
        assert batch["first"] == [("prior" if partial and s.first == "target" else s.first) for s in samples]
        for s, prior in zip(samples, batch["prior"].numpy() > 0.5):
            slab = [f for f in _face_slabs(s.target) if prior.any() and not (prior & ~f).any()]
            assert slab and not (prior & ~s.target).any()  # in one face slab, on the target only
            if partial:
                shares.append(max(prior.sum() / (s.target & f).sum() for f in slab))
            else:
                assert any(np.array_equal(prior, s.target & f) for f in slab)
    assert all(0.1 < x < 0.95 for x in shares) and np.ptp(shares) > 0.1, shares
    slab = samples[0].target[:SLAB]
    a, b = (partial_slab(slab, np.random.default_rng(k)) for k in (5, 5))
    assert np.array_equal(a, b) and not np.array_equal(a, partial_slab(slab, np.random.default_rng(6)))
    one = np.zeros_like(slab)
    one[3, 4, 5] = True
    assert np.array_equal(partial_slab(one, np.random.default_rng(0)), one)  # nothing to cut from one voxel



def test_leaky_seeded_slabs_carry_a_neighbour_the_label_leaves_out():
    """TrainConfig.p_seeded_leak: a seeded round's slab then also holds a structure touching the target there (a
    neighbour's leak carried into a grown patch), the target unchanged, the click in what was carried of it; the
    sampler draws the leak from a stream of its own, so the rest of the data is the same with and without."""
    from scipy import ndimage

    with pytest.raises(ValueError, match="p_seeded_leak"):
        TrainConfig(p_seeded_leak=-0.1)
    cfg = TrainConfig(p_seeded_leak=0.5)
    assert PatchSampler.from_config(cfg, [(phantom_source(11, SMALL), 1.0)]).leaks
    kw = dict(seed=2, pool_size=1, p_cpp=0.0, p_refine_prior=0.3)
    plain = [PatchSampler([(phantom_source(11, SMALL), 1.0)], **kw).sample(i) for i in range(16)]
    leaky = [PatchSampler([(phantom_source(11, SMALL), 1.0)], leaks=True, **kw).sample(i) for i in range(16)]
    assert all(s.leak is None for s in plain)
    for a, b in zip(plain, leaky):
        assert np.array_equal(a.image, b.image) and np.array_equal(a.target, b.target) and a.first == b.first
        if b.prior is not None:
            assert b.leak is None  # a refine or zoom step starts from its own mask: not seeded
        elif b.leak is not None:
            assert not (b.leak & b.target).any() and (b.leak & ndimage.binary_dilation(b.target, iterations=2)).any()
    samples = [s for s in leaky if s.leak is not None
               and any((s.leak & f).sum() > 50 and (s.target & f).sum() > 50 for f in _face_slabs(s.target))]
    assert len(samples) >= 3
    batch = _collate_for(samples, TrainConfig(batch_size=len(samples), p_seeded=1.0, p_seeded_leak=1.0),
                         build_model_nano())
    assert batch["first"] == ["prior" if s.first == "target" else s.first for s in samples]
    off = []
    for s, prior, tgt in zip(samples, batch["prior"].numpy() > 0.5, batch["target"].numpy()[:, 0] > 0.5):
        assert np.array_equal(tgt, s.target)  # the label stays the target
        slab = [f for f in _face_slabs(s.target) if prior.any() and not (prior & ~f).any()]
        assert any(np.array_equal(prior, (s.target | s.leak) & f) for f in slab)
        off.append((prior & ~s.target).sum())
    assert sum(n > 0 for n in off) >= 2, off  # most slabs carry some of the leak


def build_model_nano():
    from ctsam3d_nb.modeling import build_model
    torch.manual_seed(0)
    return build_model("nano")
