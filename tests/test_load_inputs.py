"""Inputs users already have: load_ct from a SimpleITK image or a numpy array (spacing or a RAS affine),
and mask_to_image back."""
from __future__ import annotations

import struct

import numpy as np
import pytest
import SimpleITK as sitk

import ctsam3d_nb as cs
from ctsam3d_nb import CTVolume, load_ct, save_mask
from ctsam3d_nb.io import CTLoadError, HUWarning, mask_to_image, ras_affine_to_lps
from conftest import synthetic_hu

PERM = np.array([[0, 0, 1], [1, 0, 0], [0, -1, 0]], float)  # axes permuted and one flipped (LPS columns i, j, k)
RAS_DIR = np.diag([-1.0, -1.0, 1.0])


def _image(direction=PERM, spacing_xyz=(1.2, 0.8, 3.0), origin=(10.0, -20.0, 35.5), arr=None):
    img = sitk.GetImageFromArray(synthetic_hu() if arr is None else arr)
    img.SetSpacing(spacing_xyz)
    img.SetOrigin(origin)
    img.SetDirection(tuple(np.asarray(direction, float).ravel()))
    return img


# ------------------------------------------------------------------ SimpleITK image
def test_load_ct_from_simpleitk_image_keeps_geometry_and_copies():
    img = _image()
    ct = load_ct(img)
    assert ct.source is None
    assert ct.same_geometry(img)
    np.testing.assert_array_equal(ct.array, synthetic_hu())
    # the caller's image stays theirs: changing it does not reach the CTVolume, and vice versa
    img.SetPixel(0, 0, 0, 1234)
    img.SetSpacing((9.0, 9.0, 9.0))
    assert ct.array[0, 0, 0] == synthetic_hu()[0, 0, 0]
    np.testing.assert_allclose(ct.spacing, (3.0, 0.8, 1.2))
    ct.image.SetPixel(1, 1, 1, -5)  # even someone writing into ct.image does not reach the caller's image
    assert img.GetPixel(1, 1, 1) == synthetic_hu()[1, 1, 1]


def test_load_ct_from_simpleitk_image_casts_without_touching_the_caller():
    img = _image(arr=synthetic_hu().astype(np.int32))
    ct = load_ct(img)
    assert ct.array.dtype == np.int16
    assert img.GetPixelID() == sitk.sitkInt32  # the caller's image keeps its type
    four_d = sitk.JoinSeries([img])  # (x, y, z, 1)
    assert load_ct(four_d).shape == synthetic_hu().shape
    assert four_d.GetDimension() == 4


def test_simpleitk_image_errors_name_the_image():
    with pytest.raises(CTLoadError, match="the SimpleITK image is a 2D image"):
        load_ct(sitk.Image(9, 9, sitk.sitkInt16))
    mr = sitk.GetImageFromArray(np.random.default_rng(0).uniform(50, 900, (8, 9, 10)).astype(np.float32))
    with pytest.warns(HUWarning, match="the SimpleITK image: intensities"):
        load_ct(mr)
    with pytest.raises(TypeError, match="spacing= only apply to numpy arrays"):
        load_ct(_image(), spacing=(1, 1, 1))


# ------------------------------------------------------------------ numpy array with spacing
def test_load_ct_from_array_with_spacing_origin_direction():
    hu = synthetic_hu()
    ct = load_ct(hu, spacing=(3.0, 0.8, 1.2), origin=(10.0, -20.0, 35.5), direction=PERM)
    ref = CTVolume.from_array(hu, spacing=(3.0, 0.8, 1.2), origin=(10.0, -20.0, 35.5), direction=PERM)
    assert ct.same_geometry(ref) and ct.same_geometry(_image())
    np.testing.assert_array_equal(ct.array, hu)
    assert ct.source is None and ct.array.dtype == np.int16
    hu[0, 0, 0] = 999  # the array was copied
    assert ct.array[0, 0, 0] != 999
    # defaults: origin (0, 0, 0) and identity direction, spacing exactly as given per (z, y, x)
    ct = load_ct(synthetic_hu().astype(np.float64), spacing=(2.5, 0.7, 0.9))
    assert ct.array.dtype == np.float32 and ct.origin == (0.0, 0.0, 0.0)
    np.testing.assert_allclose(ct.direction, np.eye(3))
    np.testing.assert_allclose(ct.spacing, (2.5, 0.7, 0.9))
    np.testing.assert_allclose(ct.index_to_physical((1, 1, 1)), (0.9, 0.7, 2.5))


def test_array_without_geometry_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"(?s)spacing=.*affine=.*no 1 mm default"):
        load_ct(synthetic_hu())
    with pytest.raises(TypeError, match=r"from_array needs spacing="):
        CTVolume.from_array(synthetic_hu())


