"""Pixel ↔ voxel geometry of the viewers, and mask surfaces: exact, for every view and orientation."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctsam3d_nb import CTVolume
from ctsam3d_nb.render import canonical_view
from ctsam3d_nb.viewer.geometry import (VIEWS, Orientation, data_to_voxel, downsample_mask, mask_surface,
                                        view_aspect, view_layout, view_slice, voxel_to_data)


def _rot_z(deg):
    t = np.radians(deg)
    return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])


def _signed_perm(perm, signs):
    d = np.zeros((3, 3))
    for c in range(3):
        d[perm[c], c] = signs[c]
    return d


# name -> direction cosines (columns: index axes i, j, k)
DIRECTIONS = {
    "LPS": np.eye(3),
    "RAS": np.diag([-1.0, -1.0, 1.0]),
    "LAI": np.diag([1.0, -1.0, -1.0]),
    "permuted (k=L, i=-S, j=A)": _signed_perm((2, 1, 0), (-1, -1, 1)),
    "coronal acquisition (i=L, j=-S, k=P)": _signed_perm((0, 2, 1), (1, -1, 1)),
    "oblique 20 deg": _rot_z(20) @ _signed_perm((1, 0, 2), (1, -1, 1)),
}
SHAPE, SPACING = (7, 9, 11), (3.0, 0.7, 1.2)  # anisotropic, all axes of different length


def _ct(direction, shape=SHAPE, spacing=SPACING, seed=0):
    hu = np.random.default_rng(seed).integers(-1000, 2000, shape).astype(np.int16)
    return CTVolume.from_array(hu, spacing=spacing, origin=(10.0, -20.0, 30.0), direction=direction)


def test_orientation_matches_dicomorient_for_every_signed_permutation():
    hu = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            for tilt in (0, 20):
                direction = _rot_z(tilt) @ _signed_perm(perm, signs)
                ct = CTVolume.from_array(hu, spacing=(3.0, 2.0, 1.0), direction=direction)
                ref, _, ref_spacing = canonical_view(ct)
                o = Orientation.from_ct(ct)
                assert np.array_equal(o.to_canonical(ct.array), ref), (perm, signs, tilt)
                assert np.allclose(o.spacing, ref_spacing) and o.shape == ref.shape


def test_to_canonical_is_a_view_and_index_maps_are_inverse():
    ct = _ct(DIRECTIONS["permuted (k=L, i=-S, j=A)"])
    o = Orientation.from_ct(ct)
    canon = o.to_canonical(ct.array)
    assert np.shares_memory(canon, ct.array)
    vox = np.argwhere(np.ones(ct.shape, bool))
    c = o.canonical_index(vox)
    assert np.array_equal(canon[tuple(c.T)], ct.array[tuple(vox.T)])
    assert np.array_equal(o.ct_index(c), vox)
    with pytest.raises(ValueError, match="differs from the CT"):
        o.to_canonical(np.zeros((2, 2, 2)))


def test_lps_identity_mapping_is_the_obvious_one():
    o = Orientation.from_ct(_ct(np.eye(3)))
    assert o.perm == (0, 1, 2) and o.flip == (False, False, False)
    assert data_to_voxel(o, "axial", 3, xdata=8, ydata=5) == (3, 5, 8)
    assert data_to_voxel(o, "coronal", 4, xdata=8, ydata=2) == (2, 4, 8)
    assert data_to_voxel(o, "sagittal", 6, xdata=7, ydata=2) == (2, 7, 6)
    assert voxel_to_data(o, "axial", (3, 5, 8)) == (3, 8.0, 5.0)
    assert voxel_to_data(o, "coronal", (2, 4, 8)) == (4, 8.0, 2.0)
    assert voxel_to_data(o, "sagittal", (2, 7, 6)) == (6, 7.0, 2.0)
    # a pixel is the square around its centre
    assert data_to_voxel(o, "axial", 3, 8.49, 4.51) == (3, 5, 8)
    assert data_to_voxel(o, "axial", 3, -0.5, 0.0) == (3, 0, 0)


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_voxel_to_view_to_voxel_is_identity(name):
    ct = _ct(DIRECTIONS[name])
    o = Orientation.from_ct(ct)
    rng = np.random.default_rng(1)
    voxels = [tuple(int(rng.integers(n)) for n in ct.shape) for _ in range(40)]
    voxels += [(0, 0, 0), tuple(n - 1 for n in ct.shape)]
    for view in VIEWS:
        for v in voxels:
            k, xd, yd = voxel_to_data(o, view, v)
            assert data_to_voxel(o, view, k, xd, yd) == v
            jitter = rng.uniform(-0.45, 0.45, 2)
            assert data_to_voxel(o, view, k, xd + jitter[0], yd + jitter[1]) == v
            assert all(isinstance(i, int) for i in data_to_voxel(o, view, k, xd, yd))


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_hu_shown_at_data_coordinate_is_the_voxel_value(name):
    ct = _ct(DIRECTIONS[name], seed=3)
    o = Orientation.from_ct(ct)
    canon = o.to_canonical(ct.array)
    rng = np.random.default_rng(2)
    for view in VIEWS:
        s = view_layout(view)[0]
        for _ in range(30):
            k = int(rng.integers(o.shape[s]))
            img = view_slice(canon, view, k)  # what imshow shows: pixel (row, col) at data (col, row)
            row, col = int(rng.integers(img.shape[0])), int(rng.integers(img.shape[1]))
            assert img[row, col] == ct.array[data_to_voxel(o, view, k, col, row)]


@pytest.mark.parametrize("name", list(DIRECTIONS))
def test_views_are_radiological_whatever_the_file_order(name):
    """Image right = patient left (axial, coronal), image up = anterior (axial) / head (others)."""
    ct = _ct(DIRECTIONS[name])
    o = Orientation.from_ct(ct)
    # unit physical step (LPS mm, normalised) of moving one pixel right / one pixel up on screen
    expected = {"axial": ("L", "A"), "coronal": ("L", "S"), "sagittal": ("P", "S")}
    axes = {"L": (0, 1), "P": (1, 1), "S": (2, 1), "A": (1, -1)}
    for view in VIEWS:
        s, r, c, origin = view_layout(view)
        k = o.shape[s] // 2
        p0 = ct.index_to_physical(data_to_voxel(o, view, k, 2, 2))
        right = ct.index_to_physical(data_to_voxel(o, view, k, 3, 2)) - p0
        down_in_data = ct.index_to_physical(data_to_voxel(o, view, k, 2, 3)) - p0
        up = -down_in_data if origin == "upper" else down_in_data  # origin upper: row 0 at the top
        for step, letter in zip((right, up), expected[view]):
            axis, sign = axes[letter]
            assert np.argmax(np.abs(step)) == axis and np.sign(step[axis]) == sign, (view, letter, step)


def test_aspect_follows_canonical_spacing():
    o = Orientation.from_ct(_ct(np.eye(3), spacing=(3.0, 1.0, 0.5)))
    assert [view_aspect(o, v) for v in VIEWS] == [2.0, 6.0, 3.0]
    # axes permuted in the file: the canonical spacing follows them
    op = Orientation.from_ct(_ct(DIRECTIONS["permuted (k=L, i=-S, j=A)"], spacing=(3.0, 1.0, 0.5)))
    assert op.spacing == (0.5, 1.0, 3.0)
    assert view_aspect(op, "axial") == 1.0 / 3.0


def test_errors_name_the_problem():
    o = Orientation.from_ct(_ct(np.eye(3)))
    with pytest.raises(ValueError, match="outside the axial image"):
        data_to_voxel(o, "axial", 0, 11.6, 0)
    with pytest.raises(ValueError, match="slice"):
        data_to_voxel(o, "axial", 7, 0, 0)
    with pytest.raises(ValueError, match="not on the image"):
        data_to_voxel(o, "axial", 0, None, 0)
    with pytest.raises(ValueError, match="unknown view"):
        data_to_voxel(o, "transverse", 0, 0, 0)


def _signed_volume(verts, tris):
    a, b, c = (verts[tris[:, i]].astype(np.float64) for i in range(3))
    return np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6


def test_mask_surface_is_closed_and_faces_outward():
    zz, yy, xx = np.indices((16, 18, 20))
    ball = (zz - 8) ** 2 + (yy - 9) ** 2 + (xx - 10) ** 2 <= 36
    verts, tris = mask_surface(ball)
    assert tris.dtype == np.uint32 and verts.shape[1] == 3
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), 1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert np.all(counts == 2)  # watertight
    vol = _signed_volume(verts, tris)
    assert 0.9 * ball.sum() < vol < 1.05 * ball.sum()  # positive: outward; close to the voxel count
    # in voxel index units: the surface lies within half a voxel outside the outermost voxels
    inside = np.argwhere(ball)
    assert np.all(verts.min(0) >= inside.min(0) - 0.5) and np.all(verts.min(0) <= inside.min(0))
    assert np.all(verts.max(0) <= inside.max(0) + 0.5) and np.all(verts.max(0) >= inside.max(0))


def test_mask_surface_edge_cases():
    v, t = mask_surface(np.zeros((3, 4, 5), bool))
    assert v.shape == (0, 3) and t.shape == (0, 3)
    full = np.ones((2, 2, 2), bool)  # touching the array border: still closed
    v, t = mask_surface(full)
    assert _signed_volume(v, t) > 0 and v.min() >= -0.5 and v.max() <= 1.5
    with pytest.raises(ValueError, match="3D"):
        mask_surface(np.ones((3, 3), bool))


def test_downsample_mask_any_pools():
    m = np.zeros((5, 6, 7), bool)
    m[4, 5, 6] = True
    small = downsample_mask(m, 2)
    assert small.shape == (3, 3, 4) and small.sum() == 1 and small[2, 2, 3]
    assert downsample_mask(m, 1) is not None and downsample_mask(m, 1).shape == m.shape


# ---------------------------------------------------------------------------- click markers, overlay labels
@pytest.mark.parametrize("name", ["LPS", "permuted (k=L, i=-S, j=A)", "oblique 20 deg"])
def test_click_points_read_click_records_by_name(name):
    from ctsam3d_nb.predictor_state import Click
    from ctsam3d_nb.viewer.geometry import click_points

    orient = Orientation.from_ct(_ct(DIRECTIONS[name]))
    clicks = [Click((3.0, 4.0, 5.0), (0.0, 0.0, 0.0), True), Click((3.0, 2.0, 7.0), (0.0, 0.0, 0.0), False),
              Click((1.0, 4.0, 5.0), (0.0, 0.0, 0.0), True)]
    for view in VIEWS:
        k = voxel_to_data(orient, view, (3, 4, 5))[0]
        pos, neg = click_points(orient, view, k, clicks)
        on_slice = [c for c in clicks if voxel_to_data(orient, view, c.ct_zyx)[0] == k]
        assert pos.shape == (sum(c.positive for c in on_slice), 2) and neg.shape[1] == 2
        assert [tuple(p) for p in pos] == [voxel_to_data(orient, view, c.ct_zyx)[1:] for c in on_slice if c.positive]
        assert [tuple(p) for p in neg] == [voxel_to_data(orient, view, c.ct_zyx)[1:] for c in on_slice
                                           if not c.positive]
    empty = click_points(orient, "axial", 0, [])
    assert [a.shape for a in empty] == [(0, 2), (0, 2)]


def test_check_labels_returns_the_ids_and_names_what_is_wrong():
    from ctsam3d_nb.viewer.geometry import check_labels

    lab = np.zeros(SHAPE, np.uint16)
    lab[1, 2, 3], lab[4, 5, 6] = 7, 1000
    out, ids = check_labels(lab, SHAPE)
    assert out is lab and ids == (7, 1000)
    mask, ids = check_labels(lab > 0, SHAPE)
    assert mask.dtype == np.uint8 and ids == (1,) and mask.sum() == 2
    assert check_labels(np.zeros(SHAPE, bool), SHAPE)[1] == ()
    with pytest.raises(ValueError, match="differs from the CT's"):
        check_labels(lab[:-1], SHAPE)
    with pytest.raises(TypeError, match="bool or integer"):
        check_labels(lab.astype(float), SHAPE)
    with pytest.raises(ValueError, match="negative"):
        check_labels(-lab.astype(np.int32), SHAPE)
    big = lab.astype(np.int64)
    big[0, 0, 0] = 2**31  # a colour table that large would take gigabytes: refused, named
    with pytest.raises(ValueError, match="must be 0..65535"):
        check_labels(big, SHAPE)
