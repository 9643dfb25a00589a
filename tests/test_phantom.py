"""Tests of the synthetic whole-body phantom (`ctsam3d_nb.phantom`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from ctsam3d_nb.phantom import PHANTOM_LABELS, make_phantom
from ctsam3d_nb.phantom.cli import OUTPUT_NAMES, main
from ctsam3d_nb.volume import CTVolume

L = PHANTOM_LABELS
TINY = dict(shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0))
VERTEBRAE = [i for n, i in L.items() if n.startswith("vertebrae_")]


@pytest.fixture(scope="module")
def default_phantom():
    """The default 400 x 256 x 256 phantom at 1.5 mm, built once for this module."""
    return make_phantom(0)


@pytest.fixture(scope="module")
def tiny_phantom():
    return make_phantom(5, **TINY)


def _mean_hu(ct, labels, ids):
    return float(ct.array[np.isin(labels, ids)].mean())


def _centroid(labels, name):
    return np.argwhere(labels == L[name]).mean(axis=0)  # (z, y, x) voxel index


def _geodesic_extent_mm(mask: np.ndarray, spacing) -> float:
    """Longest shortest path (mm) inside ``mask`` from its lowest voxel: a centre-line length proxy."""
    idx = np.argwhere(mask)
    lookup = np.full(mask.shape, -1, np.int64)
    lookup[tuple(idx.T)] = np.arange(len(idx))
    rows, cols, weights = [], [], []
    for off in [(dz, dy, dx) for dz in (0, 1) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dz, dy, dx) > (0, 0, 0)]:
        nb = idx + off
        ok = np.all((nb >= 0) & (nb < mask.shape), axis=1)
        j = np.full(len(idx), -1)
        j[ok] = lookup[tuple(nb[ok].T)]
        keep = j >= 0
        rows.append(np.nonzero(keep)[0])
        cols.append(j[keep])
        weights.append(np.full(keep.sum(), float(np.linalg.norm(np.multiply(off, spacing)))))
    rows, cols, weights = map(np.concatenate, (rows, cols, weights))
    graph = csr_matrix((weights, (rows, cols)), shape=(len(idx), len(idx)))
    dist = dijkstra(graph, directed=False, indices=int(np.argmin(idx[:, 0])))
    return float(dist[np.isfinite(dist)].max())


# ---------------------------------------------------------------- geometry and API
def test_shapes_types_and_geometry(default_phantom):
    ct, labels, names = default_phantom
    assert isinstance(ct, CTVolume)
    assert ct.shape == labels.shape == (400, 256, 256)
    assert ct.array.dtype == np.int16 and labels.dtype == np.uint8
    assert ct.spacing == pytest.approx((1.5, 1.5, 1.5))
    expected_origin = [-(n - 1) / 2 * 1.5 for n in (256, 256, 400)]  # (x, y, z): grid centred on 0
    assert ct.origin == pytest.approx(expected_origin)
    assert np.allclose(ct.direction, np.eye(3))
    assert -1024 <= ct.array.min() and ct.array.max() <= 3071


def test_names_match_present_labels(default_phantom, tiny_phantom):
    for _, labels, names in (default_phantom, tiny_phantom):
        present = set(np.unique(labels).tolist()) - {0}
        assert set(names) == present
        assert all(L[name] == i for i, name in names.items())


def test_anisotropic_grid_geometry():
    ct, labels, names = make_phantom(2, shape=(40, 48, 56), spacing=(5.0, 4.0, 3.5))
    assert ct.shape == labels.shape == (40, 48, 56)
    assert ct.spacing == pytest.approx((5.0, 4.0, 3.5))
    assert ct.origin == pytest.approx((-27.5 * 3.5, -23.5 * 4.0, -19.5 * 5.0))


@pytest.mark.parametrize("kwargs", [
    dict(shape=(64, 64)), dict(shape=(4, 64, 64)), dict(spacing=(0, 1, 1)), dict(spacing=(1, 1)),
    dict(phase="venous"), dict(scale=5.0),
])
def test_invalid_arguments_raise(kwargs):
    args = dict(TINY, **kwargs)
    with pytest.raises(ValueError):
        make_phantom(0, **args)


def test_negative_seed_raises():
    with pytest.raises(ValueError, match="seed"):
        make_phantom(-1, **TINY)


# ---------------------------------------------------------------- determinism and variety
def test_same_seed_is_bit_identical():
    a_ct, a_lab, a_names = make_phantom(3, **TINY)
    b_ct, b_lab, b_names = make_phantom(3, **TINY)
    assert np.array_equal(a_ct.array, b_ct.array)
    assert np.array_equal(a_lab, b_lab)
    assert a_names == b_names


def test_different_seeds_give_different_anatomy():
    _, lab0, _ = make_phantom(0, **TINY)
    _, lab1, _ = make_phantom(1, **TINY)
    assert (lab0 != lab1).mean() > 0.02
    liver = L["liver"]
    assert (lab0 == liver).sum() != (lab1 == liver).sum()


def test_phase_changes_vessel_enhancement():
    kw = dict(shape=(80, 96, 96), spacing=(4.0, 3.0, 3.0))
    ct_n, lab_n, _ = make_phantom(4, phase="non_contrast", **kw)
    ct_a, lab_a, _ = make_phantom(4, phase="arterial", **kw)
    assert np.array_equal(lab_n, lab_a)  # the phase changes intensities, not anatomy
    aorta = lab_n == L["aorta"]
    assert ct_a.array[aorta].mean() > ct_n.array[aorta].mean() + 100


# ---------------------------------------------------------------- anatomy
def test_many_structures_present(default_phantom):
    _, labels, names = default_phantom
    assert len(names) >= 25
    for name in ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "heart", "lung_left", "lung_right",
                 "stomach", "pancreas", "gallbladder", "urinary_bladder", "trachea", "spinal_cord", "sternum",
                 "hip_left", "femur_right", "sacrum", "inferior_vena_cava", "iliopsoas_left", "autochthon_right",
                 "subcutaneous_fat", "skeletal_muscle", "rib_left_5", "rib_right_12", "iliac_artery_left",
                 "brachiocephalic_trunk", "common_carotid_artery_left", "subclavian_artery_right"):
        assert L[name] in names, name


def test_vertebrae_are_separate_single_pieces(default_phantom):
    _, labels, names = default_phantom
    present = [i for i in VERTEBRAE if i in names]
    assert len(present) >= 12
    objs = ndi.find_objects(labels)
    for i in present:
        n = ndi.label(labels[objs[i - 1]] == i, structure=np.ones((3, 3, 3)))[1]
        assert n == 1, f"{names[i]} has {n} pieces"
    # consecutive vertebrae are stacked head-wards (higher z index = superior)
    z = [_centroid(labels, names[i])[0] for i in present]
    assert np.all(np.diff(z) > 0)


def test_aorta_is_a_long_single_curved_tube(default_phantom):
    ct, labels, _ = default_phantom
    aorta = labels == L["aorta"]
    assert ndi.label(aorta, structure=np.ones((3, 3, 3)))[1] == 1
    zs = np.nonzero(aorta.any(axis=(1, 2)))[0]
    assert (zs.max() - zs.min() + 1) * 1.5 >= 200
    assert _geodesic_extent_mm(aorta, ct.spacing) >= 250
    tree = np.isin(labels, [L[n] for n in ("aorta", "brachiocephalic_trunk", "subclavian_artery_right",
                                             "subclavian_artery_left", "common_carotid_artery_right",
                                             "common_carotid_artery_left", "iliac_artery_left",
                                             "iliac_artery_right")])
    assert ndi.label(tree, structure=np.ones((3, 3, 3)))[1] == 1


def test_hounsfield_units_are_ct_like(default_phantom):
    ct, labels, _ = default_phantom
    assert 40 <= _mean_hu(ct, labels, [L["liver"]]) <= 160
    assert _mean_hu(ct, labels, [L["lung_left"], L["lung_right"]]) < -600
    assert _mean_hu(ct, labels, VERTEBRAE) > 150
    assert _mean_hu(ct, labels, [L["subcutaneous_fat"]]) < -50
    assert 20 <= _mean_hu(ct, labels, [L["skeletal_muscle"]]) <= 100
    assert ct.array[labels == 0].mean() < -900  # air around the patient
    assert _mean_hu(ct, labels, [L["urinary_bladder"]]) < 40


def test_laterality_and_orientation(default_phantom):
    """LPS: patient right = low x, anterior = low y, head = high z."""
    _, labels, _ = default_phantom
    c = {n: _centroid(labels, n) for n in ("liver", "spleen", "stomach", "inferior_vena_cava", "aorta", "heart",
                                            "kidney_left", "kidney_right", "lung_left", "lung_right",
                                            "urinary_bladder", "sternum", "vertebrae_T8", "gallbladder")}
    x_mid = (labels.shape[2] - 1) / 2
    assert c["liver"][2] < x_mid < c["spleen"][2]
    assert c["liver"][2] < c["stomach"][2]
    assert c["kidney_right"][2] < c["kidney_left"][2]
    assert c["lung_right"][2] < c["lung_left"][2]
    assert c["inferior_vena_cava"][2] < c["aorta"][2]
    assert c["heart"][2] > x_mid
    assert c["gallbladder"][2] < x_mid
    assert c["sternum"][1] < c["vertebrae_T8"][1]  # sternum in front of the spine
    assert c["heart"][0] > c["liver"][0] > c["urinary_bladder"][0]  # head-wards = higher z
    abdomen = labels[int(c["kidney_left"][0])]
    aorta_x = np.argwhere(abdomen == L["aorta"])[:, 1].mean()
    assert aorta_x > x_mid  # abdominal aorta slightly left of the midline


def test_small_grids_still_hold_a_body(tiny_phantom):
    ct, labels, names = tiny_phantom
    assert ct.shape == (64, 64, 64)
    for name in ("liver", "spleen", "kidney_left", "kidney_right", "aorta", "vertebrae_L1", "lung_left"):
        assert L[name] in names, name
    ct, labels, names = make_phantom(1, shape=(120, 160, 160), spacing=(2.5, 2.0, 2.0))
    assert len(names) >= 40
    assert sum(i in names for i in VERTEBRAE) >= 12


# ---------------------------------------------------------------- command line
def test_cli_writes_files_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "ph"
    argv = ["--seed", "1", "--shape", "32", "40", "48", "--spacing", "8", "6", "5", "--out-dir", str(out)]
    assert main(argv) == 0
    ct = sitk.ReadImage(str(out / OUTPUT_NAMES[0]))
    lab = sitk.ReadImage(str(out / OUTPUT_NAMES[1]))
    assert ct.GetSize() == lab.GetSize() == (48, 40, 32)
    assert ct.GetSpacing() == pytest.approx((5.0, 6.0, 8.0))
    assert lab.GetOrigin() == pytest.approx(ct.GetOrigin())
    assert ct.GetPixelID() == sitk.sitkInt16 and lab.GetPixelID() == sitk.sitkUInt8
    names = json.loads((out / OUTPUT_NAMES[2]).read_text())
    present = set(np.unique(sitk.GetArrayFromImage(lab)).tolist()) - {0}
    assert {int(k) for k in names} == present
    ct_ref, lab_ref, _ = make_phantom(1, shape=(32, 40, 48), spacing=(8, 6, 5))
    assert np.array_equal(sitk.GetArrayFromImage(ct), ct_ref.array)

    before = {n: (out / n).stat().st_mtime_ns for n in OUTPUT_NAMES}
    assert main(argv[:1] + ["2"] + argv[2:]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {n: (out / n).stat().st_mtime_ns for n in OUTPUT_NAMES} == before
    assert main(argv[:1] + ["2"] + argv[2:] + ["--overwrite"]) == 0
    assert not np.array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(out / OUTPUT_NAMES[0]))), ct_ref.array)
    # a file where a folder of the out-dir should be: refused before the build (it was a traceback after it)
    assert main(argv[:-1] + [str(out / OUTPUT_NAMES[2] / "sub")]) == 2
    assert "is a file, so" in capsys.readouterr().err


# ---------------------------------------------------------------- ontology
def test_ids_agree_with_the_anatomy_ontology():
    anatomy = pytest.importorskip("ctsam3d_nb.anatomy")
    for name, i in PHANTOM_LABELS.items():
        assert anatomy.by_name(name).id == i, name


def test_a_meal_in_the_stomach_holds_gas_bubbles(monkeypatch):
    """A stomach with food has swallowed gas inside the content (many pockets, not only the gas-fluid level);
    without food it has only the level's gas."""
    from ctsam3d_nb.phantom import bowel

    seen, gut = {}, bowel._gut

    def spy(cv, name, *args, **kw):
        if name == "stomach":
            seen["food"] = kw.get("food", 0.0)
            seen["rugae"] = kw.get("rugae", False)  # a contracted stomach: folds, no meal (test below)
        return gut(cv, name, *args, **kw)

    monkeypatch.setattr(bowel, "_gut", spy)
    pockets = {}
    for seed in range(6):
        ct, labels, names = make_phantom(seed, shape=(200, 128, 128), spacing=(3.0, 3.0, 3.0))
        stomach = labels == PHANTOM_LABELS["stomach"]
        inner = ndi.binary_erosion(stomach, iterations=2)  # away from the wall
        _, n = ndi.label(inner & (ct.array < -300))
        if not seen["rugae"]:
            pockets.setdefault(seen["food"] > 0, []).append(n)
    assert pockets[True] and pockets[False]  # both kinds among the seeds
    assert max(pockets[False]) <= 2 and min(pockets[True]) >= 5, pockets