def test_big_endian_arrays_load():
    be = synthetic_hu().astype(">i2")
    np.testing.assert_array_equal(load_ct(be, spacing=(1, 1, 1)).array, synthetic_hu())
    # CTVolume.from_array converts as load_ct does (SimpleITK takes neither big-endian nor float16 arrays)
    np.testing.assert_array_equal(CTVolume.from_array(be, spacing=(1, 1, 1)).array, synthetic_hu())
    half = CTVolume.from_array(synthetic_hu().astype(np.float16), spacing=(1, 1, 1))
    assert half.array.dtype == np.float32
    np.testing.assert_array_equal(half.array, synthetic_hu().astype(np.float16).astype(np.float32))


def test_a_one_component_vector_image_is_a_scalar_ct():
    img = sitk.Compose(_image())  # a vector image of one component, as some converters write
    assert img.GetNumberOfComponentsPerPixel() == 1 and "vector" in img.GetPixelIDTypeAsString()
    np.testing.assert_array_equal(load_ct(img).array, load_ct(_image()).array)
    with pytest.raises(CTLoadError, match="3 components per voxel"):
        load_ct(sitk.Compose(_image(), _image(), _image()))


@pytest.mark.parametrize("bad,exc,match", [
    (np.zeros((1, 4, 5, 6), np.int16), CTLoadError, r"arr\[0\]"),
    (np.zeros((4, 5), np.int16), CTLoadError, "3D volume"),
    (np.zeros((4, 5, 6), bool), TypeError, "boolean"),
    (np.zeros((4, 5, 6), complex), TypeError, "complex"),
    (np.full((4, 5, 6), np.nan, np.float32), CTLoadError, "non-finite"),
])
def test_bad_arrays(bad, exc, match):
    with pytest.raises(exc, match=match):
        load_ct(bad, spacing=(1, 1, 1))


@pytest.mark.parametrize("thing,match", [
    (42, "builtins.int"),
    ([[[0, 1], [2, 3]]], r"np\.asarray"),
    ({"spacing": 1}, "builtins.dict"),
])
def test_other_types_get_a_type_error_naming_what_is_accepted(thing, match):
    with pytest.raises(TypeError, match=match) as e:
        load_ct(thing)
    assert "SimpleITK.Image" in str(e.value) and "numpy array with spacing=" in str(e.value)
    assert "PathLike" not in str(e.value)


def test_geometry_arguments_with_a_path_are_refused(tmp_path):
    f = tmp_path / "ct.nii.gz"
    sitk.WriteImage(_image(), str(f))
    with pytest.raises(TypeError, match="a file carries its own geometry"):
        load_ct(f, spacing=(1, 1, 1))
    with pytest.raises(TypeError, match="series_uid"):
        load_ct(synthetic_hu(), spacing=(1, 1, 1), series_uid="1.2.3")
    with pytest.raises(TypeError, match=r"series_uid= picks a series in a DICOM folder.*is a file"):
        load_ct(f, series_uid="1.2.3")  # was silently ignored


# ------------------------------------------------------------------ numpy array with a RAS affine
def _nifti_affine_and_data(path):
    """What nibabel returns for an uncompressed NIfTI-1 file (img.affine from the sform, get_fdata()
    in (i, j, k) order), read straight from the header bytes."""
    raw = path.read_bytes()
    assert struct.unpack("<i", raw[:4])[0] == 348
    dims = struct.unpack("<8h", raw[40:56])
    datatype = struct.unpack("<h", raw[70:72])[0]
    vox_offset = int(struct.unpack("<f", raw[108:112])[0])
    sform_code = struct.unpack("<h", raw[254:256])[0]
    assert sform_code > 0  # nibabel then takes the affine from srow_x/y/z
    srows = np.array(struct.unpack("<12f", raw[280:328]), np.float64).reshape(3, 4)
    affine = np.vstack([srows, [0, 0, 0, 1]])
    dtype = {4: "<i2", 16: "<f4"}[datatype]
    n = dims[1] * dims[2] * dims[3]
    data = np.frombuffer(raw, dtype, count=n, offset=vox_offset).reshape(dims[1:4], order="F")
    return affine, data


@pytest.mark.parametrize("direction", [np.eye(3), RAS_DIR, PERM], ids=["LPS", "RAS", "PERM"])
def test_affine_from_a_nifti_header_matches_loading_the_file(tmp_path, direction):
    f = tmp_path / "ct.nii"
    sitk.WriteImage(_image(direction), str(f))
    affine, data = _nifti_affine_and_data(f)
    ct_arr = load_ct(data, affine=affine)
    ct_file = load_ct(f)
    assert ct_arr.same_geometry(ct_file)
    np.testing.assert_array_equal(ct_arr.array, ct_file.array)


