"""Reading CT scans and label maps, writing masks, all with exact geometry.

Every function here validates its input and raises an error that names the
file, what is wrong and how to fix it. Nothing here ever writes to the path a
CT was loaded from.
"""
from __future__ import annotations

import gzip
import os
import warnings
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .anatomy import MAX_ID
from .array_input import image_from_array, ras_affine_to_lps
from .dicom_slices import check_slice_positions
from .errors import CTLoadError, HUWarning
from .masks import mask_to_image, save_mask
from .volume import CTVolume

__all__ = ["load_ct", "load_labels", "save_mask", "mask_to_image", "ras_affine_to_lps", "list_dicom_series",
           "CTLoadError", "HUWarning"]

_MAX_LABEL = 65535  # label ids are uint16: every convention, every ontology id, what save_mask writes
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in IMAGE_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _check_exists(path) -> Path:
    if path is None or str(path) == "":
        raise CTLoadError("no path given: pass the path of a CT file (.nii.gz, .nrrd, .mha) or a DICOM folder")
    path = Path(path).expanduser()
    if not path.exists():
        hint = ""
        if path.parent.exists():
            near = sorted(p.name for p in path.parent.iterdir() if p.name[:3] == path.name[:3])[:5]
            if near:
                hint = f" Files with a similar name there: {near}."
        raise FileNotFoundError(f"CT path not found: '{path}'. Check the spelling and the working directory "
                                f"(now '{Path.cwd()}').{hint}")
    return path


def list_dicom_series(folder) -> dict[str, list[str]]:
    """DICOM series in ``folder``: ``{series_uid: [file names in slice order]}``."""
    folder = str(folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in uids}


_SERIES_UID = "0020|000e"


def _read_dicom(folder: Path, series_uid: str | None) -> tuple[sitk.Image, tuple[str, ...], str | None]:
    """(image, its files in z order (resolved paths), the SeriesInstanceUID or None when blank)."""
    series = list_dicom_series(folder)
    if not series:
        raise CTLoadError(f"no DICOM series found in folder '{folder}'. Point load_ct at a folder of DICOM "
                          f"slices, or at an image file ({', '.join(IMAGE_SUFFIXES[:5])}).")
    listing = ", ".join(f"'{uid}' ({len(f)} files)" for uid, f in series.items())
    if series_uid is not None:
        if series_uid not in series:
            raise CTLoadError(f"series_uid '{series_uid}' is not in '{folder}'. Series there: {listing}.")
        files = series[series_uid]
    else:
        uid, files = max(series.items(), key=lambda kv: len(kv[1]))
        if len(series) > 1:
            warnings.warn(f"'{folder}' holds {len(series)} DICOM series; loading the largest, {uid}. "
                          f"Pass series_uid= to choose another. Series: {listing}.", stacklevel=3)
    if len(files) < 2:
        raise CTLoadError(f"the DICOM series in '{folder}' has a single slice: a 2D image, not a CT volume. "
                          "Export the whole series into this folder.")
    # missing/duplicate slices, varying spacing, shear: ITK would stack them with one averaged spacing
    check_slice_positions(folder, files)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise CTLoadError(f"could not read the DICOM series in '{folder}': {str(e).strip().splitlines()[-1]}. "
                          "Some slices may be corrupt or missing.") from None
    # ImageSeriesReader stacks the files in the order given: slice k of the image is files[k]
    header = sitk.ImageFileReader()
    header.SetFileName(files[0])
    header.ReadImageInformation()
    uid = header.GetMetaData(_SERIES_UID).strip("\x00 ") if header.HasMetaDataKey(_SERIES_UID) else ""
    return image, tuple(str(Path(f).resolve()) for f in files), uid or None


def _check_gzip(path: Path) -> None:
    """Detect truncated/corrupt gzip before SimpleITK gives a cryptic error."""
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise CTLoadError(f"'{path}' is a truncated or corrupt gzip file ({e}). It was probably cut off while "
                          "downloading or copying: copy it again, or check it with `gzip -t`.") from None


