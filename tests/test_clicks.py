"""Click simulation on shapes whose right answer is known."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctsam3d_nb.clicks import contents_click, deepest_point, first_click, next_click
from ctsam3d_nb.grid import normalize_hu


def ball(shape, center, r, spacing=(1, 1, 1)):
    idx = np.indices(shape).astype(float)
    d2 = sum(((i - c) * s) ** 2 for i, c, s in zip(idx, center, spacing))
    return d2 <= r * r


def test_first_click_is_centre_of_ball():
    gt = ball((40, 40, 40), (17, 22, 20), 9)
    assert first_click(gt) == (17, 22, 20)


def test_first_click_uses_spacing():
    # a box 10 voxels thick in z at 4 mm and 30 voxels in x/y at 1 mm: 40 mm vs 30 mm;
    # deepest point is at the centre either way, but in voxel terms z would be "thin"
    gt = np.zeros((20, 40, 40), bool)
    gt[5:15, 5:35, 5:35] = True
    z, y, x = first_click(gt, spacing=(4.0, 1.0, 1.0))
    assert 8 <= z <= 11 and 19 <= y <= 20 and 19 <= x <= 20
    # without the spacing, the 10-voxel-thin z axis would bind: only the middle slices tie
    assert first_click(gt)[0] in (9, 10)


def test_first_click_prefers_the_thick_part():
    gt = np.zeros((30, 60, 30), bool)
    gt[10:20, 0:30, 10:20] = True  # thin bar
    gt[2:28, 30:56, 2:28] = True  # thick block
    z, y, x = first_click(gt)
    assert 30 <= y < 56 and 13 <= z <= 16 and 13 <= x <= 16


def test_volume_edge_counts_as_boundary():
    gt = np.zeros((20, 20, 20), bool)
    gt[:, :, :12] = True  # touches the volume's faces
    z, y, x = first_click(gt)
    assert gt[z, y, x] and 4 <= x <= 7 and 5 <= z <= 14


def test_random_variant_is_seeded_and_deep():
    gt = ball((40, 40, 40), (20, 20, 20), 12)
    a = first_click(gt, rng=np.random.default_rng(5))
    b = first_click(gt, rng=np.random.default_rng(5))
    assert a == b and gt[a]
    depth = ndimage.distance_transform_edt(gt)
    assert depth[a] >= 0.5 * depth.max()
    picks = {first_click(gt, rng=np.random.default_rng(s)) for s in range(10)}
    assert len(picks) > 5  # it does vary with the seed


def test_next_click_positive_in_missed_region():
    gt = ball((40, 40, 40), (20, 20, 20), 10)
    pred = gt.copy()
    pred[:, :, 20:] = False  # missed the x >= 20 half
    (z, y, x), positive = next_click(pred, gt)
    assert positive and gt[z, y, x] and not pred[z, y, x] and x > 20


def test_next_click_negative_on_largest_false_positive():
    gt = ball((50, 50, 50), (15, 15, 15), 8)
    pred = gt.copy()
    pred[30:45, 30:45, 30:45] = True  # big leak: 15³
    pred[15, 15, 14:16] = False  # tiny miss
    (z, y, x), positive = next_click(pred, gt)
    assert not positive and (z, y, x) == (37, 37, 37)


def test_next_click_picks_largest_of_several_components():
    gt = np.zeros((30, 30, 60), bool)
    gt[5:25, 5:25, 2:20] = True
    gt[5:25, 5:25, 30:58] = True
    pred = np.zeros_like(gt)
    (z, y, x), positive = next_click(pred, gt)
    assert positive and 30 <= x < 58  # the larger of the two misses


def test_next_click_none_when_perfect_and_shape_check():
    gt = ball((20, 20, 20), (10, 10, 10), 5)
    assert next_click(gt, gt) is None
    with pytest.raises(ValueError, match="same shape"):
        next_click(gt[:10], gt)
    with pytest.raises(ValueError, match="empty"):
        deepest_point(np.zeros((5, 5, 5), bool))


def test_bounding_box_is_scipys_box_grown_and_clipped():
    from ctsam3d_nb.masks import bounding_box

    rng = np.random.default_rng(3)
    for _ in range(20):
        m = np.zeros((9, 11, 13), bool)
        lo = rng.integers(0, [9, 11, 13])
        hi = lo + rng.integers(1, 5, 3)
        m[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = rng.random(tuple(np.minimum(hi, m.shape) - lo)) < 0.5
        if not m.any():
            continue
        ref = ndimage.find_objects(m.astype(np.uint8))[0]
        assert bounding_box(m) == ref
        grown = bounding_box(m, pad=2)
        assert grown == tuple(slice(max(r.start - 2, 0), min(r.stop + 2, n)) for r, n in zip(ref, m.shape))
        per_axis = bounding_box(m, pad=(0, 1, 3))  # one pad per axis (anisotropic grids)
        assert per_axis == tuple(slice(max(r.start - p, 0), min(r.stop + p, n))
                                 for r, p, n in zip(ref, (0, 1, 3), m.shape))
    with pytest.raises(ValueError, match="empty"):
        bounding_box(np.zeros((3, 3, 3), bool))


def test_random_variant_on_a_large_mask_is_deep_seeded_and_fast_path():
    """Boxes over 32³ voxels: depth on 2x2x2 blocks; the pick is still inside, deep, seeded and varied,
    also for an anisotropic spacing and a mask that touches the volume edge."""
    from ctsam3d_nb import clicks

    gt = ball((64, 64, 64), (32, 30, 34), 26)
    gt[:, :, :3] = True  # a slab at the x = 0 face: the edge is a boundary too
    for spacing in (None, (2.0, 1.0, 1.0)):
        depth = ndimage.distance_transform_edt(np.pad(gt, 1), sampling=spacing)[1:-1, 1:-1, 1:-1]
        picks = [first_click(gt, spacing, rng=np.random.default_rng(s)) for s in range(30)]
        assert picks[0] == first_click(gt, spacing, rng=np.random.default_rng(0))
        assert all(gt[p] for p in picks) and len(set(picks)) > 20
        assert min(depth[p] for p in picks) >= 0.4 * depth.max(), spacing
    assert clicks._coarse_pick(gt, None, np.random.default_rng(0), 0.5) is not None  # the coarse path ran
    thin = np.zeros((64, 64, 64), bool)
    thin[10:50, 10:50, 30] = True  # one voxel thick: no block is inside, measured at full resolution
    assert clicks._coarse_pick(thin[:, :, 29:32], None, np.random.default_rng(0), 0.5) is None
    assert thin[first_click(thin, rng=np.random.default_rng(1))]



def _vertebra(k=1):
    """A thick 'body' (a cube of 16k voxels) with a thin 'arch' behind it (a plate 3 voxels thick), as one mask."""
    m = np.zeros((48 * k,) * 3, bool)
    m[16 * k:32 * k, 4 * k:20 * k, 16 * k:32 * k] = True  # body
    m[16 * k:32 * k, 20 * k:40 * k, 24 * k - 1:24 * k + 2] = True  # arch: depth at most 2 voxels
    arch = np.zeros_like(m)
    arch[:, 20 * k:] = m[:, 20 * k:]
    return m, arch


@pytest.mark.parametrize("k", [1, 2])  # k=2: a box larger than 32³ takes the 2x2x2-block path
def test_first_click_depth_reaches_thin_parts_only_when_asked(k):
    m, arch = _vertebra(k)
    for frac, expect_arch in ((0.5, False), (0.0, True)):
        rng = np.random.default_rng(3)
        pts = [first_click(m, rng=rng, min_fraction=frac) for _ in range(300)]
        assert all(m[p] for p in pts)  # always inside the target, also at 0 (no voxel of its box outside it)
        hits = sum(bool(arch[p]) for p in pts)
        assert (hits > 10) == expect_arch, (frac, hits)
    with pytest.raises(ValueError, match="min_fraction"):
        first_click(m, rng=np.random.default_rng(0), min_fraction=1.5)


def _stomach(seed=0):
    """A 'stomach' of soft tissue (40 HU, noise 20 HU) holding a gas pocket (-950 HU) off its centre, in fat; its
    image as the model sees it ([-125, 225] HU as [0, 1])."""
    rng = np.random.default_rng(seed)
    gt = ball((40, 40, 40), (20, 20, 20), 12)
    gas = ball((40, 40, 40), (20, 12, 20), 5) & gt
    hu = np.where(gt, 40.0, -100.0) + rng.normal(0, 20, gt.shape)
    hu[gas] = -950 + rng.normal(0, 10, int(gas.sum()))
    return gt, gas, normalize_hu(hu)


def test_contents_click_lands_in_what_the_target_holds():
    gt, gas, img = _stomach()
    assert not gas[first_click(gt)]  # the protocol's deepest point is the tissue at the centre
    assert contents_click(gt, img) == (20, 12, 20)  # the pocket's deepest voxel
    rng = np.random.default_rng(0)
    picks = {contents_click(gt, img, rng) for _ in range(50)}
    assert len(picks) > 5 and all(gas[p] for p in picks)  # seeded: many voxels, all deep in the pocket
    with pytest.raises(ValueError, match="same 3D"):
        contents_click(gt, img[:-1])
    with pytest.raises(ValueError, match="empty"):
        contents_click(np.zeros_like(gt), img)
    # two pockets as deep in voxels; at 3 mm slices the one thin in z (but wide in x) is the deeper in mm
    box = np.zeros((40, 40, 40), bool)
    box[5:35, 5:35, 5:35] = True
    img = np.where(box, 0.5, 0.1)
    img[8:17, 8:17, 8:13] = 0.0  # eroded: 7 x 7 x 3 voxels (21 x 7 x 3 mm)
    img[22:27, 8:17, 20:29] = 0.0  # eroded: 3 x 7 x 7 voxels (9 x 7 x 7 mm)
    assert contents_click(box, img)[0] < 17 and contents_click(box, img, spacing=(3.0, 1.0, 1.0))[0] > 21


def test_contents_click_is_none_for_a_uniform_target_a_partial_volume_rim_or_an_air_filled_one():
    gt, gas, _ = _stomach()
    hu = np.where(gt, 40.0, -100.0) + np.random.default_rng(1).normal(0, 25, gt.shape)  # no pocket
    assert contents_click(gt, normalize_hu(hu)) is None
    rim = gt & ~ndimage.binary_erosion(gt)  # a one-voxel edge of other values: partial volume, not contents
    hu[rim] = -400
    assert contents_click(gt, normalize_hu(hu)) is None
    hu[ball(gt.shape, (20, 20, 20), 1)] = -950  # a pocket of 7 voxels: eroded to one, below min_voxels
    assert contents_click(gt, normalize_hu(hu)) is None
    lung = np.where(gt, -850.0, -100.0)
    lung[gas] = 60  # a nodule or vessel in a lung is clicked for itself
    assert contents_click(gt, normalize_hu(lung)) is None
    kidney = np.where(gt, 40.0, -100.0)
    kidney[gas] = 900  # so is a stone: only darker contents belong to the structure
    assert contents_click(gt, normalize_hu(kidney)) is None
    kidney[gas] = -20  # fluid or fat 60 HU below: not contrast enough
    assert contents_click(gt, normalize_hu(kidney)) is None


def test_contents_click_on_the_real_series_finds_the_stomach_gas_and_the_humerus_marrow(real_ct_dir):
    from ctsam3d_nb import load_ct, load_labels
    from ctsam3d_nb.anatomy import by_name

    ct = load_ct(real_ct_dir / "dicom_series")
    labels = load_labels(real_ct_dir / "example_seg_dicom.nii.gz", ct)
    image = normalize_hu(ct.array)  # what the model sees: [-125, 225] HU as [0, 1]
    stomach, humerus = (labels == by_name(n).id for n in ("stomach", "humerus_left"))
    p = contents_click(stomach, image)
    assert stomach[p] and ct.array[p] < -300  # gas
    p = contents_click(humerus, image)
    assert humerus[p] and ct.array[p] < 150 < np.median(ct.array[humerus])  # marrow, in a bone of dense cortex
    assert contents_click(labels == by_name("aorta").id, image) is None  # contrast-filled lumen: uniform
