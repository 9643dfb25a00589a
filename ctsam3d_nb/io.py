"""Reading CT scans and label maps, writing masks, all with exact geometry.

Every function here validates its input and raises an error that names the
file, what is wrong and how to fix it. Nothing here ever writes to the path a
CT was loaded from.

``load_ct`` lives here; file reading is in ``image_files``, the checks of an image as a CT in
``image_checks``, ``load_labels`` in ``label_maps`` and ``save_mask``/``mask_to_image`` in ``masks``.
Every name below stays importable from ``ctsam3d_nb.io``.
"""
from __future__ import annotations

import os

import numpy as np
import SimpleITK as sitk

from .array_input import image_from_array, ras_affine_to_lps
from .errors import CTLoadError, HUWarning
from .image_checks import _cast_hu, _check_finite, _check_geometry, _to_3d_scalar, _warn_if_not_hu
from .image_files import IMAGE_SUFFIXES, _check_exists, _read_dicom, _read_image, list_dicom_series  # noqa: F401
from .label_maps import load_labels
from .masks import mask_to_image, save_mask
from .volume import CTVolume

__all__ = ["load_ct", "load_labels", "save_mask", "mask_to_image", "ras_affine_to_lps", "list_dicom_series",
           "CTLoadError", "HUWarning"]


_ACCEPTED = ("a path (str or pathlib.Path) to a NIfTI/NRRD/MHA file or a DICOM folder, a SimpleITK.Image, "
             "or a numpy array with spacing= (or affine=)")