def test_flipped_ras_affine_lands_voxels_at_the_right_points():
    # array in nibabel order (i, j, k): i runs to the patient's left (RAS -x, 0.8 mm), j superior (RAS +z,
    # 2.5 mm), k posterior (RAS -y, 0.7 mm): two axes flipped against RAS and j, k swapped
    affine = np.array([[-0.8, 0.0, 0.0, 120.0],
                       [0.0, 0.0, -0.7, 80.0],
                       [0.0, 2.5, 0.0, -300.0],
                       [0.0, 0.0, 0.0, 1.0]])
    rng = np.random.default_rng(5)
    arr = rng.integers(-1000, 1000, size=(7, 6, 5)).astype(np.int16)  # (i, j, k)
    ct = load_ct(arr, affine=affine)
    assert ct.shape == (5, 6, 7)
    np.testing.assert_allclose(ct.spacing, (0.7, 2.5, 0.8))
    for i, j, k in [(0, 0, 0), (6, 5, 4), (3, 1, 2), (1, 4, 0)]:
        ras = affine @ np.array([i, j, k, 1.0])
        lps = np.array([-ras[0], -ras[1], ras[2]])
        np.testing.assert_allclose(ct.index_to_physical((k, j, i)), lps, atol=1e-9)
        assert ct.array[k, j, i] == arr[i, j, k]
        np.testing.assert_allclose(ct.physical_to_index(lps), (k, j, i), atol=1e-9)
        # SimpleITK agrees on where the voxel is
        np.testing.assert_allclose(ct.image.TransformIndexToPhysicalPoint((i, j, k)), lps, atol=1e-9)
    # an identity-like RAS affine means +i runs to the patient's right, i.e. -x in LPS
    sp, origin, d = ras_affine_to_lps(np.diag([2.0, 3.0, 4.0, 1.0]))
    assert sp == (2.0, 3.0, 4.0) and origin == (-0.0, -0.0, 0.0)
    np.testing.assert_allclose(d, RAS_DIR)


@pytest.mark.parametrize("affine,match", [
    (np.eye(3), "4x4"),
    (np.diag([1.0, 1.0, 0.0, 1.0]), "zero-length"),
    (np.array([[1, 0.5, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]]), "sheared"),
    (np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 1, 1.0]]), "last row"),
    (np.full((4, 4), np.nan), "NaN"),
])
def test_bad_affines(affine, match):
    with pytest.raises(ValueError, match=match):
        load_ct(synthetic_hu(), affine=affine)


def test_affine_and_spacing_together_are_refused():
    with pytest.raises(TypeError, match="either affine= or spacing="):
        load_ct(synthetic_hu(), affine=np.eye(4), spacing=(1, 1, 1))


# ------------------------------------------------------------------ mask_to_image
def test_mask_to_image_has_the_ct_geometry_and_is_a_copy(tmp_path):
    ct = load_ct(_image())
    labels = np.zeros(ct.shape, np.int64)
    labels[2:6, 3:7, 1:4] = 5
    labels[7, 1, 1] = 300
    img = mask_to_image(labels, like=ct)
    assert ct.same_geometry(img) and img.GetPixelID() == sitk.sitkUInt16
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), labels)
    img.SetPixel(0, 0, 0, 9)
    assert labels[0, 0, 0] == 0  # the caller's array is not a view of the image
    m = labels == 5
    b = mask_to_image(m, like=ct)
    assert b.GetPixelID() == sitk.sitkUInt8
    # a physical point inside the mask is inside in SimpleITK's eyes too
    p = ct.index_to_physical((3, 4, 2))
    assert b.GetPixel(b.TransformPhysicalPointToIndex(tuple(p))) == 1
    # round trip through a file and load_labels
    out = save_mask(m, like=ct, path=tmp_path / "m.nii.gz")
    np.testing.assert_array_equal(cs.load_labels(out, like=ct), m.astype(np.uint8))


def test_mask_to_image_bad_input():
    ct = load_ct(_image())
    with pytest.raises(ValueError, match="shape"):
        mask_to_image(np.zeros((2, 2, 2), bool), like=ct)
    with pytest.raises(TypeError, match="dtype"):
        mask_to_image(np.zeros(ct.shape, np.float32), like=ct)
    with pytest.raises(TypeError, match="CTVolume"):
        mask_to_image(np.zeros(ct.shape, bool), like=ct.image)
    with pytest.raises(ValueError, match="0..65535"):
        mask_to_image(np.full(ct.shape, -1), like=ct)
