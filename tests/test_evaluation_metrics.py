"""Dice, NSD and HD95 against hand-computed values and an independent brute-force implementation;
aggregation into Dice@k / NoC@t tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage
from scipy.spatial import cKDTree

from ctsam3d_nb.evaluation import (aggregate, boundary_band, dice, error_counts, error_table, hd95,
                                   normalized_surface_dice, per_target, size_class, summary_table)

# ---------------------------------------------------------------- independent reference


def brute_surface_mm(mask, spacing):
    """Surface voxel centres in mm: voxels with a face neighbour outside the mask or outside the array."""
    padded = np.pad(mask, 1)
    core = (slice(1, -1),) * 3
    outside_neighbour = np.zeros_like(mask)
    for axis in range(3):
        for step in (-1, 1):
            outside_neighbour |= ~np.roll(padded, step, axis=axis)[core]
    return np.argwhere(mask & outside_neighbour) * np.asarray(spacing, float)


def brute_metrics(a, b, spacing, tol):
    """(dice, nsd, hd95) from explicit point sets and KD-tree nearest distances."""
    a, b = a.astype(bool), b.astype(bool)
    inter = len(set(map(tuple, np.argwhere(a))) & set(map(tuple, np.argwhere(b))))
    d = 1.0 if a.sum() + b.sum() == 0 else 2 * inter / (a.sum() + b.sum())
    pa, pb = brute_surface_mm(a, spacing), brute_surface_mm(b, spacing)
    if len(pa) == 0 and len(pb) == 0:
        return d, 1.0, 0.0
    if len(pa) == 0 or len(pb) == 0:
        return d, 0.0, np.inf
    dab, dba = cKDTree(pb).query(pa)[0], cKDTree(pa).query(pb)[0]
    t = tol + 1e-9 * max(1.0, tol)
    nsd = ((dab <= t).sum() + (dba <= t).sum()) / (len(pa) + len(pb))
    return d, nsd, max(np.percentile(dab, 95), np.percentile(dba, 95))


def blobs(rng, shape, level=0.05):
    return ndimage.gaussian_filter(rng.normal(size=shape), 1.5) > level


# ---------------------------------------------------------------- metrics


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.8, 1.1), (5.0, 0.7, 0.7)])
def test_metrics_equal_brute_force_on_random_masks(seed, spacing):
    rng = np.random.default_rng(seed)
    a, b = blobs(rng, (10, 13, 15)), blobs(rng, (10, 13, 15))
    for tol in (0.0, 1.0, 2.0, 3.3):
        d, nsd, h = brute_metrics(a, b, spacing, tol)
        assert dice(a, b) == pytest.approx(d, abs=1e-12)
        assert normalized_surface_dice(a, b, spacing, tol) == pytest.approx(nsd, abs=1e-6)
    assert hd95(a, b, spacing) == pytest.approx(h, abs=1e-6)


def test_masks_touching_the_array_edge_and_small_objects():
    rng = np.random.default_rng(7)
    a = np.ones((6, 7, 8), bool)  # fills the array: its surface is the outer shell
    b = blobs(rng, (6, 7, 8), level=-0.2)
    for sp in ((1.0, 1.0, 1.0), (3.0, 0.5, 0.9)):
        d, nsd, h = brute_metrics(a, b, sp, 1.5)
        assert normalized_surface_dice(a, b, sp, 1.5) == pytest.approx(nsd, abs=1e-6)
        assert hd95(a, b, sp) == pytest.approx(h, abs=1e-6)
    one = np.zeros((5, 5, 5), bool)
    one[2, 2, 2] = True
    other = np.zeros_like(one)
    other[2, 2, 4] = True  # 2 voxels away along x
    assert normalized_surface_dice(one, other, (1, 1, 1.5), 3.0) == 1.0
    assert normalized_surface_dice(one, other, (1, 1, 1.5), 2.9) == 0.0
    assert hd95(one, other, (1, 1, 1.5)) == pytest.approx(3.0)


def test_dice_of_shifted_cubes_is_analytic():
    a = np.zeros((16, 16, 16), bool)
    a[2:10, 2:10, 2:10] = True  # n = 8
    for s in range(9):
        b = np.roll(a, s, axis=2)
        assert dice(a, b) == pytest.approx((8 - s) / 8)


def test_nsd_of_a_cube_shifted_along_thick_slices_is_hand_computed():
    # a 4-voxel cube shifted one slice along z, z spacing 3 mm, in-plane 1 mm.
    # Surface of each: 4^3 - 2^3 = 56 voxels. A's bottom face (16 voxels) is 3 mm from B's surface;
    # A's top-face interior (4 voxels) is 1 mm from B's side faces; every other A surface voxel is
    # on B's surface too. B is symmetric.
    a = np.zeros((8, 8, 8), bool)
    a[2:6, 2:6, 2:6] = True
    b = np.roll(a, 1, axis=0)
    sp = (3.0, 1.0, 1.0)
    assert normalized_surface_dice(a, b, sp, 0.5) == pytest.approx(2 * (56 - 20) / 112)
    assert normalized_surface_dice(a, b, sp, 1.0) == pytest.approx(2 * (56 - 16) / 112)
    assert normalized_surface_dice(a, b, sp, 2.9) == pytest.approx(2 * (56 - 16) / 112)
    assert normalized_surface_dice(a, b, sp, 3.0) == 1.0
    assert hd95(a, b, sp) == pytest.approx(3.0)
    assert normalized_surface_dice(a, a, sp, 0.0) == 1.0


def test_sphere_against_a_larger_sphere():
    zz, yy, xx = np.indices((31, 31, 31)) - 15
    r = np.sqrt(zz**2 + yy**2 + xx**2)
    small, big = r <= 8, r <= 11  # surfaces about 3 mm apart at 1 mm spacing
    assert normalized_surface_dice(small, big, (1, 1, 1), 1.0) < 0.1
    assert normalized_surface_dice(small, big, (1, 1, 1), 4.0) == 1.0
    assert dice(small, big) == pytest.approx(2 * small.sum() / (small.sum() + big.sum()))


def test_edge_cases_are_defined():
    e = np.zeros((4, 4, 4), bool)
    f = e.copy()
    f[1:3, 1:3, 1:3] = True
    assert dice(e, e) == 1.0 and normalized_surface_dice(e, e) == 1.0 and hd95(e, e) == 0.0
    assert dice(f, e) == 0.0 and normalized_surface_dice(f, e) == 0.0 and normalized_surface_dice(e, f) == 0.0
    assert hd95(e, f) == np.inf
    with pytest.raises(ValueError, match="same shape"):
        dice(e, np.zeros((4, 4, 5), bool))
    with pytest.raises(ValueError, match="spacing"):
        normalized_surface_dice(f, f, spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="tolerance"):
        normalized_surface_dice(f, f, tolerance_mm=-1)


# ---------------------------------------------------------------- aggregation


def long_table():
    """Two datasets; dice curves chosen so every statistic is known."""
    curves = {
        ("A", "c1", "liver"): ([0.70, 0.82, 0.86, 0.91], 1500.0),  # noc@80=2, noc@85=3, noc@90=4
        ("A", "c2", "liver"): ([0.95, 0.95, 0.95, 0.95], 1200.0),  # reaches all at click 1
        ("A", "c1", "gallbladder"): ([0.10, 0.30, 0.50, 0.60], 30.0),  # never: noc = 4, a failure
        ("B", "x", "adrenal_gland_left"): ([0.81, 0.79, 0.88, 0.88], 5.0),
    }
    rows = []
    for (ds, case, s), (d, ml) in curves.items():
        for k, v in enumerate(d, 1):
            rows.append(dict(dataset=ds, case=case, structure=s, click=k, dice=v, nsd=v / 2,
                             latency_s=0.1 * k, gt_voxels=int(ml * 100), gt_ml=ml))
    return pd.DataFrame(rows)


def test_per_target_statistics_and_noc_convention():
    t = per_target(long_table(), ks=(1, 3, 5)).set_index(["dataset", "case", "structure"])
    assert "dice@5" not in t.columns  # only 4 clicks were made
    assert t.loc[("A", "c1", "liver"), "dice@3"] == 0.86
    assert t.loc[("A", "c1", "liver"), "nsd@1"] == 0.35
    assert t.loc[("A", "c1", "liver"), ["noc@80", "noc@85", "noc@90"]].tolist() == [2, 3, 4]
    assert t.loc[("A", "c2", "liver"), ["noc@80", "noc@85", "noc@90"]].tolist() == [1, 1, 1]
    gb = t.loc[("A", "c1", "gallbladder")]
    assert gb[["noc@80", "noc@85", "noc@90"]].tolist() == [4, 4, 4] and gb["fail@80"]
    assert t.loc[("B", "x", "adrenal_gland_left"), "noc@85"] == 3
    assert t["size_class"].to_dict() == {("A", "c1", "gallbladder"): "medium", ("A", "c1", "liver"): "large",
                                         ("A", "c2", "liver"): "large", ("B", "x", "adrenal_gland_left"): "small"}
    assert t.loc[("A", "c1", "liver"), "latency_s"] == pytest.approx(0.25)


def test_aggregate_groups_and_markdown():
    df = long_table()
    by_s = aggregate(df, "structure", ks=(1, 3))
    assert by_s.loc["liver", "n"] == 2
    assert by_s.loc["liver", "dice@1"] == pytest.approx((0.70 + 0.95) / 2)
    assert by_s.loc["gallbladder", "nof@90"] == 1 and by_s.loc["liver", "nof@90"] == 0
    by_ds = aggregate(df, "dataset")
    assert by_ds.loc["A", "n"] == 3 and by_ds.loc["A", "noc@90"] == pytest.approx((4 + 1 + 4) / 3)
    assert list(aggregate(df, "size_class").index) == ["small", "medium", "large"]
    overall = aggregate(df, None, std=True)
    assert overall["n"].iloc[0] == 4 and "dice@1_std" in overall.columns
    md = summary_table(df)
    assert "### By dataset" in md and "### By structure" in md and "| liver |" in md
    assert "noc@90" in md and "dice@10" not in md
    with pytest.raises(ValueError, match="duplicate"):
        aggregate(pd.concat([df, df]))
    with pytest.raises(ValueError, match="lacks columns"):
        aggregate(df.drop(columns="dice"))


def test_size_class_bounds():
    assert size_class([0.5, 10.0, 99.9, 100.0, 150.0, np.nan]).tolist() == [
        "small", "medium", "medium", "large", "large", "unknown"]


# ---------------------------------------------------------------- where the errors are


def brute_band(gt, spacing, width):
    """Voxels within ``width`` mm of a voxel on the other side of gt's boundary (outside the array = outside)."""
    padded = np.pad(gt, 1)
    sp = np.asarray(spacing, float)
    inside, outside = np.argwhere(padded) * sp, np.argwhere(~padded) * sp
    band = np.zeros(padded.shape, bool)
    for pts, other, on in ((inside, outside, True), (outside, inside, False)):
        if len(pts) and len(other):
            near = cKDTree(other).query(pts)[0] <= width + 1e-9
            idx = np.round(pts[near] / sp).astype(int)
            band[tuple(idx.T)] = True
    return band[1:-1, 1:-1, 1:-1]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 0.8, 0.8)])
