"""CT I/O: exact geometry, round trips, label-map alignment and clear errors."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import SimpleITK as sitk

from ctsam3d_nb import CTVolume, load_ct, load_labels, save_mask
from ctsam3d_nb.io import CTLoadError, HUWarning
from conftest import synthetic_hu

# direction matrices (columns = physical direction of index axes i, j, k)
LPS = np.eye(3)
RAS = np.diag([-1.0, -1.0, 1.0])
PERM = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float)  # axes permuted and one flipped
DIRECTIONS = {"LPS": LPS, "RAS": RAS, "PERM": PERM}


def _ct(direction=LPS, spacing=(3.0, 0.8, 1.2), shape=(12, 10, 8), origin=(10.0, -20.0, 35.5)):
    return CTVolume.from_array(synthetic_hu(shape), spacing=spacing, origin=origin, direction=direction)


@pytest.mark.parametrize("name", DIRECTIONS)
def test_index_physical_round_trip_matches_simpleitk(name):
    ct = _ct(DIRECTIONS[name])
    rng = np.random.default_rng(1)
    idx = rng.uniform(-2, 12, size=(50, 3))
    phys = ct.index_to_physical(idx)
    for i, p in zip(idx, phys):
        ref = ct.image.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in i[::-1]))
        np.testing.assert_allclose(p, ref, atol=1e-9)
    np.testing.assert_allclose(ct.physical_to_index(phys), idx, atol=1e-9)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("name", DIRECTIONS)
def test_load_ct_keeps_voxels_and_geometry(tmp_path, suffix, name):
    ct = _ct(DIRECTIONS[name])
    f = tmp_path / f"ct{suffix}"
    sitk.WriteImage(ct.image, str(f))
    back = load_ct(f)
    assert back.shape == ct.shape == (12, 10, 8)
    np.testing.assert_array_equal(back.array, ct.array)
    assert back.same_geometry(ct)
    np.testing.assert_allclose(back.spacing, (3.0, 0.8, 1.2))
    np.testing.assert_allclose(back.direction, DIRECTIONS[name], atol=1e-6)
    assert back.source == str(f.resolve())
    assert not back.array.flags.writeable  # the loaded CT cannot be modified in place


def test_dicom_series_loads(real_ct_dir):
    ct = load_ct(real_ct_dir / "dicom_series")
    assert ct.shape == (20, 512, 512)
    np.testing.assert_allclose(ct.spacing, (2.0, 0.98, 0.98), atol=0.01)
    a = ct.array
    assert a.min() <= -900 and a.max() >= 200  # air and bone in HU


def test_real_nifti_and_labels(real_ct_dir):
    ct = load_ct(real_ct_dir / "example_ct_sm.nii.gz")
    assert ct.shape == (30, 101, 122)
    lab = load_labels(real_ct_dir / "example_seg.nii.gz", like=ct)
    assert lab.shape == ct.shape and lab.dtype == np.uint8
    assert 5 in np.unique(lab)  # liver (TotalSegmentator v2 id 5)
    liver_hu = np.median(ct.array[lab == 5])
    assert 20 < liver_hu < 200


def test_flipped_label_map_on_dicom_is_exact(real_ct_dir):
    ct = load_ct(real_ct_dir / "dicom_series")
    path = real_ct_dir / "example_seg_dicom.nii.gz"
    raw = sitk.ReadImage(str(path))
    assert not ct.same_geometry(raw)  # y runs the other way in the file
    lab = load_labels(path, like=ct)
    ref = sitk.GetArrayFromImage(sitk.Resample(raw, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    np.testing.assert_array_equal(lab, ref)
    assert len(np.unique(lab)) > 20
    liver = lab == 5
    assert liver.any() and 20 < np.median(ct.array[liver]) < 200  # labels really sit on the liver


@pytest.mark.parametrize("flip,order", [((True, True, False), (0, 1, 2)), ((False, True, False), (2, 0, 1)),
                                         ((True, False, True), (1, 2, 0))])
def test_label_map_with_other_axis_order_is_rearranged(tmp_path, flip, order):
    ct = _ct(RAS, spacing=(3.0, 0.8, 1.2))
    truth = np.random.default_rng(3).integers(0, 7, size=ct.shape).astype(np.uint8)
    img = sitk.GetImageFromArray(truth)
    img.CopyInformation(ct.image)
    # same physical voxels, other index order: what NIfTI reorientation does to label maps
    moved = sitk.PermuteAxes(sitk.Flip(img, flip, flipAboutOrigin=False), order)
    assert not ct.same_geometry(moved)
    f = tmp_path / "lab.nii.gz"
    sitk.WriteImage(moved, str(f))
    np.testing.assert_array_equal(load_labels(f, like=ct), truth)


def test_label_map_on_another_grid_is_refused(tmp_path):
    ct = _ct()
    lab = sitk.GetImageFromArray(np.zeros(ct.shape, np.uint8))
    lab.CopyInformation(ct.image)
    lab.SetSpacing((1.0, 1.0, 1.0))
    f = tmp_path / "lab.nii.gz"
    sitk.WriteImage(lab, str(f))
    with pytest.raises(CTLoadError, match=r"(?s)does not lie on the CT.s voxel grid.*nearest"):
        load_labels(f, like=ct)
    small = sitk.GetImageFromArray(np.zeros((5, 5, 5), np.uint8))
    sitk.WriteImage(small, str(f))
    with pytest.raises(CTLoadError, match="size"):
        load_labels(f, like=ct)


def test_float_label_values_must_be_integers(tmp_path):
    ct = _ct()
    img = sitk.GetImageFromArray(np.full(ct.shape, 0.5, np.float32))
    img.CopyInformation(ct.image)
    sitk.WriteImage(img, str(tmp_path / "lab.nii.gz"))
    with pytest.raises(CTLoadError, match="non-integer"):
        load_labels(tmp_path / "lab.nii.gz", like=ct)


# ------------------------------------------------------------------ bad input
def _write(tmp_path, arr, name, **kw):
    img = sitk.GetImageFromArray(arr, **kw)
    f = tmp_path / name
    sitk.WriteImage(img, str(f))
    return f


def test_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="no_such.nii.gz"):
        load_ct(tmp_path / "no_such.nii.gz")


def test_not_an_image(tmp_path):
    f = tmp_path / "page.nrrd"
    f.write_text("<html>404 not found</html>")
    with pytest.raises(CTLoadError, match="not a readable image"):
        load_ct(f)
    g = tmp_path / "notes.txt"
    g.write_text("hello")
    with pytest.raises(CTLoadError, match="suffix"):
        load_ct(g)


def test_truncated_gzip(tmp_path):
    f = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct().image, str(f))
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(CTLoadError, match="truncated or corrupt gzip"):
        load_ct(f)
    g = tmp_path / "fake.nii.gz"
    g.write_bytes(b"\x1f\x8b" + os.urandom(200))
    with pytest.raises(CTLoadError, match="gzip"):
        load_ct(g)


def test_a_plain_nifti_named_gz_loads(tmp_path):
    """Some tools write an uncompressed NIfTI under a .nii.gz name; SimpleITK reads it, so must load_ct
    (it was refused as 'truncated or corrupt gzip')."""
    ct = _ct()
    f = tmp_path / "plain.nii"
    sitk.WriteImage(ct.image, str(f))
    named = f.rename(tmp_path / "plain.nii.gz")
    assert named.read_bytes()[:2] != b"\x1f\x8b"
    back = load_ct(named)
    assert np.array_equal(back.array, ct.array) and back.same_geometry(ct)


def test_2d_4d_and_vector_images_refused(tmp_path):
    with pytest.raises(CTLoadError, match="2D"):
        load_ct(_write(tmp_path, np.zeros((10, 10), np.int16), "a.nii.gz"))
    with pytest.raises(CTLoadError, match="4D"):
        vol = sitk.GetImageFromArray(np.zeros((4, 5, 6), np.int16))
        f4 = tmp_path / "b.nii.gz"
        sitk.WriteImage(sitk.JoinSeries([vol] * 3), str(f4))
        load_ct(f4)
    with pytest.raises(CTLoadError, match="vector"):
        load_ct(_write(tmp_path, np.zeros((4, 5, 6, 3), np.int16), "c.nrrd", isVector=True))
    with pytest.raises(CTLoadError, match="single slice"):
        load_ct(_write(tmp_path, np.zeros((1, 5, 6), np.int16), "d.nii.gz"))


def test_empty_dicom_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CTLoadError, match="no DICOM series"):
        load_ct(tmp_path / "empty")


def test_unknown_series_uid_lists_series(real_ct_dir):
    with pytest.raises(CTLoadError, match=r"Series there: .*\(20 files\)"):
        load_ct(real_ct_dir / "dicom_series", series_uid="1.2.3")


def test_non_finite_voxels(tmp_path):
    a = np.zeros((4, 5, 6), np.float32) - 1000
    a[1, 2, 3] = np.nan
    a[0, 0, 0] = np.inf
    with pytest.raises(CTLoadError, match="2 non-finite.*nan_to_num"):
        load_ct(_write(tmp_path, a, "nan.mha"))


def test_mr_like_intensities_warn(tmp_path):
    mr = np.random.default_rng(0).uniform(50, 900, size=(8, 9, 10)).astype(np.float32)
    with pytest.warns(HUWarning, match="do not look like CT"):
        ct = load_ct(_write(tmp_path, mr, "mr.nii.gz"))
    assert ct.shape == (8, 9, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_ct(_write(tmp_path, synthetic_hu(), "ct.nii.gz"))  # real-looking CT: no warning




# ------------------------------------------------------------------ save_mask
@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_save_mask_round_trip(tmp_path, suffix):
    ct = _ct(PERM)
    mask = np.zeros(ct.shape, bool)
    mask[2:5, 3:7, 1:4] = True
    out = save_mask(mask, like=ct, path=tmp_path / f"m{suffix}")
    img = sitk.ReadImage(str(out))
    assert ct.same_geometry(img)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), mask.astype(np.uint8))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"m{suffix}"]  # no temp file left


def test_save_mask_refuses_overwrite_and_input(tmp_path):
    f = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct().image, str(f))
    ct = load_ct(f)
    before = f.read_bytes()
    m = np.ones(ct.shape, np.uint8)
    with pytest.raises(ValueError, match="input CT"):
        save_mask(m, like=ct, path=f, overwrite=True)
    assert f.read_bytes() == before
    out = tmp_path / "mask.nii.gz"
    save_mask(m, like=ct, path=out)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_mask(m * 0, like=ct, path=out)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(out))).max() == 1  # untouched
    save_mask(m * 2, like=ct, path=out, overwrite=True)
    assert sitk.GetArrayFromImage(sitk.ReadImage(str(out))).max() == 2


def test_save_mask_refuses_inside_dicom_folder(real_ct_dir, tmp_path):
    ct = load_ct(real_ct_dir / "dicom_series")
    with pytest.raises(ValueError, match="input CT"):
        save_mask(np.zeros(ct.shape, bool), like=ct, path=real_ct_dir / "dicom_series" / "m.nii.gz")


def test_save_mask_bad_input(tmp_path):
    ct = _ct()
    with pytest.raises(ValueError, match="shape"):
        save_mask(np.zeros((3, 3, 3), bool), like=ct, path=tmp_path / "a.nii.gz")
    with pytest.raises(TypeError, match="dtype"):
        save_mask(np.zeros(ct.shape, np.float32), like=ct, path=tmp_path / "a.nii.gz")
    with pytest.raises(ValueError, match="suffix"):
        save_mask(np.zeros(ct.shape, bool), like=ct, path=tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_mask(np.zeros(ct.shape, bool), like=ct, path=tmp_path / "nope" / "a.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_from_array_validation():
    with pytest.raises(ValueError, match="3D"):
        CTVolume.from_array(np.zeros((4, 4)), spacing=(1, 1, 1))
    with pytest.raises(ValueError, match="spacing"):
        CTVolume.from_array(np.zeros((4, 4, 4)), spacing=(1, 0, 1))
    with pytest.raises(ValueError, match="orthonormal"):
        CTVolume.from_array(np.zeros((4, 4, 4)), spacing=(1, 1, 1), direction=np.ones((3, 3)))
    with pytest.raises(ValueError, match="origin"):
        CTVolume.from_array(np.zeros((4, 4, 4)), spacing=(1, 1, 1), origin=(0, np.nan, 0))
    with pytest.raises(TypeError, match=r"(?s)needs spacing=.*\(z, y, x\).*no default"):
        CTVolume.from_array(np.zeros((4, 4, 4)))
    with pytest.raises(TypeError):  # spacing is keyword-only: a positional (x, y, z) tuple cannot slip in
        CTVolume.from_array(np.zeros((4, 4, 4)), (1.0, 1.0, 1.0))


def test_integer_types_become_int16(tmp_path):
    img = sitk.GetImageFromArray(synthetic_hu().astype(np.int32))
    sitk.WriteImage(img, str(tmp_path / "i32.nii.gz"))
    ct = load_ct(tmp_path / "i32.nii.gz")
    assert ct.array.dtype == np.int16
    np.testing.assert_array_equal(ct.array, synthetic_hu())


def test_array_stays_valid_after_volume_is_gone(tmp_path):
    import gc

    f = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_ct().image, str(f))
    arr = load_ct(f).array[2:5]  # the CTVolume is dropped right away
    gc.collect()
    junk = [np.full(10**6, 7, np.int16) for _ in range(10)]  # reuse freed memory
    np.testing.assert_array_equal(arr, synthetic_hu((12, 10, 8))[2:5])
    del junk
