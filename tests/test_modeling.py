"""Tests for ctsam3d_nb.modeling: shapes, PSAP maps, SPADE, the oneDNN conv route, training, CPP."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from ctsam3d_nb.modeling import (
    CTSAM3D,
    MODEL_CONFIGS,
    ModelConfig,
    build_model,
    build_prompt_map,
    cpp_target_heatmap,
    fast_conv,
    heatmap_to_clicks,
    prompt_pyramid,
)
from ctsam3d_nb.modeling.common import UpConv3d, conv3d, pixel_shuffle_3d, pixel_unshuffle_3d
from ctsam3d_nb.modeling.mask_decoder import SpadeStem
from ctsam3d_nb.modeling.prompt import build_prompt_maps, click_gaussians

torch.set_num_threads(2)
P = 64


def _n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def nano() -> CTSAM3D:
    torch.manual_seed(0)
    return build_model("nano").eval()


@pytest.fixture(scope="module")
def tiny() -> CTSAM3D:
    torch.manual_seed(0)
    return build_model("tiny").eval()


# ---------------------------------------------------------------- shapes


@pytest.mark.parametrize("name", ["nano", "tiny"])
def test_encoder_feature_shapes(name, nano, tiny):
    model = {"nano": nano, "tiny": tiny}[name]
    with torch.inference_mode():
        feats = model.image_encoder(torch.rand(1, 1, P, P, P))
    assert len(feats) == 4
    chans = model.config.encoder_out_channels
    assert [tuple(f.shape) for f in feats] == [(1, chans[i], s, s, s) for i, s in enumerate((16, 8, 4, 2))]


def test_decoder_and_forward_shapes(nano):
    image = torch.rand(2, 1, P, P, P)
    prompt = build_prompt_maps(None, [[(30, 30, 30)], [(10, 50, 20), (40, 40, 40)]], [[1], [1, 0]])
    with torch.inference_mode():
        feats = nano.encode(image)
        logits = nano.decode(feats, prompt)
        assert logits.shape == (2, 1, P, P, P)
        assert torch.allclose(nano(image, prompt), logits)
        assert torch.isfinite(logits).all()


def test_cpp_output_shape(nano):
    with torch.inference_mode():
        heat = nano.cpp(torch.rand(1, 1, P, P, P), torch.rand(1, 1, P, P, P), torch.rand(1, 1, P, P, P))
    assert heat.shape == (1, 1, P, P, P)


def test_bad_shapes_raise_clear_errors(nano):
    with pytest.raises(ValueError, match="patch_size"):
        nano.encode(torch.rand(1, 1, 32, 32, 32))
    with pytest.raises(ValueError, match="prompt_map"):
        nano.decode(nano.encode(torch.rand(1, 1, P, P, P)), torch.zeros(1, 2, P, P, P))


# ---------------------------------------------------------------- PSAP prompts


def test_click_gaussian_peak_channel_and_cutoff():
    m = click_gaussians([(20, 30, 40), (50, 5, 60)], [1, 0], size=P, sigma=2.0, radius=8)
    assert m.shape == (2, P, P, P) and m.dtype == torch.float32
    pos, neg = m[0], m[1]
    assert pos[20, 30, 40] == 1.0 and neg[50, 5, 60] == 1.0
    assert pos.max() == 1.0 and neg.max() == 1.0
    assert torch.nonzero(pos == pos.max()).tolist() == [[20, 30, 40]]
    assert neg[20, 30, 40] == 0.0 and pos[50, 5, 60] == 0.0  # the right channel only
    # Gaussian value one voxel off the centre.
    assert pos[21, 30, 40].item() == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    # exactly zero beyond the radius, non-zero just inside
    zz, yy, xx = torch.meshgrid(*[torch.arange(P)] * 3, indexing="ij")
    d2 = (zz - 20) ** 2 + (yy - 30) ** 2 + (xx - 40) ** 2
    assert (pos[d2 > 64] == 0).all()
    assert (pos[d2 <= 64] > 0).all()


def test_clicks_max_combine_and_border():
    m = click_gaussians([(0, 0, 0), (2, 0, 0)], [True, True])
    assert m[0, 0, 0, 0] == 1.0 and m[0, 2, 0, 0] == 1.0  # max, not sum: peaks stay 1
    assert m[0, 1, 0, 0].item() == pytest.approx(np.exp(-1 / 8), rel=1e-6)
    far = click_gaussians([(-20, 5, 5)], [1])  # outside, farther than the radius
    assert far.abs().sum() == 0
    with pytest.raises(ValueError, match="labels"):
        click_gaussians([(1, 2, 3)], [2])
    with pytest.raises(ValueError, match="label"):
        click_gaussians([(1, 2, 3), (4, 5, 6)], [1])


def test_prompt_map_channels():
    first = build_prompt_map(None, [(32, 32, 32)], [1])
    assert first.shape == (3, P, P, P)
    assert first[0].abs().sum() == 0  # no previous mask before the first click
    assert first[1, 32, 32, 32] == 1.0 and first[2].abs().sum() == 0
    prev = np.random.default_rng(0).random((P, P, P)).astype(np.float32)
    second = build_prompt_map(prev, [(32, 32, 32), (10, 10, 10)], [1, 0])
    assert np.array_equal(second[0].numpy(), prev)
    assert second[2, 10, 10, 10] == 1.0
    with pytest.raises(ValueError, match="shape"):
        build_prompt_map(np.zeros((32, 32, 32)), [(1, 1, 1)], [1])


def test_prompt_pyramid_keeps_clicks_and_averages_mask():
    pm = build_prompt_map(None, [(33, 17, 50)], [1])[None]
    pm[0, 0, :32] = 1.0  # previous mask: the lower half
    levels = prompt_pyramid(pm, 6)
    assert [lv.shape[-1] for lv in levels] == [64, 32, 16, 8, 4, 2]
    for k, lv in enumerate(levels):
        f = 2**k
        assert lv[0, 1].max() == 1.0  # the click survives at every scale ...
        assert lv[0, 1, 33 // f, 17 // f, 50 // f] == 1.0  # ... in the cell holding it
        assert lv[0, 0].mean().item() == pytest.approx(0.5)  # mask: area average


# ---------------------------------------------------------------- SPADE


def test_spade_stem_shapes():
    stem = SpadeStem((24, 16), hidden=8)
    mods = stem(torch.rand(2, 3, 8, 8, 8))
    assert [tuple(t.shape) for pair in mods for t in pair] == [
        (2, 24, 8, 8, 8), (2, 24, 8, 8, 8), (2, 16, 8, 8, 8), (2, 16, 8, 8, 8)]


def test_decoder_output_depends_on_prompt(nano):
    with torch.inference_mode():
        feats = nano.encode(torch.rand(1, 1, P, P, P))
        a = nano.decode(feats, build_prompt_map(None, [(20, 20, 20)], [1])[None])
        b = nano.decode(feats, build_prompt_map(None, [(44, 44, 44)], [1])[None])
        c = nano.decode(feats, build_prompt_map(None, [(20, 20, 20)], [0])[None])
        prev = torch.zeros(P, P, P)
        prev[10:30, 10:30, 10:30] = 1
        d = nano.decode(feats, build_prompt_map(prev, [(20, 20, 20)], [1])[None])
    for other in (b, c, d):
        assert (a - other).abs().max() > 1e-3


# ---------------------------------------------------------------- oneDNN conv route

CONV_CASES = [  # (batch, cin, cout, size, kernel, stride, groups)
    (1, 16, 16, 32, 3, 1, 1),
    (1, 3, 8, 16, 3, 1, 1),
    (2, 8, 8, 16, 3, 1, 1),
    (1, 1, 12, 32, 3, 2, 1),
    (1, 8, 8, 16, 3, 1, 8),
    (1, 16, 16, 16, 9, 8, 16),
    (1, 24, 16, 8, 1, 1, 1),
]


@pytest.mark.parametrize("b,cin,cout,s,k,stride,groups", CONV_CASES)
def test_routed_conv_matches_f_conv3d(b, cin, cout, s, k, stride, groups):
    g = torch.Generator().manual_seed(cin * 100 + cout)
    x = torch.rand(b, cin, s, s, s, generator=g).requires_grad_()
    w = (torch.randn(cout, cin // groups, k, k, k, generator=g) * 0.1).requires_grad_()
    bias = torch.randn(cout, generator=g).requires_grad_()
    pad = k // 2
    ref = F.conv3d(x, w, bias, stride, pad, 1, groups)
    out = conv3d(x, w, bias, stride, pad, 1, groups)
    assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)
    grad_out = torch.randn_like(ref)
    g_ref = torch.autograd.grad(ref, (x, w, bias), grad_out)
    g_out = torch.autograd.grad(out, (x, w, bias), grad_out)
    for a, r in zip(g_out, g_ref):
        assert torch.allclose(a, r, atol=1e-4 * max(1.0, r.abs().max().item()), rtol=1e-4)


def _conv_kernels(fn) -> set[str]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def test_routing_picks_onednn_where_pytorch_would_not():
    x, w = torch.rand(1, 16, 32, 32, 32), torch.rand(16, 16, 3, 3, 3)
    with torch.inference_mode():
        with fast_conv(False):
            default = _conv_kernels(lambda: conv3d(x, w, padding=1))
        routed = _conv_kernels(lambda: conv3d(x, w, padding=1))
    # torch 2.x picks its slow reference kernel for this small batch-1 input (not asserted:
    # the heuristic may change upstream); the route must always run oneDNN.
    assert "aten::mkldnn_convolution" in routed and "aten::slow_conv3d_forward" not in routed
    assert default  # the profiler saw the default call too


def test_routing_skipped_off_cpu_and_for_other_dtypes():
    # 'meta' tensors stand in for CUDA: the route must fall back to F.conv3d (which handles them).
    y = conv3d(torch.empty(1, 4, 8, 8, 8, device="meta"), torch.empty(4, 4, 3, 3, 3, device="meta"), padding=1)
    assert y.device.type == "meta" and y.shape == (1, 4, 8, 8, 8)
    x, w = torch.rand(1, 4, 8, 8, 8, dtype=torch.float64), torch.rand(4, 4, 3, 3, 3, dtype=torch.float64)
    kernels = _conv_kernels(lambda: conv3d(x, w, padding=1))
    assert "aten::mkldnn_convolution" not in kernels
    assert torch.allclose(conv3d(x, w, padding=1), F.conv3d(x, w, padding=1))


def test_model_runs_off_cpu_without_routing():
    # 'meta' tensors stand in for CUDA: every routed op must take its plain PyTorch path.
    model = build_model("nano").to("meta")
    image, prompt = torch.empty(2, 1, P, P, P, device="meta"), torch.empty(2, 3, P, P, P, device="meta")
    out = model(image, prompt)
    assert out.shape == (2, 1, P, P, P) and out.device.type == "meta"
    out.sum().backward()
    assert model.mask_decoder.head.weight.grad is not None
    assert model.cpp(image, image, image).shape == (2, 1, P, P, P)


def test_upconv_matches_conv_transpose3d():
    torch.manual_seed(1)
    up = UpConv3d(6, 5)
    x = torch.rand(2, 6, 4, 5, 3, requires_grad=True)
    out = up(x)
    ref = F.conv_transpose3d(x, up.weight, up.bias, stride=2)
    assert out.shape == (2, 5, 8, 10, 6)
    assert torch.allclose(out, ref, atol=1e-5)
    go = torch.randn_like(ref)
    for a, r in zip(torch.autograd.grad(out, (x, up.weight), go), torch.autograd.grad(ref, (x, up.weight), go)):
        assert torch.allclose(a, r, atol=1e-4)
    z = torch.rand(1, 3, 4, 6, 8)
    assert torch.equal(pixel_shuffle_3d(pixel_unshuffle_3d(z, 2), 2), z)


def test_whole_model_same_result_with_and_without_routing(nano):
    image = torch.rand(1, 1, P, P, P)
    prompt = build_prompt_map(None, [(30, 30, 30)], [1])[None]
    with torch.inference_mode():
        fast = nano(image, prompt)
        with fast_conv(False):
            slow = nano(image, prompt)
    assert torch.allclose(fast, slow, atol=1e-3, rtol=1e-3)


# ---------------------------------------------------------------- training


def _sphere_sample(rng, grid):
    zz, yy, xx = grid
    img = rng.normal(0.3, 0.05, (P, P, P)).astype(np.float32)
    while True:
        c1, c2 = rng.integers(16, 48, 3), rng.integers(16, 48, 3)
        r1, r2 = rng.integers(6, 11, 2)
        if np.linalg.norm(c1 - c2) > r1 + r2 + 2:
            break
    target = (zz - c1[0]) ** 2 + (yy - c1[1]) ** 2 + (xx - c1[2]) ** 2 <= r1**2
    distractor = (zz - c2[0]) ** 2 + (yy - c2[1]) ** 2 + (xx - c2[2]) ** 2 <= r2**2
    img[target | distractor] += 0.4  # same look: only the click tells them apart
    return (torch.from_numpy(img)[None], build_prompt_map(None, [c1], [1]),
            torch.from_numpy(target[None].astype(np.float32)))


def test_nano_learns_to_segment_the_clicked_sphere():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    grid = np.meshgrid(*[np.arange(P)] * 3, indexing="ij")
    data = [_sphere_sample(rng, grid) for _ in range(16)]
    model = build_model("nano").train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for step in range(30):
        batch = [data[(2 * step + i) % len(data)] for i in range(2)]
        image, prompt, target = (torch.stack(t) for t in zip(*batch))
        logits = model(image, prompt)
        prob = torch.sigmoid(logits)
        dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
        loss = F.binary_cross_entropy_with_logits(logits, target) + dice
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.6 * first, f"loss {first:.3f} -> {last:.3f}"


# ---------------------------------------------------------------- CPP helpers


def test_cpp_target_heatmap_peaks_at_deepest_point():
    mask = np.zeros((P, P, P), bool)
    mask[10:31, 20:41, 5:26] = True  # cube: the deepest point is its centre (20, 30, 15)
    heat = cpp_target_heatmap(mask, sigma=2.0)
    assert heat.shape == (P, P, P) and heat.dtype == np.float32
    assert np.unravel_index(np.argmax(heat), heat.shape) == (20, 30, 15)
    assert heat.max() == 1.0
    # A structure cut by the patch face: the point stays inside, away from the cut.
    cut = np.zeros((P, P, P), bool)
    cut[:9, 20:41, 20:41] = True
    assert np.unravel_index(np.argmax(cpp_target_heatmap(cut)), cut.shape)[0] == 4
    assert not cpp_target_heatmap(np.zeros((P, P, P), bool)).any()


def test_cpp_target_heatmap_peak_is_the_whole_patch_deepest_point():
    """Irregular blobs, some cut by a face: the peak is the first maximum of the whole patch's distance
    transform (the helper measures it on the target's box only)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    for i in range(12):
        noise = ndimage.gaussian_filter(rng.random((P, P, P)), rng.uniform(1.5, 5))
        mask = noise > np.quantile(noise, rng.uniform(0.7, 0.995))
        if i % 3 == 0:
            mask[:, :, int(rng.integers(8, P)):] = False
        if not mask.any():
            continue
        dist = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1, 1:-1]
        expected = np.unravel_index(int(np.argmax(dist)), mask.shape)
        heat = cpp_target_heatmap(mask)
        assert np.unravel_index(int(np.argmax(heat)), heat.shape) == expected