def test_boundary_band_equals_brute_force(seed, spacing):
    gt = blobs(np.random.default_rng(seed), (10, 14, 16), level=0.3)
    for width in (0.0, 1.0, 2.5):
        assert np.array_equal(boundary_band(gt, spacing, width), brute_band(gt, spacing, width)), width
    assert not boundary_band(np.zeros((4, 4, 4), bool), None, 2.0).any()
    with pytest.raises(ValueError, match="width_mm"):
        boundary_band(gt, spacing, -1.0)


def test_error_counts_split_an_edge_off_by_a_voxel_from_a_leak():
    gt = np.zeros((30, 30, 30), bool)
    gt[8:20, 8:20, 8:20] = True
    pred = np.zeros_like(gt)
    pred[9:21, 8:20, 8:20] = True  # the whole cube one voxel lower: every error on the edge
    pred[24:28, 10:14, 10:14] = True  # a leak 4 voxels away
    band = boundary_band(gt, (1.5, 1.5, 1.5), 2.5)
    got = error_counts(pred, gt, band)
    assert got == {"fp": 144 + 64, "fn": 144, "fp_far": 64, "fn_far": 0}
    assert error_counts(pred, gt)["fp_far"] == 208  # no band: every error is far


def test_error_table_shares():
    df = pd.DataFrame({"dataset": ["a"] * 4, "case": ["1", "1", "2", "2"], "structure": ["s"] * 4,
                       "click": [1, 2, 1, 2], "dice": [0.5, 0.7, 0.6, 0.8],
                       "fp": [10, 0, 30, 4], "fn": [10, 10, 0, 0], "fp_far": [10, 0, 15, 0], "fn_far": [0, 5, 0, 0]})
    t = error_table(df)
    assert t.loc[("a", 1), "band share"] == pytest.approx(1 - 25 / 50)
    assert t.loc[("a", 1), "median band share"] == pytest.approx((0.5 + 0.5) / 2)
    assert t.loc[("a", 2), "band share"] == pytest.approx(1 - 5 / 14)
    assert t.loc[("a", 2), "dice"] == pytest.approx(0.75) and t.loc[("a", 2), "n"] == 2
    assert "| a | 2 | 2 | 0.750 |" in error_table(df, markdown=True)
    with pytest.raises(ValueError, match="error_band_mm"):
        error_table(df.drop(columns="fp_far"))
