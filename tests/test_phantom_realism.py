"""Phantom intensities against real CT (`ctsam3d_nb.phantom.intensities`, `.realism`, `.canvas`).

The numbers behind these bounds are in docs/synthetic_data.md (benchmarks/compare_phantom_real.py).
"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ctsam3d_nb.phantom import PHANTOM_LABELS, make_phantom
from ctsam3d_nb.phantom import realism
from ctsam3d_nb.phantom.canvas import Canvas
from ctsam3d_nb.phantom.frame import BodyGrid
from ctsam3d_nb.phantom.intensities import PHASES, T, hu_ranges, hu_table, render_ct

L = PHANTOM_LABELS
G = realism.GROUPS
# real structure -> phantom tissue whose drawn mean must be able to reach the real value
_TISSUE = {"liver": T.LIVER, "spleen": T.SPLEEN, "aorta": T.ARTERY, "portal_vein": T.PORTAL,
           "inferior_vena_cava": T.IVC_UPPER, "autochthon": T.MUSCLE, "iliopsoas": T.MUSCLE,
           "pancreas": T.PANCREAS, "gallbladder": T.BILE}
_SMALL = dict(shape=(48, 96, 96), spacing=(4.0, 4.0, 4.0))  # a whole adult abdomen, 0.2 s


def _real(real_ct_dir, kind):
    from ctsam3d_nb.grid import ModelGrid
    from ctsam3d_nb.io import load_ct, load_labels

    ct_name, lab_name = {"sm": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
                         "dicom": ("dicom_series", "example_seg_dicom.nii.gz")}[kind]
    ct = load_ct(real_ct_dir / ct_name)
    lab = load_labels(real_ct_dir / lab_name, like=ct)
    grid = ModelGrid.covering(ct, 1.5)
    return grid.resample_ct(ct, normalize=False), grid.labels_to_grid(lab, ct)


@pytest.fixture(scope="module")
def real_means(real_ct_dir):
    """Mean HU (interior) of each structure in the non-contrast scan and the portal-venous DICOM series
    (held out from training; only its statistics are read here)."""
    out = {}
    for kind, phase in (("sm", "non_contrast"), ("dicom", "portal_venous")):
        hu, lab = _real(real_ct_dir, kind)
        out[phase] = {n: realism.hu_stats(hu, lab, G[n].real)["mean"] for n in _TISSUE}
    return out


# ---------------------------------------------------------------- the HU table
@pytest.mark.parametrize("phase", PHASES)
def test_drawn_means_stay_in_their_ranges_and_vary(phase):
    ranges = hu_ranges(phase)
    tables = np.stack([hu_table(phase, np.random.default_rng(s)) for s in range(40)])
    for t, (lo, hi) in ranges.items():
        assert np.all(tables[:, t] >= lo - 1e-3) and np.all(tables[:, t] <= hi + 1e-3), t
    assert tables[:, T.LIVER].std() > 4  # patients differ, not one fixed look
    assert np.array_equal(hu_table(phase, np.random.default_rng(3)), hu_table(phase, np.random.default_rng(3)))


def test_enhancement_orders_the_phases():
    lo = {p: hu_ranges(p) for p in PHASES}
    assert lo["arterial"][T.ARTERY][0] > lo["non_contrast"][T.ARTERY][1] + 100
    assert lo["portal_venous"][T.PORTAL][0] > lo["non_contrast"][T.PORTAL][1] + 40
    # bone and fat do not enhance
    for t in (T.FAT, T.CORTICAL):
        assert lo["arterial"][t] == lo["non_contrast"][t]


def test_ranges_cover_the_real_scans(real_means):
    for phase, means in real_means.items():
        ranges = hu_ranges(phase)
        for name, tissue in _TISSUE.items():
            if not np.isfinite(means[name]):
                continue  # not in this scan
            lo, hi = ranges[tissue]
            assert lo - 10 <= means[name] <= hi + 10, (
                f"{phase} {name}: real {means[name]:.0f}, phantom {lo:.0f}..{hi:.0f}")


def test_phantom_organs_are_near_the_real_ones(real_means):
    """Phantoms in the real scans' phases: organ means within a patient-to-patient spread of the real ones."""
    tol = {"liver": 20, "spleen": 25, "aorta": 30, "portal_vein": 35, "inferior_vena_cava": 35}
    for phase, means in real_means.items():
        got = {n: [] for n in tol}
        for seed in range(3):
            ct, lab, _ = make_phantom(seed, phase=phase, **_SMALL)
            for n in tol:
                got[n].append(realism.hu_stats(ct.array.astype(np.float32), lab, G[n].phantom, erode=1)["mean"])
        for n, t in tol.items():
            if np.isfinite(means[n]):
                m = float(np.nanmean(got[n]))
                assert abs(m - means[n]) <= t, f"{phase} {n}: phantom {m:.0f} vs real {means[n]:.0f}"


