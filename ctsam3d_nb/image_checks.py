"""Checks of a SimpleITK image as a CT: 3D scalar, a geometry a CT grid can hold, finite HU voxels.

Used by ``load_ct`` and ``load_labels`` (``ctsam3d_nb.io``); each check raises a ``CTLoadError``
that names the input, what is wrong and how to fix it.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import CTLoadError, HUWarning

_SHEAR_FIX = ("Resample it onto an orthogonal grid first (e.g. nibabel.processing.resample_to_output, or "
              "sitk.Resample onto a reference image with an orthonormal direction) and load that.")


def _check_nifti_sform(image: sitk.Image, path: Path) -> None:
    """A NIfTI file whose sform is sheared: ITK quietly takes the (orthogonal) qform instead, so the
    geometry differs from what nibabel and most viewers show. Refuse it."""
    if not image.HasMetaDataKey("srow_x") or not image.HasMetaDataKey("sform_code"):
        return
    try:
        if int(float(image.GetMetaData("sform_code"))) <= 0:
            return
        m = np.array([[float(v) for v in image.GetMetaData(k).split()[:3]] for k in ("srow_x", "srow_y", "srow_z")])
    except ValueError:
        return
    norms = np.linalg.norm(m, axis=0)
    if not np.all(np.isfinite(m)) or np.any(norms <= 0):
        return  # _check_geometry reports what ITK made of it
    d = m / norms
    off = np.abs(d.T @ d - np.eye(3)).max()
    if off > 1e-3:  # srow values are printed with 6 digits: 1e-3 is the noise floor, ~0.06 degrees
        angle = float(np.degrees(np.arcsin(min(1.0, off))))
        raise CTLoadError(f"'{path}' has a sheared sform (voxel axes about {angle:.2g} degrees from orthogonal): "
                          "a CT grid has orthogonal axes, and SimpleITK would silently use the file's other "
                          f"(qform) geometry instead, so clicks would land in the wrong place. {_SHEAR_FIX}")


def _to_3d_scalar(image: sitk.Image, name) -> sitk.Image:
    """``name`` is how messages refer to the input: a quoted path or e.g. 'the SimpleITK image'."""
    if image.GetPixelID() in (sitk.sitkComplexFloat32, sitk.sitkComplexFloat64):
        raise CTLoadError(f"{name} has complex voxels ({image.GetPixelIDTypeAsString()}); a CT holds one real "
                          "value (HU) per voxel. If this is k-space or FFT output, reconstruct the image first "
                          "(e.g. the magnitude np.abs of the inverse FFT) and load that.")
    vector = sitk.sitkVectorUInt8 <= image.GetPixelID() <= sitk.sitkVectorFloat64
    if vector and image.GetNumberOfComponentsPerPixel() == 1:
        image = sitk.VectorIndexSelectionCast(image, 0)  # a one-component vector image is a scalar image
    if image.GetNumberOfComponentsPerPixel() != 1:
        n = image.GetNumberOfComponentsPerPixel()
        what = " (or complex: real and imaginary parts)" if n == 2 else ""
        raise CTLoadError(f"{name} is a vector/RGB image with {n} components per voxel{what}; a CT has one value "
                          "(HU) per voxel. Export a scalar volume.")
    dim = image.GetDimension()
    if dim == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
        dim = 3
    if dim == 2:
        raise CTLoadError(f"{name} is a 2D image of size {image.GetSize()}; CT-SAM3D needs a 3D volume. "
                          "Load the whole series (a DICOM folder) or a 3D file.")
    if dim != 3:
        raise CTLoadError(f"{name} is a {dim}D image of size {image.GetSize()}; CT-SAM3D needs one 3D volume. "
                          "For a 4D series pick one time point first, e.g. img[:, :, :, t] in SimpleITK.")
    if min(image.GetSize()) < 2:
        raise CTLoadError(f"{name} has size {image.GetSize()} (x, y, z): a single slice is a 2D image, "
                          "not a CT volume.")
    return image


def _check_geometry(image: sitk.Image, name) -> None:
    """Spacing, origin and direction that a CT grid can hold: finite, positive, orthonormal."""
    spacing, origin = np.asarray(image.GetSpacing()), np.asarray(image.GetOrigin())
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    f = lambda v: "(" + ", ".join(f"{x:.4g}" for x in np.ravel(v)) + ")"  # noqa: E731
    fix = ("Fix the header: set the right values on a SimpleITK image (img.SetSpacing/SetOrigin/SetDirection, "
           "from the scanner's records) and pass the image to load_ct.")
    if not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise CTLoadError(f"{name} has voxel spacing {f(spacing)} (x, y, z) mm: every spacing must be a finite "
                          f"number > 0. {fix}")
    if not np.all(np.isfinite(origin)):
        raise CTLoadError(f"{name} has a non-finite origin {f(origin)} (NaN or inf), so no voxel has a "
                          f"position. {fix}")
    if not np.all(np.isfinite(direction)):
        raise CTLoadError(f"{name} has a non-finite direction matrix {f(direction)}. {fix}")
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise CTLoadError(f"{name} has sheared (non-orthogonal) voxel axes: direction {f(direction)} "
                          "is not orthonormal, which a CT grid cannot represent (clicks would land in the wrong "
                          f"place). {_SHEAR_FIX}")


def _check_finite(image: sitk.Image, name) -> None:
    if image.GetPixelID() in (sitk.sitkFloat32, sitk.sitkFloat64):
        a = sitk.GetArrayViewFromImage(image)
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        if bad:
            raise CTLoadError(f"{name} has {bad} non-finite voxels (NaN or inf). Replace them before loading, "
                              "e.g. arr = np.nan_to_num(arr, nan=-1024, posinf=3071, neginf=-1024).")


def _warn_if_not_hu(image: sitk.Image, name) -> None:
    a = sitk.GetArrayViewFromImage(image)
    step = max(1, int(round((a.size / 2e5) ** (1 / 3))))
    sample = np.asarray(a[::step, ::step, ::step], dtype=np.float32)
    lo, med, hi = np.percentile(sample, [1, 50, 99])
    # CT: air is -1000 and soft tissue 0..100; an MR or an un-rescaled CT (0..4095) has no negative values.
    if lo > -500 or hi > 5000 or med > 2000:
        warnings.warn(f"{name}: intensities do not look like CT Hounsfield units (1st/50th/99th percentile "
                      f"{lo:.0f}/{med:.0f}/{hi:.0f}; a CT has air near -1000). Is this an MR, or a CT whose "
                      "rescale slope/intercept was not applied? The model expects HU.", HUWarning, stacklevel=3)


def _cast_hu(image: sitk.Image) -> sitk.Image:
    pid = image.GetPixelID()
    if pid in (sitk.sitkInt16, sitk.sitkFloat32):
        return image
    if pid in (sitk.sitkUInt8, sitk.sitkInt8):
        return sitk.Cast(image, sitk.sitkInt16)
    if pid in (sitk.sitkUInt16, sitk.sitkInt32, sitk.sitkUInt32, sitk.sitkInt64, sitk.sitkUInt64):
        mm = sitk.MinimumMaximumImageFilter()
        mm.Execute(image)
        if -32768 <= mm.GetMinimum() and mm.GetMaximum() <= 32767:
            return sitk.Cast(image, sitk.sitkInt16)
    return sitk.Cast(image, sitk.sitkFloat32)
