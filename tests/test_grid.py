"""The model grid: coordinate round trips and exact mask transfer in every orientation."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ctsam3d_nb import CTVolume, load_ct
from ctsam3d_nb.grid import ModelGrid, normalize_hu
from conftest import synthetic_hu

FLIP_PERM = {
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1.0, 1.0]),
    "LAI": np.diag([1.0, -1.0, -1.0]),
    "PERM": np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float),
}


def test_normalize_hu_window():
    np.testing.assert_allclose(normalize_hu([-1000, -125, 50, 225, 3000]), [0, 0, 0.5, 1, 1], atol=1e-7)


@pytest.mark.parametrize("name", FLIP_PERM)
def test_grid_on_isotropic_ct_is_exact(name):
    """A 1.5 mm CT in any flipped/permuted orientation maps voxel-for-voxel onto the grid."""
    hu = synthetic_hu((11, 9, 7))
    ct = CTVolume.from_array(hu, spacing=(1.5, 1.5, 1.5), origin=(3.0, -4.5, 100.0), direction=FLIP_PERM[name])
    grid = ModelGrid.covering(ct)
    assert sorted(grid.shape) == sorted(ct.shape)
    img = grid.resample_ct(ct)
    assert img.dtype == np.float32 and img.shape == grid.shape
    assert np.isclose(img.sum(), normalize_hu(hu).sum(), rtol=1e-5)  # same voxels, re-ordered
    # every CT voxel lands on an integer grid voxel with the same value
    rng = np.random.default_rng(0)
    idx = np.stack([rng.integers(0, s, 40) for s in ct.shape], 1)
    g = grid.from_ct_index(ct, idx)
    np.testing.assert_allclose(g, np.rint(g), atol=1e-9)
    gi = np.rint(g).astype(int)
    np.testing.assert_allclose(img[tuple(gi.T)], normalize_hu(hu[tuple(idx.T)]), atol=1e-6)
    # masks: CT -> grid -> CT is the identity
    labels = rng.integers(0, 5, size=ct.shape).astype(np.uint8)
    back = grid.mask_to_ct(grid.labels_to_grid(labels, ct), ct)
    np.testing.assert_array_equal(back, labels)


@pytest.mark.parametrize("name", FLIP_PERM)
def test_coordinate_round_trip_anisotropic(name):
    ct = CTVolume.from_array(synthetic_hu((20, 30, 25)), spacing=(3.0, 0.7, 0.9), origin=(-50, 20, 7),
                             direction=FLIP_PERM[name])
    grid = ModelGrid.covering(ct)
    idx = np.random.default_rng(1).uniform(0, 19, size=(100, 3))
    g = grid.from_ct_index(ct, idx)
    np.testing.assert_allclose(grid.to_ct_index(ct, g), idx, atol=1e-9)
    np.testing.assert_allclose(grid.index_to_physical(g), ct.index_to_physical(idx), atol=1e-9)
    # the grid covers the whole CT: every voxel centre lies inside it
    corners = np.array(np.meshgrid(*[[0, s - 1] for s in ct.shape], indexing="ij")).reshape(3, -1).T
    gc = grid.from_ct_index(ct, corners)
    assert gc.min() > -1e-6 and np.all(gc <= np.asarray(grid.shape) - 1 + 1.0)
    # physical extent ~ CT extent, at 1.5 mm
    extent_ct = (np.asarray(ct.shape) - 1) * np.asarray(ct.spacing)
    assert np.prod(grid.shape) * 1.5**3 == pytest.approx(np.prod(extent_ct), rel=0.3)


@pytest.mark.parametrize("name", ["LPS", "RAS", "PERM"])
def test_mask_back_to_anisotropic_ct(name):
    """Masks made on the grid come back on the CT's exact grid, nearest neighbour."""
    shape, spacing = (24, 40, 36), (2.5, 0.75, 0.8)
    ct = CTVolume.from_array(synthetic_hu(shape), spacing=spacing, origin=(5, 5, 5), direction=FLIP_PERM[name])
    grid = ModelGrid.covering(ct)
    zz, yy, xx = np.indices(shape)
    ball = ((zz - 12) * 2.5) ** 2 + ((yy - 20) * 0.75) ** 2 + ((xx - 18) * 0.8) ** 2 < 15**2
    on_grid = grid.labels_to_grid(ball, ct)
    assert on_grid.dtype == bool
    vol_grid = on_grid.sum() * 1.5**3
    assert vol_grid == pytest.approx(ball.sum() * np.prod(spacing), rel=0.05)
    back = grid.mask_to_ct(on_grid, ct)
    assert back.shape == shape and back.dtype == bool
    dice = 2 * (back & ball).sum() / (back.sum() + ball.sum())
    assert dice > 0.95
    # errors only on the boundary
    interior = ndimage.binary_erosion(ball, iterations=2)
    assert back[interior].all()


