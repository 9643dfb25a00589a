"""PatchSampler's patch kinds: multi-scale patches, scan slabs, zoom and refine priors, and the first click of each."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctsam3d_nb.training.data import PatchSampler


def _ball_source(radius=15, size=96):
    zz, yy, xx = np.indices((size,) * 3)
    ball = (zz - size // 2) ** 2 + (yy - size // 2) ** 2 + (xx - size // 2) ** 2 <= radius ** 2
    image = np.where(ball, 0.9, 0.2).astype(np.float32)
    return (lambda v: (image, ball.astype(np.int16) * 5)), int(ball.sum())


def test_multiscale_patches_keep_targets_consistent_with_images():
    get, n_ball = _ball_source()
    smp = PatchSampler([(get, 1.0)], seed=2, pool_size=1, p_augment=0.0, p_domain_rand=0.0, p_cpp=0.0,
                       p_multiscale=1.0, max_scale=4.0, min_coarse_voxels=150, p_zoom_prior=0.0)
    samples = [smp.sample(i) for i in range(24)]
    scales = np.array([s.scale for s in samples])
    assert scales.min() >= 1 and scales.max() <= 4 and scales.max() > 2.5 and np.std(scales) > 0.4
    for s in samples:
        # the same physical ball at every voxel size: its voxel count shrinks with the voxel volume ...
        assert abs(s.target.sum() * s.scale ** 3 / n_ball - 1) < 0.25, (s.scale, s.target.sum())
        # ... and the target lies on the bright voxels of the image
        inner = ndimage.binary_erosion(s.target)
        outer = ~ndimage.binary_dilation(s.target, iterations=2)
        assert s.image[inner].mean() > s.image[outer].mean() + 0.4
        assert s.prior is None and s.first == "target"


def test_slab_samples_look_like_a_scan_of_limited_coverage():
    """p_slab: a 20-90 mm slab of z slices through the target, exactly 0 (the predictor's padding) above and
    below, the target cut with it, no CPP partner; without it the sample stream is unchanged."""
    get, _ = _ball_source(size=120, radius=40)  # a 120 mm ball: every 64³ patch of it spans all 64 slices
    kw = dict(seed=4, pool_size=1, p_augment=0.0, p_domain_rand=0.0, p_cpp=1.0, p_multiscale=0.5,
              min_coarse_voxels=150)
    slabs = PatchSampler([(get, 1.0)], p_slab=1.0, **kw)
    thick = []
    for i in range(16):
        s = slabs.sample(i)
        inside = np.flatnonzero(np.abs(s.image).sum(axis=(1, 2)) > 0)
        assert inside.size and np.array_equal(inside, np.arange(inside[0], inside[-1] + 1))  # one slab
        outside = np.ones(64, bool)
        outside[inside] = False
        assert not s.image[outside].any() and not s.target[outside].any()
        assert s.target.sum() >= 30 and s.image_v is None and s.face is None
        if 0 < inside[0] and inside[-1] < 63:  # not cut by the patch edge
            thick.append(len(inside) * 1.5 * s.scale)
    assert thick and min(thick) >= 20 - 1.5 * 4 and max(thick) <= 90 + 1.5 * 4, thick
    plain, again = PatchSampler([(get, 1.0)], **kw), PatchSampler([(get, 1.0)], p_slab=0.0, **kw)
    for i in range(4):
        a, b = plain.sample(i), again.sample(i)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.target, b.target)
        assert not np.array_equal(a.image, slabs.sample(i).image)


def test_zoom_and_refine_priors():
    get, _ = _ball_source(radius=40, size=128)
    zoom = PatchSampler([(get, 1.0)], seed=3, pool_size=1, p_augment=0.0, p_cpp=0.0, p_multiscale=1.0,
                        min_coarse_voxels=100, p_zoom_prior=1.0)
    samples = [zoom.sample(i) for i in range(20)]
    got = [s for s in samples if s.first == "prior"]
    assert len(got) >= 5 and all(s.scale > 1.5 for s in got)
    for s in got:  # the finer level's field: the central part of the target, nothing outside the target
        p = s.prior > 0.5
        assert p.any() and not (p & ~s.target).any() and p.sum() < s.target.sum()
        idx = np.argwhere(p)
        assert idx.min() >= 64 // 2 - 64 / 1.5 / 2 - 1 and idx.max() <= 64 // 2 + 64 / 1.5 / 2
    refine = PatchSampler([(get, 1.0)], seed=3, pool_size=1, p_augment=0.0, p_cpp=0.0, p_refine_prior=1.0)
    got = [refine.sample(i) for i in range(10)]
    assert {s.first for s in got} == {"none", "error"}
    for s in got:  # a coarse, slightly shifted view of the target
        p = s.prior > 0.5
        assert 0.75 < 2 * (p & s.target).sum() / (p.sum() + s.target.sum()) < 1.0


def test_first_clicks_follow_the_sample_kind():
    from ctsam3d_nb.training.loop import _first_clicks

    gt = np.zeros((4, 32, 32, 32), bool)
    gt[:, 8:24, 8:24, 8:24] = True
    prior = np.zeros_like(gt)
    prior[1, 12:16, 12:16, 12:16] = True  # zoom-out: the finer level's part
    prior[2, 8:24, 8:24, 8:16] = True  # refine: half of it missed
    prior[3] = gt[3]
    pts, labels = _first_clicks(gt, prior, ["target", "prior", "error", "none"], np.random.default_rng(0))
    assert labels == [[1], [1], [1], []] and pts[3] == []
    assert prior[1][pts[1][0]] and gt[0][pts[0][0]]
    assert gt[2][pts[2][0]] and not prior[2][pts[2][0]]  # the click goes to the missed half


def test_contents_first_clicks_are_the_samplers_else_deep_inside():
    from ctsam3d_nb.training.loop import _first_clicks

    gt = np.zeros((3, 32, 32, 32), bool)
    gt[:, 6:26, 6:26, 6:26] = True
    modes = ["contents", "contents", "target"]
    pts, labels = _first_clicks(gt, np.zeros_like(gt), modes, np.random.default_rng(0), clicks=[(8, 9, 10), None, None])
    assert labels == [[1], [1], [1]] and pts[0] == [(8, 9, 10)]
    for p in (pts[1][0], pts[2][0]):  # no contents click left in the patch, or a "target" sample: the deep click
        assert gt[1][p] and all(10 <= c <= 21 for c in p)
    # "target" samples ignore the clicks: the same points and the same generator state as without them
    r1, r2 = np.random.default_rng(5), np.random.default_rng(5)
    with_clicks = _first_clicks(gt, np.zeros_like(gt), ["target"] * 3, r1, clicks=[(8, 9, 10)] * 3)
    assert with_clicks == _first_clicks(gt, np.zeros_like(gt), ["target"] * 3, r2)
    assert r1.bit_generator.state == r2.bit_generator.state


def test_contents_samples_centre_on_darker_contents_and_click_there():
    from ctsam3d_nb.anatomy import by_id
    from ctsam3d_nb.training.data import phantom_source
    from ctsam3d_nb.training.targets import contents_index

    with pytest.raises(ValueError, match="p_contents"):
        PatchSampler([(phantom_source(3, (192, 192, 192)), 1.0)], p_union=0.6, p_contents=0.6)
    sampler = PatchSampler([(phantom_source(3, (192, 192, 192), p_arms=1.0), 1.0)], seed=1, pool_size=1,
                           p_contents=1.0, p_cpp=0.0, p_domain_rand=0.0)
    vol = sampler._volume()
    assert getattr(vol, "contents", None) is None  # indexed on first use only
    held = contents_index(vol)
    names = {by_id(i).name for i in held}
    assert {"humerus_left", "humerus_right"} & names and {"stomach", "colon", "small_bowel", "duodenum"} & names
    assert not names & {"body", "liver", "kidney_left", "kidney_right", "lung_left", "lung_right"}
    for label, (pts, median) in held.items():  # the indexed points lie in the label's darker voxels
        z, y, x = pts.T
        assert (vol.labels[z, y, x] == label).mean() > 0.9
        assert np.median(vol.image[z, y, x]) < median - 0.3
        assert abs(median - np.median(vol.image[vol.labels == label])) < 0.1  # the 3 mm grid's median
    got = [sampler.sample(i) for i in range(8)]
    assert all(s.first == "contents" and s.kind == "structure" and s.label in held and s.scale == 1.0 for s in got)
    assert sum(s.click is not None for s in got) >= 6
    for s in got:
        if s.click is not None:  # on the target, darker than its bulk, not on its edge
            assert s.target[s.click] and s.image[s.click] < np.median(s.image[s.target]) - 0.2
            z, y, x = s.click  # one voxel in from the contents' edge (6-connected erosion): its faces' neighbours too
            assert s.target[z - 1:z + 2, y, x].all() and s.target[z, y - 1:y + 2, x].all()
            assert s.target[z, y, x - 1:x + 2].all()
    plain = PatchSampler([(phantom_source(3, (192, 192, 192), p_arms=1.0), 1.0)], seed=1, pool_size=1, p_cpp=0.0)
    assert all(plain.sample(i).click is None for i in range(4))


def test_contents_samples_keep_their_click_in_a_slab_and_paint_their_cpp_partner_alike(monkeypatch):
    from ctsam3d_nb.training import data
    from ctsam3d_nb.training.data import phantom_source

    painted = []
    real = data.paint_contents
    monkeypatch.setattr(data, "paint_contents", lambda lab, dark: painted.append(dark is not None) or real(lab, dark))
    sampler = PatchSampler([(phantom_source(3, (192, 192, 192), p_arms=1.0), 1.0)], seed=4, pool_size=1,
                           p_contents=1.0, p_cpp=1.0, p_slab=1.0, p_domain_rand=1.0)
    got = [sampler.sample(i) for i in range(12)]
    cut = [s for s in got if not s.image.any(axis=(1, 2)).all()]  # slab samples: the slices outside it are 0
    assert len(cut) >= 3 and all(s.click is not None for s in got)  # the slab passes through the click
    for s in cut:
        assert s.target[s.click] and s.image[s.click[0]].any()  # on a kept slice
    assert painted.count(True) > len(got)  # U's contents, and V's where the partner patch shows them