def _read_image(path: Path, what: str) -> sitk.Image:
    if path.is_dir():
        raise CTLoadError(f"'{path}' is a folder; {what} must be an image file")
    if _suffix(path) not in IMAGE_SUFFIXES:
        raise CTLoadError(f"'{path}' does not have an image suffix ({', '.join(IMAGE_SUFFIXES)}). "
                          "Convert it, or pass a DICOM folder.")
    if path.name.lower().endswith(".gz"):
        _check_gzip(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        if "orthonormal" in msg:
            raise CTLoadError(f"'{path}' has sheared (non-orthogonal) voxel axes in its header, which a CT grid "
                              f"cannot represent ({msg}). {_SHEAR_FIX}") from None
        raise CTLoadError(f"'{path}' is not a readable image ({msg}). Check that it is a complete NIfTI/NRRD/MHA "
                          "file and not, e.g., an HTML error page or a different format with a wrong suffix.") from None
    _check_nifti_sform(image, path)
    _check_metaimage_header(path)
    return image


_META_GEOMETRY = {"offset", "origin", "position", "elementspacing", "elementsize", "transformmatrix", "rotation",
                  "orientation"}


def _check_metaimage_header(path: Path) -> None:
    """MetaImage (.mha/.mhd) headers are text; ITK reads a NaN/inf there as 0 without a word. Refuse them."""
    if _suffix(path) not in (".mha", ".mhd"):
        return
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    for line in head.split(b"\n"):
        key, _, value = line.decode("latin-1").partition("=")
        key = key.strip()
        if key.lower() == "elementdatafile":
            break
        if key.lower() in _META_GEOMETRY:
            try:
                numbers = [float(v) for v in value.split()]
            except ValueError:
                continue
            if not all(np.isfinite(numbers)):
                raise CTLoadError(f"'{path}' has a non-finite {key} ({value.strip()}) in its header: SimpleITK would "
                                  "silently read it as 0, so the geometry would be wrong. Put the right values in "
                                  f"that header line (the text at the top of the file), or set them on a SimpleITK "
                                  "image (img.SetOrigin/SetSpacing/SetDirection) and pass the image to load_ct.")


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
                            "its own geometry. Drop the argument (fix a wrong header with SimpleITK, then pass the image).")
        path = _check_exists(source)
        name = f"'{path}'"
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


def _signed_permutation(ct: CTVolume, lab: sitk.Image):
    """If ``lab``'s voxel grid is ``ct``'s grid with axes flipped/permuted, return
    (perm, flips) so that ``ct_array = flip(transpose(lab_array, perm), flips)``; else None."""
    s_ct = np.asarray(ct.image.GetSpacing())
    s_lab = np.asarray(lab.GetSpacing())
    d_lab = np.asarray(lab.GetDirection()).reshape(3, 3)
    a_ct = ct.direction * s_ct  # columns: physical step per ct index (i, j, k)
    a_lab = d_lab * s_lab
    m = np.linalg.solve(a_lab, a_ct)  # lab_ijk = m @ ct_ijk + t
    r = np.rint(m)
    if not np.allclose(m, r, atol=1e-3) or sorted(np.abs(r).sum(0)) != [1, 1, 1] or abs(abs(np.linalg.det(r)) - 1) > 1e-6:
        return None
    t = np.linalg.solve(a_lab, np.asarray(ct.origin) - np.asarray(lab.GetOrigin()))
    if not np.allclose(t, np.rint(t), atol=1e-2):
        return None
    size_ct = np.asarray(ct.image.GetSize())
    # the ct index box must map exactly onto the label index box
    corners = np.array([[0, 0, 0], size_ct - 1])
    mapped = corners @ r.T + np.rint(t)
    lo, hi = mapped.min(0), mapped.max(0)
    if np.any(lo != 0) or np.any(hi != np.asarray(lab.GetSize()) - 1):
        return None
    # ct axis c (ijk) comes from lab axis src[c]; convert to numpy (z,y,x) axis order
    src = np.abs(r).argmax(0)
    sign = r[src, np.arange(3)]
    perm = tuple(2 - src[::-1])  # numpy axis of lab array feeding numpy axis a of ct array
    flips = tuple(a for a in range(3) if sign[::-1][a] < 0)
    return perm, flips


