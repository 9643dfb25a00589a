"""New training targets (lesions, sub-parts, unions) and the real-scan augmentations of PatchSampler."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
from scipy import ndimage

from ctsam3d_nb.phantom.lesions import LESION_KINDS
from ctsam3d_nb.training import TrainConfig
from ctsam3d_nb.training.augment import ElasticWarp
from ctsam3d_nb.training.data import PatchSampler


def _source(real=False, size=96):
    """A seeded multi-label volume on the 1.5 mm grid: a 'lung' (122) holding a 'liver' ball (5), a 'kidney'
    (2), an 'aorta' tube (52) along z, two stacked vertebrae (30, 31) and a 'colon' (20) in two pieces."""
    rng = np.random.default_rng(42)
    zz, yy, xx = np.indices((size,) * 3)
    lab = np.zeros((size,) * 3, np.uint8)
    c = size // 2
    lab[(zz - c) ** 2 / 30 ** 2 + (yy - c) ** 2 / 26 ** 2 + (xx - c + 10) ** 2 / 22 ** 2 <= 1] = 122
    lab[(zz - c) ** 2 + (yy - c - 5) ** 2 + (xx - c - 12) ** 2 <= 16 ** 2] = 5
    lab[(zz - c + 8) ** 2 / 14 ** 2 + (yy - c + 8) ** 2 / 7 ** 2 + (xx - c - 30) ** 2 / 7 ** 2 <= 1] = 2
    lab[(yy - c + 18) ** 2 + (xx - c + 20) ** 2 <= 5 ** 2] = 52
    lab[(zz >= 20) & (zz < 40) & (abs(yy - c - 28) < 8) & (abs(xx - c) < 9)] = 30
    lab[(zz >= 42) & (zz < 62) & (abs(yy - c - 28) < 8) & (abs(xx - c) < 9)] = 31
    lab[(zz >= 66) & (zz < 86) & (abs(yy - c - 20) < 5) & (abs(xx - c + 30) < 6)] = 20
    lab[(zz >= 66) & (zz < 86) & (abs(yy - c - 20) < 5) & (abs(xx - c + 14) < 6)] = 20
    hu = {0: -90.0, 122: -850.0, 5: 60.0, 2: 150.0, 52: 180.0, 30: 260.0, 31: 260.0, 20: 10.0}
    img = np.zeros(lab.shape, np.float32)
    for k, v in hu.items():
        img[lab == k] = v
    img += ndimage.gaussian_filter(rng.normal(0, 40, lab.shape), 1.0).astype(np.float32)
    img = np.clip((img + 125) / 350, 0, 1).astype(np.float32)

    def get(v):
        return img, lab
    if real:
        get.real = True
    return get, lab


def _digest(s):
    h = hashlib.sha1()
    for a in (s.image, s.target, s.image_v, s.target_v, s.prior):
        if a is not None:
            h.update(np.ascontiguousarray(a).tobytes())
    h.update(repr((s.face, s.label, s.scale, s.first)).encode())
    return h.hexdigest()[:16]


# digests of samples 0-5 of the sampler before the new targets and augmentations existed (commit 0526d25)
BEFORE = {
    "default": ["359176f1cf9ba821", "17278cedbfcc8576", "27a0ebd979ca84bf", "cba9debddb51cfc2", "0481cac10295969e",
                "dc2a543bbc3a1a32"],
    "cpp_multiscale": ["7c8acc7b12662533", "6a9fa262989a6f91", "8fba1544de878116", "8f298eac3f673a9e",
                       "0230267f9e98d677", "b0ffd3ffaeadb99c"],
    "domain": ["508b1737c776d047", "778cb48f318e92d6", "772e9f42c0b4c1dc", "bca121343dc57bb3", "a0feea7ba722a7b2",
               "dc2a543bbc3a1a32"],
}
VARIANTS = {"default": {}, "domain": dict(p_domain_rand=1.0, p_augment=1.0),
            "cpp_multiscale": dict(p_cpp=1.0, p_multiscale=0.5, p_refine_prior=0.3, p_cpp_negative=0.3)}


@pytest.mark.parametrize("name", list(BEFORE))
@pytest.mark.parametrize("real", [False, True])
def test_default_fields_give_the_samples_of_before(name, real):
    smp = PatchSampler([(_source(real)[0], 1.0)], seed=7, pool_size=1, refresh_every=4, **VARIANTS[name])
    assert [_digest(smp.sample(i)) for i in range(6)] == BEFORE[name]


def _sampler(real=False, **kw):
    return PatchSampler([(_source(real)[0], 1.0)], seed=7, **{"pool_size": 1, "refresh_every": 4, **kw})


def test_new_kinds_stay_a_pure_function_of_count():
    kw = dict(p_lesion=0.3, p_subpart=0.3, p_union=0.3, p_elastic=1.0, p_contrast=1.0, p_cpp=0.5)
    a, b = _sampler(True, **kw), _sampler(True, **kw)
    seq = [a.sample(i) for i in range(8)]
    assert {s.kind for s in seq} >= {"lesion", "subpart", "union"}
    for i in (7, 3):
        s = b.sample(i)  # jump straight to sample i: the same sample
        assert _digest(s) == _digest(seq[i]) and s.kind == seq[i].kind


def test_lesion_targets_are_blobs_that_differ_from_their_surroundings():
    smp = _sampler(p_lesion=1.0, p_augment=0.0, p_domain_rand=0.0, p_cpp=1.0)
    for s in (smp.sample(i) for i in range(8)):
        assert s.kind == "lesion" and s.label in LESION_KINDS.values() and s.image_v is None
        assert s.target.sum() >= 30 and s.first == "target" and s.prior is None
        _, n = ndimage.label(s.target, np.ones((3, 3, 3)))
        assert n == 1
        ring = ndimage.binary_dilation(s.target, iterations=3) & ~ndimage.binary_dilation(s.target)
        # the lesion's edge shows along much of its boundary (the rest may be the host's own edge)
        inner = s.image[ndimage.binary_erosion(s.target)] if s.target.sum() > 200 else s.image[s.target]
        assert np.mean(np.abs(s.image[ring] - np.median(inner)) > 0.06) > 0.3


def test_subpart_targets_are_a_piece_or_an_edit_of_one_structure():
    smp = _sampler(p_subpart=1.0, p_augment=0.0, p_domain_rand=0.0, p_cpp=1.0)
    kinds = set()
    for s in (smp.sample(i) for i in range(10)):
        assert s.kind == "subpart" and s.target.sum() >= 30 and s.image_v is None
        if s.first == "error":  # a plane cut: the mask channel holds the whole structure, the target is part of it
            whole = s.prior > 0.5
            assert (s.target <= whole).all() and 0.15 <= s.target.sum() / whole.sum() <= 0.85
            kinds.add("cut")
        else:  # one connected piece of a structure in several pieces
            _, n = ndimage.label(s.target, np.ones((3, 3, 3)))
            assert n == 1 and s.prior is None and s.label == 20
            kinds.add("piece")
    assert kinds == {"cut", "piece"}


def test_leak_priors_add_one_touching_structure_and_start_with_a_negative_click_in_it():
    """A leak prior is the target plus (part of) one structure touching it; the first click of such a
    sample is the negative click in the leak, and the loss asks for the target alone."""
    from ctsam3d_nb.training.loop import _first_clicks
    from ctsam3d_nb.training.targets import leak_prior

    _, lab = _source()
    target = lab == 30  # the lower vertebra: it touches the 'lung' around it and nothing else but background
    rng = np.random.default_rng(0)
    leaked_into = set()
    for _ in range(20):
        prior = leak_prior(target, lab, rng)
        assert prior is not None and prior.dtype == np.float32
        grown = prior > 0.5
        assert (grown >= target).all()
        extra = np.unique(lab[grown & ~target])
        assert len(extra) == 1 and extra[0] != 0  # one neighbour, never the unlabelled background
        ring = ndimage.binary_dilation(target, iterations=2) & ~target
        assert (lab[ring] == extra[0]).any()  # it touches the target
        leaked_into.add(int(extra[0]))
    assert leaked_into == {122}
    # two stacked vertebrae in contact: the upper one is the leak, kept whole or cut near the target
    two = np.zeros_like(lab)
    two[20:40, 40:60, 40:60], two[40:60, 40:60, 40:60] = 30, 31
    sizes = {int(((leak_prior(two == 30, two, rng) > 0.5) & (two == 31)).sum()) for _ in range(12)}
    assert max(sizes) == int((two == 31).sum()) and min(sizes) < max(sizes)
    # the sampler: priors hold the whole target; the first click is negative and lies in the leak
    smp = _sampler(p_leak_prior=1.0, p_augment=0.0, p_domain_rand=0.0, p_cpp=0.0)
    samples = [smp.sample(i) for i in range(8)]
    leaks = [s for s in samples if s.kind == "structure" and s.first == "error"]
    assert len(leaks) >= 6
    for s in leaks:
        assert (s.prior[s.target] == 1).all() and (s.prior[~s.target] > 0.5).sum() >= 30
    pts, labels = _first_clicks(np.stack([s.target for s in leaks]), np.stack([s.prior > 0.5 for s in leaks]),
                                ["error"] * len(leaks), np.random.default_rng(1))
    for s, p, lb in zip(leaks, pts, labels):
        z, y, x = np.round(p[0]).astype(int)
        assert lb == [0] and s.prior[z, y, x] > 0.5 and not s.target[z, y, x]


def test_union_targets_span_several_structures():
    get, lab = _source()
    smp = _sampler(p_union=1.0, p_augment=0.0, p_domain_rand=0.0)
    for s in (smp.sample(i) for i in range(6)):
        assert s.kind == "union" and s.label in (30, 31)
        # both vertebrae, each a piece of its own (the disc gap between them)
        _, n = ndimage.label(s.target, np.ones((3, 3, 3)))
        assert n == 2 and s.image[ndimage.binary_erosion(s.target)].mean() > 0.8


def _ball_source(real=True, radius=15, size=96):
    zz, yy, xx = np.indices((size,) * 3)
    ball = (zz - size // 2) ** 2 + (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius ** 2
    image = np.where(ball, 0.9, 0.2).astype(np.float32)

    def get(v):
        return image, ball.astype(np.uint8) * 5
    get.real = real
    return get, int(ball.sum())


def test_elastic_deformation_keeps_volume_and_alignment_on_real_volumes_only():
    get, n_ball = _ball_source()
    kw = dict(pool_size=1, p_augment=0.0, p_domain_rand=0.0, p_cpp=0.0, max_shift_mm=6.0)
    plain = PatchSampler([(get, 1.0)], seed=1, **kw)
    warped = PatchSampler([(get, 1.0)], seed=1, p_elastic=1.0, elastic_mm=6.0, **kw)
    moved = 0
    for i in range(6):
        s, p = warped.sample(i), plain.sample(i)
        assert abs(s.target.sum() / n_ball - 1) < 0.15  # label volume within ±15 %
        moved += int((s.target != p.target).sum() > 0.03 * n_ball)
        inner, outer = ndimage.binary_erosion(s.target), ~ndimage.binary_dilation(s.target)
        assert s.image[inner].mean() > s.image[outer].mean() + 0.5  # image and labels moved together
        assert np.percentile(s.image[inner], 1) > np.percentile(s.image[outer], 99)
    assert moved >= 4
    phantom_like = PatchSampler([(_ball_source(real=False)[0], 1.0)], seed=1, p_elastic=1.0, **kw)
    for i in range(3):
        np.testing.assert_array_equal(phantom_like.sample(i).target, plain.sample(i).target)


def test_elastic_neighbour_patches_agree_where_they_overlap():
    smp = _sampler(True, p_elastic=1.0, p_cpp=1.0, p_augment=0.0, p_domain_rand=0.0)
    pairs = [s for s in (smp.sample(i) for i in range(10)) if s.image_v is not None]
    assert pairs
    for s in pairs:
        axis, direction = s.face
        u, v = [slice(None)] * 3, [slice(None)] * 3
        u[axis] = slice(48, 64) if direction > 0 else slice(0, 16)
        v[axis] = slice(0, 16) if direction > 0 else slice(48, 64)
        agree = (s.target[tuple(u)] == s.target_v[tuple(v)]).mean()
        assert agree > 0.995  # one field for the whole volume (order-0 rounding may differ on a few voxels)


def test_warp_is_smooth_and_bounded():
    w = ElasticWarp(np.random.default_rng(0), max_mm=6.0)
    pts = np.indices((32, 32, 32), np.float32).reshape(3, -1) * 2
    d = w(pts)
    assert np.abs(d).max() * 1.5 <= 6.0 + 1e-3 and np.abs(d).max() > 0.5
    grad = np.abs(np.diff(d.reshape(3, 32, 32, 32), axis=1)).max() / 2
    assert grad <= 0.25


def test_contrast_augmentation_changes_real_images_only():
    kw = dict(p_augment=0.0, p_domain_rand=0.0, p_cpp=0.0)
    base, real = _sampler(True, **kw), _sampler(True, p_contrast=1.0, **kw)
    fake = _sampler(False, p_contrast=1.0, **kw)
    for i in range(4):
        a, b, c = base.sample(i), real.sample(i), fake.sample(i)
        np.testing.assert_array_equal(a.target, b.target)
        assert np.abs(a.image - b.image).mean() > 0.005
        np.testing.assert_array_equal(a.image, c.image)


def test_real_uniform_targets_draw_real_vertebrae_more_often():
    def vertebra_share(**kw):
        smp = _sampler(True, p_augment=0.0, p_domain_rand=0.0, p_cpp=0.0, refresh_every=1000, **kw)
        return np.mean([smp.sample(i).label in (30, 31) for i in range(60)])

    assert vertebra_share(real_uniform_targets=True) > vertebra_share() + 0.1


def test_config_fields_reach_the_sampler_and_are_validated():
    cfg = TrainConfig(p_lesion=0.2, p_subpart=0.1, p_union=0.1, p_elastic=0.5, elastic_mm=4.0, p_contrast=0.3,
                      real_uniform_targets=True, p_leak_prior=0.25, p_contents=0.15)
    smp = PatchSampler.from_config(cfg, [(_source()[0], 1.0)], rank=0)
    assert smp.p_leak_prior == 0.25
    assert smp.p_kind == {"lesion": 0.2, "subpart": 0.1, "union": 0.1, "contents": 0.15}
    assert (smp.p_elastic, smp.elastic_mm, smp.p_contrast, smp.real_uniform_targets) == (0.5, 4.0, 0.3, True)
    with pytest.raises(ValueError, match="p_lesion \\+ p_subpart \\+ p_union"):
        TrainConfig(p_lesion=0.6, p_union=0.6)
    with pytest.raises(ValueError, match="elastic_mm"):
        TrainConfig(elastic_mm=0.0)
    with pytest.raises(ValueError, match="p_contrast"):
        TrainConfig(p_contrast=1.5)
    with pytest.raises(ValueError, match="p_leak_prior"):
        TrainConfig(p_leak_prior=-0.1)
    with pytest.raises(ValueError, match="real_uniform_targets"):
        TrainConfig(real_uniform_targets="yes")