# ---------------------------------------------------------------- noise and texture
def test_noise_is_spatially_correlated_with_the_requested_std():
    shape = (40, 64, 64)
    tissue = np.full(shape, T.LIVER, np.uint8)
    mean = np.zeros(256, np.float32)
    hu = render_ct(tissue, np.zeros(shape, np.float32), mean, np.random.default_rng(0), 10.0, (1.2, 0.7, 0.7))
    a = hu[4:-4, 4:-4, 4:-4].astype(np.float64)
    assert 8.5 <= a.std() <= 11.5
    corr = [np.corrcoef(np.moveaxis(a, ax, 0)[:-1].ravel(), np.moveaxis(a, ax, 0)[1:].ravel())[0, 1] for ax in range(3)]
    assert min(corr) > 0.4  # not white
    assert corr[0] > corr[2] + 0.1  # thicker slices: more correlated along z


def test_phantom_organ_noise_is_ct_like():
    """Inside the liver of a 1.5 mm phantom: fine-grain noise of real-CT size (8-9 HU measured), correlated."""
    ct, lab, _ = make_phantom(11, shape=(40, 256, 256), spacing=(1.5, 1.5, 1.5), phase="portal_venous")
    s = realism.noise_stats(ct.array.astype(np.float32), lab, G["liver"].phantom)
    assert 3.0 <= s["hp_std"] <= 14.0
    assert s["acf1"] > 0.3


def test_painting_over_a_structure_clears_its_texture():
    grid = BodyGrid.centred((16, 16, 16), (2.0, 2.0, 2.0), 1.0, (0.0, 0.0, 0.0))
    cv = Canvas(grid, np.random.default_rng(0))
    box = (slice(0, 16),) * 3
    every = np.ones((16, 16, 16), bool)
    cv.paint(box, every, "colon", T.STOOL)
    cv.texture(box, every, T.STOOL)
    assert np.abs(cv.offset).max() > 10
    inner = np.zeros_like(every)
    inner[4:12, 4:12, 4:12] = True
    cv.paint(box, inner, "liver", T.LIVER)
    assert np.all(cv.offset[inner] == 0) and np.abs(cv.offset[~inner]).max() > 10
    assert np.all(cv.label[inner] == L["liver"])


# ---------------------------------------------------------------- what must not change
@pytest.mark.parametrize("seed, kw, digest", [
    (3, dict(shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0)), "c78fae38375762e1"),  # session 10: shoulder blades
    (7, dict(shape=(48, 96, 96), spacing=(5.0, 3.0, 3.0)), "f0215b174049cf1a"),
])
def test_labels_unchanged_by_intensity_work(seed, kw, digest):
    """Label maps are what evaluation seeds and trained models depend on: intensity changes keep them
    bit-identical. Change the digest only for a deliberate geometry change, and say so in
    docs/synthetic_data.md (the last one: session 10, the shoulder blades, phantom/shoulder.py)."""
    _, lab, _ = make_phantom(seed, **kw)
    assert hashlib.sha256(lab.tobytes()).hexdigest()[:16] == digest


def test_intensities_stay_deterministic_per_seed():
    a, _, _ = make_phantom(9, **_SMALL)
    b, _, _ = make_phantom(9, **_SMALL)
    c, _, _ = make_phantom(10, **_SMALL)
    assert np.array_equal(a.array, b.array) and not np.array_equal(a.array, c.array)


# ---------------------------------------------------------------- the yardstick itself
def test_rise_distance_of_a_blurred_step():
    from scipy import ndimage as ndi

    hu = np.zeros((30, 30, 30), np.float32)
    mask = np.zeros(hu.shape, bool)
    mask[:, :, :15] = True
    hu[mask] = 100.0
    sigma_vox = 1.0
    hu = ndi.gaussian_filter(hu, sigma_vox)
    d, prof = realism.edge_profile(hu, mask, 1.5, reach_mm=12)
    # a Gaussian edge rises 10->90 % over 2.56 sigma
    assert realism.rise_distance_mm(d, prof) == pytest.approx(2.56 * sigma_vox * 1.5, abs=0.6)