@pytest.mark.parametrize("name", FLIP_PERM)
@pytest.mark.parametrize("spacing", [(2.0, 0.9765625, 0.9765625), (1.0, 1.0, 1.0), (0.8, 1.2, 2.5)])
def test_every_ct_voxel_has_its_grid_voxel(name, spacing):
    """A mask filling the grid fills the whole CT, edges included: the grid's last voxel centre lies within
    half a grid voxel of the CT's last (the held-out DICOM series' 512 x 0.977 mm rows span 332.7 grid voxels;
    a grid of 333 left its last row and column out of every mask)."""
    shape = (21, 41, 33)
    ct = CTVolume.from_array(synthetic_hu(shape), spacing=spacing, origin=(-3, 8, 40), direction=FLIP_PERM[name])
    grid = ModelGrid.covering(ct)
    assert grid.mask_to_ct(np.ones(grid.shape, bool), ct).all()
    extent = np.sort((np.asarray(shape) - 1) * np.asarray(spacing))
    assert np.all(np.abs((np.sort(grid.shape) - 1) * 1.5 - extent) <= 0.75 + 1e-9)  # no grid voxel to spare
    # a mask in the grid's last slab alone reaches the CT's last slice on that axis
    last = np.zeros(grid.shape, bool)
    last[-1] = True
    back = grid.mask_to_ct(last, ct)
    axis = int(np.argmax(np.abs(ct.direction[2, :])))  # the CT's array axis (z, y, x) along physical z
    edge = back.take(-1 if np.sign(ct.direction[2, axis]) > 0 else 0, axis=2 - axis)
    assert edge.all()


def test_grid_shape_validation():
    ct = CTVolume.from_array(synthetic_hu(), spacing=(1.5, 1.5, 1.5))
    grid = ModelGrid.covering(ct)
    with pytest.raises(ValueError, match="does not match its grid"):
        grid.mask_to_ct(np.zeros((3, 3, 3), bool), ct)


def test_real_dicom_on_model_grid(real_ct_dir):
    ct = load_ct(real_ct_dir / "dicom_series")
    grid = ModelGrid.covering(ct)
    extent = (np.asarray(ct.shape) - 1) * np.asarray(ct.spacing)
    np.testing.assert_allclose(np.asarray(grid.shape), np.floor(extent / 1.5 + 0.5) + 1)  # 27, 334, 334
    img = grid.resample_ct(ct)
    assert 0.0 <= img.min() and img.max() <= 1.0
    # mean intensity of a central block is the same on both grids (no shift, no flip)
    c = np.asarray(ct.shape) // 2
    p = ct.index_to_physical(c)
    g = np.rint(grid.physical_to_index(p)).astype(int)
    a = normalize_hu(ct.array[c[0] - 2:c[0] + 3, c[1] - 20:c[1] + 20, c[2] - 20:c[2] + 20]).mean()
    b = img[g[0] - 3:g[0] + 4, g[1] - 13:g[1] + 13, g[2] - 13:g[2] + 13].mean()
    assert abs(a - b) < 0.05
