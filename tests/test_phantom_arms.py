"""Shoulder blades in every phantom (`phantom.shoulder`), arms beside the trunk in wide-field ones (`phantom.arms`)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from ctsam3d_nb.phantom import PHANTOM_LABELS as L
from ctsam3d_nb.phantom import make_phantom

WIDE = dict(shape=(200, 128, 176), spacing=(3.0, 3.0, 3.0))  # 528 mm left-right: whole-body scan width
ARM_TISSUE = {0, L["subcutaneous_fat"], L["skeletal_muscle"]}


@pytest.fixture(scope="module")
def pair():
    """Seed 4 on the wide grid with and without arms."""
    return make_phantom(4, **WIDE), make_phantom(4, arms=False, **WIDE)


def test_wide_field_phantom_has_two_humeri_hanging_beside_the_trunk(pair):
    (ct, labels, names), _ = pair
    step = WIDE["spacing"][0]
    lungs = np.isin(labels, [L["lung_left"], L["lung_right"]])
    lung_x = np.flatnonzero(lungs.any(axis=(0, 1)))
    for name, side in (("humerus_left", 1), ("humerus_right", -1)):
        m = labels == L[name]
        assert name in names.values() and ndi.label(m)[1] == 1, name
        ml = m.sum() * step**3 / 1000
        assert 100 < ml < 320, (name, ml)  # adult humeri hold about 150-250 mL
        z = np.flatnonzero(m.any(axis=(1, 2)))
        assert 250 < (z.max() - z.min() + 1) * step < 380, name  # shoulder joint to elbow
        x = np.argwhere(m)[:, 2].mean()
        # LPS arrays: +x = patient left; each humerus lies outside the lungs on its own side
        assert (x > lung_x.max()) if side > 0 else (x < lung_x.min()), name
        # a long bone: a thick bright cortex around fatty marrow at mid-shaft (real humeri there: median
        # 570-760 HU, 10th percentile about 0 HU on 1-mm voxels; at 3 mm partial volume fills the marrow in)
        mid = m.copy()
        zc = (z.min() + z.max()) // 2
        mid[: zc - 10] = False
        mid[zc + 10:] = False
        hu = ct.array[mid]
        p10, p50 = np.percentile(hu, [10, 50])
        assert p50 > 300 and p10 < p50 - 150, (name, p10, p50)


def test_arms_change_nothing_of_the_trunk(pair):
    (_, with_arms, _), (_, without, names) = pair
    changed = with_arms != without
    assert changed.sum() > 1000
    # only air, skin fat and muscle gave way, and the scapula's rim where the humeral head meets the glenoid
    assert set(np.unique(without[changed]).tolist()) <= ARM_TISSUE | {L["scapula_left"], L["scapula_right"]}
    for name in ("scapula_left", "scapula_right"):
        assert np.sum(changed & (without == L[name])) < 0.1 * np.sum(without == L[name]), name
    assert set(np.unique(with_arms[changed]).tolist()) <= ARM_TISSUE | {L["humerus_left"], L["humerus_right"],
                                                                         L["body"]}
    for name in ("liver", "lung_left", "rib_left_3", "clavicula_right", "vertebrae_T2", "femur_left"):
        assert np.array_equal(with_arms == L[name], without == L[name]), name


def test_arms_only_where_the_field_holds_them_or_when_asked():
    narrow = dict(shape=(100, 64, 64), spacing=(6.0, 6.0, 6.0))  # 384 mm: the default field, no arms
    _, labels, names = make_phantom(4, **narrow)
    assert "humerus_left" not in names.values()
    _, labels, names = make_phantom(4, arms=True, **narrow)  # asked for: the parts inside the field
    assert {"humerus_left", "humerus_right"} & set(names.values())
    _, labels, names = make_phantom(4, arms=False, **WIDE)
    assert "humerus_left" not in names.values()
    with pytest.raises(ValueError, match="arms must be True"):
        make_phantom(4, arms="down", **WIDE)


def test_nothing_is_labelled_where_the_scanner_reconstructs_nothing():
    # arms asked for on the default 384 mm field: most of them lie outside its circle, where the image is air
    ct, labels, names = make_phantom(4, arms=True, shape=(100, 64, 64), spacing=(6.0, 6.0, 6.0))
    outside = (ct.array == -1024).all(axis=0)
    assert outside.any() and not labels[:, outside].any()
    assert set(names) == set(np.unique(labels).tolist()) - {0}  # a structure cut away entirely is not listed
    assert {"humerus_left", "humerus_right"} & set(names.values())  # the parts inside the field stay


def test_training_phantoms_with_arms_are_drawn_per_seed_on_a_wide_grid():
    from ctsam3d_nb.training import TrainConfig
    from ctsam3d_nb.training.sources import ARMS_GRID_X, phantom_source

    shape = (64, 96, 96)
    image, labels = phantom_source(7, shape, p_arms=1.0)(0)
    assert image.shape == labels.shape == (64, 96, ARMS_GRID_X)
    assert {L["humerus_left"], L["humerus_right"]} <= set(np.unique(labels).tolist())
    image, labels = phantom_source(7, shape)(0)  # p_arms = 0: the grid asked for, no arms
    assert labels.shape == shape and L["humerus_left"] not in labels
    get = phantom_source(7, shape, p_arms=0.5)
    widths = [get(v)[1].shape[2] for v in range(6)]
    assert set(widths) == {96, ARMS_GRID_X}
    v = widths.index(ARMS_GRID_X)
    assert get(v)[1].shape[2] == ARMS_GRID_X  # drawn per seed: the same volume again has its arms
    with pytest.raises(ValueError, match="p_arms"):
        TrainConfig(p_arms=1.5)


def test_cli_writes_a_phantom_with_or_without_arms(tmp_path, capsys):
    import json

    from ctsam3d_nb.phantom.cli import main

    base = ["--seed", "4", "--shape", "50", "32", "44", "--spacing", "12", "12", "12"]  # 528 mm wide
    assert main(base + ["--out-dir", str(tmp_path / "a")]) == 0
    assert main(base + ["--no-arms", "--out-dir", str(tmp_path / "b")]) == 0
    with_arms = json.loads((tmp_path / "a" / "phantom_labels.json").read_text()).values()
    without = json.loads((tmp_path / "b" / "phantom_labels.json").read_text()).values()
    assert {"humerus_left", "humerus_right"} <= set(with_arms) and "humerus_left" not in without


def test_every_phantom_has_two_shoulder_blades_on_the_back_of_the_rib_cage():
    ct, labels, names = make_phantom(900100, shape=(200, 128, 128), spacing=(3.0, 3.0, 3.0))  # a held-out seed
    lungs = np.isin(labels, [L["lung_left"], L["lung_right"]])
    spine_x = np.argwhere(labels == L["vertebrae_T5"])[:, 2].mean()
    t1_top = np.flatnonzero((labels == L["vertebrae_T1"]).any(axis=(1, 2))).max()
    t9_low = np.flatnonzero((labels == L["vertebrae_T9"]).any(axis=(1, 2))).min()
    for name, side in (("scapula_left", 1), ("scapula_right", -1)):
        m = labels == L[name]
        assert name in names.values() and ndi.label(m)[1] == 1, name
        ml = m.sum() * 27 / 1000
        assert 15 < ml < 90, (name, ml)
        z, y, x = np.argwhere(m).T
        assert t9_low <= z.min() and z.max() <= t1_top + 6, name  # between the T9 and T1 levels
        assert (x.mean() - spine_x) * side > 15, name  # on its own side
        # on the back of the chest: behind the lung in its own (z, x) column (LPS: +y = posterior)
        ny = lungs.shape[1]
        lung_back = np.where(lungs.any(axis=1), ny - 1 - np.argmax(lungs[:, ::-1, :], axis=1), -1)  # (z, x)
        assert np.mean(y > lung_back[z, x]) > 0.97, name
        assert np.median(ct.array[m]) > 250, name  # bone