def test_heatmap_to_clicks_recovers_planted_peaks():
    planted = [(10, 12, 50), (40, 40, 8), (55, 20, 30)]
    heat = click_gaussians(planted, [1, 1, 1])[0] * 0.9
    heat[55, 20, 30] = 0.95  # the highest comes first; ties keep C order
    heat += 0.05 * torch.rand(heat.shape, generator=torch.Generator().manual_seed(0)) * (heat < 0.3)
    clicks = heatmap_to_clicks(heat[None, None], threshold=0.5)
    assert clicks.shape == (3, 3) and clicks.dtype == np.int64
    assert [tuple(c) for c in clicks] == [(55, 20, 30), (10, 12, 50), (40, 40, 8)]
    assert len(heatmap_to_clicks(heat, threshold=0.96)) == 0
    assert len(heatmap_to_clicks(heat, threshold=0.5, max_clicks=1)) == 1


# ---------------------------------------------------------------- builder


def test_build_model_all_names_and_unknown(nano, tiny):
    assert set(MODEL_CONFIGS) == {"nano", "tiny", "nano_deep", "base"}
    base = build_model("base")
    for model, name in ((nano, "nano"), (tiny, "tiny"), (base, "base")):
        assert isinstance(model, CTSAM3D) and model.config.name == name
    assert base.config.encoder_depths == (2, 2, 18, 2)
    assert _n_params(base.image_encoder) > _n_params(tiny.image_encoder)
    with pytest.raises(KeyError, match="nano, nano_deep, tiny, base"):
        build_model("huge")
    custom = build_model(MODEL_CONFIGS["nano"], decoder_image_skip=False)
    assert isinstance(custom.config, ModelConfig) and not custom.config.decoder_image_skip
    with torch.inference_mode():
        feats = custom.encode(torch.rand(1, 1, P, P, P))
        assert len(feats) == 4
        assert custom.decode(feats, torch.zeros(1, 3, P, P, P)).shape == (1, 1, P, P, P)
    with pytest.raises(ValueError, match="decoder_widths"):
        ModelConfig(**{**MODEL_CONFIGS["nano"].to_dict(), "decoder_widths": (1, 2)})


def test_parameter_counts(nano, tiny):
    from ctsam3d_nb.modeling.reference_decoder import OriginalSpadeDecoder

    assert 30e6 <= _n_params(tiny.image_encoder) <= 45e6  # METHOD.md: ≈ 37 M
    assert 25e6 <= _n_params(OriginalSpadeDecoder()) <= 40e6  # release decoder: ≈ 32 M
    assert _n_params(nano) < 10e6
    assert _n_params(nano.mask_decoder) < 5e6 and _n_params(tiny.mask_decoder) < 15e6
    assert 2e6 <= _n_params(tiny.cpp_net) <= 8e6