def test_a_contracted_stomach_is_as_bright_as_the_real_one(real_ct_dir, monkeypatch):
    """A contracted stomach (enhancing mucosal folds with fluid clefts) has the HU of the real portal-venous
    stomach (the held-out DICOM series, median 52 HU), where a fluid-filled one is ~40 HU darker; which state a
    seed draws changes only tissue, not a single label."""
    from ctsam3d_nb.io import load_ct
    from ctsam3d_nb.label_maps import load_labels
    from ctsam3d_nb.phantom import bowel

    names = json.loads((real_ct_dir / "totalsegmentator_v2_total_labels.json").read_text())
    stomach_id = next(int(k) for k, v in names.items() if v == "stomach")
    real = load_ct(real_ct_dir / "dicom_series")
    real_lab = load_labels(real_ct_dir / "example_seg_dicom.nii.gz", real)
    real_median = float(np.median(real.array[real_lab == stomach_id]))

    seen, gut = {}, bowel._gut

    def spy(cv, name, *args, **kw):
        if name == "stomach":
            seen["state"] = "rugae" if kw.get("rugae") else ("meal" if kw.get("food") else "fluid")
        return gut(cv, name, *args, **kw)

    monkeypatch.setattr(bowel, "_gut", spy)
    medians, grid = {}, dict(shape=(200, 128, 128), spacing=(3.0, 3.0, 3.0), phase="portal_venous")
    for seed in range(8):
        ct, labels, _ = make_phantom(seed, **grid)
        inner = ndi.binary_erosion(labels == L["stomach"], iterations=1)
        medians.setdefault(seen["state"], []).append(float(np.median(ct.array[inner])))
        if seen["state"] == "rugae" and "same_labels" not in seen:
            monkeypatch.setattr(bowel, "P_RUGAE", 0.0)
            _, labels0, _ = make_phantom(seed, **grid)
            monkeypatch.setattr(bowel, "P_RUGAE", 0.35)
            seen["same_labels"] = bool(np.array_equal(labels, labels0)) and seen["state"] != "rugae"
    assert medians.get("rugae") and medians.get("fluid"), medians
    assert all(abs(m - real_median) <= 20 for m in medians["rugae"]), (real_median, medians)
    assert max(medians["fluid"]) < min(medians["rugae"]) - 15, medians
    assert seen["same_labels"]