def _describe_geometry(img: sitk.Image) -> str:
    f = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
    return (f"size(x,y,z)={img.GetSize()}, spacing={f(img.GetSpacing())}, origin={f(img.GetOrigin())}, "
            f"direction={f(img.GetDirection())}")


def load_labels(path, like: CTVolume) -> np.ndarray:
    """Load a label map and return it on ``like``'s voxel grid, ``(z, y, x)``.

    A label map whose grid coincides physically with the CT's but with axes
    flipped or permuted (common after NIfTI reorientation) is rearranged
    exactly, with no interpolation. Any other geometry is refused.

    Label values must be whole numbers in 0..65535 (uint16): every label convention and every
    ontology id (1..``anatomy.MAX_ID``) lies there, and ``save_mask`` writes that range. A larger value
    (e.g. an int64 2**32 + 5) is refused, never wrapped around to a small id; so are negative and
    non-integral values (a probability map, or labels resampled with linear interpolation). Which
    ids are ontology structures is checked where a convention applies (``anatomy.convert_labels``).

    Returns:
        Integer array (uint8, or uint16 for values above 255) of shape ``like.shape``.

    Raises:
        FileNotFoundError: the path does not exist.
        CTLoadError: not a readable 3D scalar image, values outside 0..65535 or not whole numbers,
            bad geometry (as load_ct), or a grid that is not the CT's.
    """
    if not isinstance(like, CTVolume):
        raise TypeError(f"like= must be the CTVolume the labels belong to (from load_ct), got {type(like).__name__}")
    path = _check_exists(path)
    image = _to_3d_scalar(_read_image(path, "a label map"), f"'{path}'")
    _check_geometry(image, f"label map '{path}'")
    arr = sitk.GetArrayFromImage(image)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise CTLoadError(f"'{path}' holds non-integer values: not a label map. Label maps must hold integer "
                              "structure ids (0 = background). Was it resampled with linear interpolation?")
    lo, hi = (arr.min(), arr.max()) if arr.size else (0, 0)
    if lo < 0:
        raise CTLoadError(f"'{path}' holds negative values ({lo:.0f}): label ids must be >= 0.")
    if hi > _MAX_LABEL:
        n = int(np.count_nonzero(arr > _MAX_LABEL))
        raise CTLoadError(f"'{path}' holds label value {hi:.0f} ({n} voxels above {_MAX_LABEL}): label ids lie in "
                          f"0..{_MAX_LABEL} (ontology ids 1..{MAX_ID}), so this is not a label map of structure ids "
                          "(a CT or another image?) or its values overflowed when it was written. Check that it is "
                          "the right file; relabel it to ids <= 65535 if the values are real ids.")
    # all values are whole numbers in 0..65535 now: the cast is exact (never wraps 2**32 + 5 to 5)
    arr = arr.astype(np.uint8 if hi < 256 else np.uint16, copy=False)
    if like.same_geometry(image):
        out = arr
    else:
        sp = _signed_permutation(like, image)
        if sp is None:
            raise CTLoadError(
                f"label map '{path}' does not lie on the CT's voxel grid.\n  labels: {_describe_geometry(image)}\n"
                f"  CT:     {_describe_geometry(like.image)}\nResample it onto the CT with nearest-neighbour "
                "interpolation first (sitk.Resample(labels, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor)), "
                "or check that it belongs to this CT.")
        perm, flips = sp
        out = np.transpose(arr, perm)
        if flips:
            out = np.flip(out, flips)
    return np.ascontiguousarray(out)