def load_ct(source, series_uid: str | None = None, *, spacing=None, origin=None, direction=None,
            affine=None) -> CTVolume:
    """Load a CT from a file, a DICOM folder, a SimpleITK image or a numpy array.

    Args:
        source: one of

            * a path (``str`` or ``pathlib.Path``): an image file (``.nii.gz``, ``.nii``, ``.nrrd``,
              ``.mha``, ``.mhd``) or a folder holding a DICOM series;
            * a ``SimpleITK.Image`` (3D, scalar, in HU): copied with its geometry; the
              caller's image is never modified;
            * a numpy array with explicit geometry, either

              - in ctsam3d_nb/SimpleITK order ``(z, y, x)`` with ``spacing=`` (mm per array axis
                ``(z, y, x)``), optional ``origin=`` (LPS mm ``(x, y, z)`` of voxel (0, 0, 0),
                default (0, 0, 0)) and ``direction=`` (3x3, columns = the LPS directions of
                index axes (x, y, z); default identity), exactly as ``sitk.GetArrayFromImage``
                and ``CTVolume.from_array`` use them; ``ct.array`` is then your array; or
              - in nibabel/MONAI order with ``affine=``: the 4x4 voxel-to-world matrix in the
                **RAS** convention of nibabel (``img.affine``, array from ``img.get_fdata()``)
                and MONAI (``meta["affine"]``, the default ``affine_lps_to_ras=True``; drop the
                channel axis first). Array index ``(i, j, k)`` lies at ``affine @ (i, j, k, 1)``
                in RAS mm (+x patient right, +y anterior, +z superior); it is converted to LPS
                (x and y negated) and the array is stored as SimpleITK reads the same NIfTI file:
                ``ct.array`` is ``array.transpose(2, 1, 0)``, so your voxel ``(i, j, k)`` is
                ``(k, j, i)`` in ctsam3d_nb's ``(z, y, x)`` indices. A MONAI affine built with
                ``affine_lps_to_ras=False`` is LPS: negate its first two rows first.

            The array is copied. There is no default spacing.
        series_uid: for a DICOM folder with several series, which one to read
            (default: the one with the most slices).
        spacing, origin, direction, affine: geometry of a numpy array (see above); only for arrays.

    Returns:
        CTVolume with HU voxels (int16, or float32 when the values need it) and
        the exact geometry. The array is read-only. ``source`` is the resolved path for files,
        None for in-memory input. For a DICOM folder, ``dicom_files`` lists the series' files in
        z order (``array[k]`` is ``dicom_files[k]``) and ``series_uid`` its SeriesInstanceUID
        (None when blank); ``save_dicom_seg`` needs them.

    Raises:
        FileNotFoundError: the path does not exist.
        CTLoadError: the input is not a readable 3D scalar image, is corrupt, holds NaN/inf voxels
            or complex values, or has geometry a CT grid cannot hold: non-finite origin/spacing/direction,
            spacing <= 0, or sheared (non-orthogonal) axes, in a header or a NIfTI sform. A DICOM
            series is refused (an error, never a warning: nothing is resampled or guessed) when its
            slices do not form one regular stack: a missing slice, a duplicate slice position, varying
            slice spacing, mixed orientations, or slices shifted in-plane (gantry tilt). The message
            names the slice positions/files and the fix (e.g. dcm2niix, which resamples such series).
            SimpleITK alone would stack them with one averaged spacing, saying so only on C++ stderr.
        TypeError: an input of another type, an array without spacing/affine, or geometry
            arguments given for a file or a SimpleITK image.
        ValueError: invalid spacing, origin, direction or affine.

    Example:
        >>> ct = load_ct("scan.nii.gz")                                       # doctest: +SKIP
        >>> ct = load_ct(sitk_image)                                          # doctest: +SKIP
        >>> ct = load_ct(hu, spacing=(2.5, 0.8, 0.8))                         # (z, y, x) array  # doctest: +SKIP
        >>> nii = nibabel.load("scan.nii.gz")                                 # doctest: +SKIP
        >>> ct = load_ct(nii.get_fdata(dtype=np.float32), affine=nii.affine)  # doctest: +SKIP
    """
    dicom_files = dicom_uid = None
    geometry = {k: v for k, v in dict(spacing=spacing, origin=origin, direction=direction, affine=affine).items()
                if v is not None}
    if isinstance(source, np.ndarray):
        if series_uid is not None:
            raise TypeError("series_uid= is for DICOM folders; a numpy array has no series")
        name = "the CT array"
        image = image_from_array(source, spacing, origin, direction, affine)
        path = None
    elif isinstance(source, sitk.Image):
        if geometry or series_uid is not None:
            given = ", ".join(f"{k}=" for k in geometry) or "series_uid="
            raise TypeError(f"{given} only apply to numpy arrays: a SimpleITK image carries its own geometry. "
                            "Set it on the image (img.SetSpacing/SetOrigin/SetDirection) or drop the argument.")
        name = "the SimpleITK image"
        image = sitk.Image(source)  # SimpleITK copies on write: changes to either one never reach the other
        image.MakeUnique()
        path = None
    elif source is None or isinstance(source, (str, os.PathLike)):
        if geometry:
            raise TypeError(f"{', '.join(f'{k}=' for k in geometry)} only apply to numpy arrays: a file carries "
                            "its own geometry. Drop the argument (fix a wrong header with SimpleITK, "
                            "then pass the image).")
        path = _check_exists(source)
        name = f"'{path}'"
        if series_uid is not None and not path.is_dir():
            raise TypeError(f"series_uid= picks a series in a DICOM folder, but '{path}' is a file: drop it, or "
                            "pass the folder that holds the series")
        if path.is_dir():
            image, dicom_files, dicom_uid = _read_dicom(path, series_uid)
        else:
            image = _read_image(path, "a CT")
    else:
        hint = ""
        if hasattr(source, "affine") and hasattr(source, "get_fdata"):
            hint = " For a nibabel image: load_ct(img.get_fdata(dtype=np.float32), affine=img.affine)."
        elif hasattr(source, "detach") and hasattr(source, "numpy"):
            hint = " For a torch tensor: load_ct(t.detach().cpu().numpy(), spacing=...) (or affine=...)."
        elif isinstance(source, (list, tuple)):
            hint = " For nested lists: load_ct(np.asarray(values), spacing=...)."
        raise TypeError(f"load_ct cannot read a {type(source).__module__}.{type(source).__qualname__}; "
                        f"it accepts {_ACCEPTED}.{hint}")
    image = _to_3d_scalar(image, name)
    _check_geometry(image, name)
    _check_finite(image, name)
    image = _cast_hu(image)
    _warn_if_not_hu(image, name)
    return CTVolume(image, source=None if path is None else str(path.resolve()), dicom_files=dicom_files,
                    series_uid=dicom_uid)


def as_ct(ct, who: str, verb: str = "needs") -> CTVolume:
    """``ct`` as a CTVolume for ``who`` (a viewer, a replay): a CTVolume as is, a path or SimpleITK image read with
    `load_ct`; a bare array (no voxel size) or anything else is refused with the fix."""
    if isinstance(ct, CTVolume):
        return ct
    if isinstance(ct, np.ndarray):
        raise TypeError(f"{who} got a bare numpy array: its voxel size is unknown. Wrap it first: "
                        "load_ct(array, spacing=(z, y, x) mm) (or affine= for nibabel/MONAI arrays)")
    if isinstance(ct, (str, os.PathLike, sitk.Image)):
        return load_ct(ct)
    raise TypeError(f"{who} {verb} the CT as a CTVolume (from load_ct), a path or a SimpleITK image, got "
                    f"{type(ct).__name__}")