def test_kidneys_and_pancreas_lie_in_fat(default_phantom, monkeypatch):
    """A shell of fat separates the kidneys (perirenal) and the pancreas from bowel, stomach, spleen, liver and
    muscle (organs._CAPSULES), as in real CT; built without it (same seed) they touch those neighbours directly.
    The layout draws after it are unchanged: the other organs keep their place."""
    from ctsam3d_nb.phantom import organs

    ct, labels, _ = default_phantom
    monkeypatch.setattr(organs, "_fat_capsules", lambda cv, rng: None)
    ct0, labels0, _ = make_phantom(0)
    fat = PHANTOM_LABELS["torso_fat"]
    for organs_, _, carve, _ in organs._CAPSULES:
        ids = [PHANTOM_LABELS[n] for n in carve]
        for name in organs_:
            out = {}
            for key, lab, hu in (("with", labels, ct.array), ("without", labels0, ct0.array)):
                m = lab == PHANTOM_LABELS[name]
                shell = ndi.binary_dilation(m, iterations=2) & ~m  # 3 mm around the organ
                out[key] = (np.isin(lab[shell], ids).mean(), (lab[shell] == fat).mean(), hu[shell].mean())
            n, n0 = (labels == PHANTOM_LABELS[name]).sum(), (labels0 == PHANTOM_LABELS[name]).sum()
            assert abs(n - n0) <= 0.005 * n0  # the organ itself is kept (a stray voxel may change hands)
            (carved, fat_with, hu_with), (carved0, fat_without, hu_without) = out["with"], out["without"]
            assert carved < 0.06 and carved0 > 0.3, (name, out)  # the neighbours no longer touch it
            assert fat_with > fat_without + 0.3 and hu_with < hu_without - 15, (name, out)  # fat HU around it
    # later draws unchanged: the vertebrae (painted after the organs) are where they were
    for v in ("vertebrae_L1", "vertebrae_T12"):
        assert np.array_equal(labels == PHANTOM_LABELS[v], labels0 == PHANTOM_LABELS[v])
