"""Reading CT image files and DICOM folders into SimpleITK images, with header checks.

Every function here validates its input and raises a ``CTLoadError`` that names the file, what is
wrong and how to fix it. ``load_ct`` and ``load_labels`` (``ctsam3d_nb.io``) read through here.
"""
from __future__ import annotations

import gzip
import warnings
import zlib
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .dicom_slices import check_slice_positions
from .errors import CTLoadError
from .image_checks import _SHEAR_FIX, _check_nifti_sform

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in IMAGE_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _check_exists(path, what: str = "CT") -> Path:
    """``path`` as a Path if it exists; else a clear error naming ``what`` was looked for and near-miss names."""
    if path is None or str(path) == "":
        where = "a CT file (.nii.gz, .nrrd, .mha) or a DICOM folder" if what == "CT" else f"the {what} file"
        raise CTLoadError(f"no path given: pass the path of {where}")
    path = Path(path).expanduser()
    if not path.exists():
        hint = ""
        if path.parent.exists():
            near = sorted(p.name for p in path.parent.iterdir() if p.name[:3] == path.name[:3])[:5]
            if near:
                hint = f" Files with a similar name there: {near}."
        raise FileNotFoundError(f"{what} path not found: '{path}'. Check the spelling and the working directory "
                                f"(now '{Path.cwd()}').{hint}")
    return path


def list_dicom_series(folder) -> dict[str, list[str]]:
    """DICOM series in ``folder``: ``{series_uid: [file names in slice order]}``."""
    folder = str(folder)
    uids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder) or ()
    return {uid: list(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, uid)) for uid in uids}


_SERIES_UID = "0020|000e"


def _read_dicom(folder: Path, series_uid: str | None) -> tuple[sitk.Image, tuple[str, ...] | None, str | None]:
    """(image, its files in z order (resolved paths; None for one multi-frame file), the SeriesInstanceUID or
    None when blank)."""
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
        if _frames(files[0]) > 1:  # one multi-frame (enhanced) CT file holds the whole volume
            return _read_image(Path(files[0]), "a CT", dicom=True), None, None  # DICOM files often have no suffix
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
    uid = _tag(_header(files[0]), _SERIES_UID)
    return image, tuple(str(Path(f).resolve()) for f in files), uid or None


def _frames(file) -> int:
    """Slices in one DICOM file (a multi-frame enhanced CT holds them all), 1 if its header cannot be read."""
    header = _header(file)
    return int(header.GetSize()[2]) if header is not None and header.GetDimension() == 3 else 1


def _header(file) -> sitk.ImageFileReader | None:
    """The file's header, read without its pixels; None if SimpleITK cannot read it (reading it says why)."""
    header = sitk.ImageFileReader()
    header.SetFileName(str(file))
    try:
        header.ReadImageInformation()
    except RuntimeError:
        return None
    return header


def _tag(header: sitk.ImageFileReader | None, key: str) -> str:
    """A DICOM tag's value from a header (``_header``), padding stripped; "" when absent or unreadable."""
    return header.GetMetaData(key).strip("\x00 ") if header is not None and header.HasMetaDataKey(key) else ""


def _refuse_dicom_seg(path: Path, what: str) -> None:
    """A DICOM-SEG stores segments frame by frame, each frame pointing at a CT slice: read as an image it is a
    stack of frames on no CT grid (SimpleITK gives 1 mm spacing and as many 'slices' as frames)."""
    if _tag(_header(path), "0008|0060") != "SEG":  # Modality
        return
    if what != "a label map":
        raise CTLoadError(f"'{path}' is a DICOM-SEG (a segmentation), not {what}. Load the CT it segments, from "
                          "its DICOM folder, and read the SEG onto it with highdicom (see load_labels).")
    raise CTLoadError(
        f"'{path}' is a DICOM-SEG: its frames are segments of the CT's slices, not a voxel grid, so it cannot be "
        "read as a label map image. Read it with highdicom onto the CT loaded from its DICOM folder: "
        "seg = highdicom.seg.segread(path); uids = [pydicom.dcmread(f).SOPInstanceUID for f in ct.dicom_files]; "
        "numbers = seg.get_pixels_by_source_instance(uids, combine_segments=True) (segment numbers, in the CT's z "
        "order; seg.get_segment_description(n).segment_label names segment n).")


def _check_gzip(path: Path) -> None:
    """Detect truncated/corrupt gzip before SimpleITK gives a cryptic error. A file named .gz that is not
    gzip-compressed at all (some tools write plain NIfTI under that name) is left to SimpleITK, which reads it."""
    with open(path, "rb") as f:
        if f.read(2) != b"\x1f\x8b":
            return
    try:
        with gzip.open(path, "rb") as f:
            while f.read(1 << 22):
                pass
    except (OSError, EOFError, zlib.error) as e:
        raise CTLoadError(f"'{path}' is a truncated or corrupt gzip file ({e}). It was probably cut off while "
                          "downloading or copying: copy it again, or check it with `gzip -t`.") from None


def _read_image(path: Path, what: str, dicom: bool = False) -> sitk.Image:
    if path.is_dir():
        raise CTLoadError(f"'{path}' is a folder; {what} must be an image file")
    if not dicom and _suffix(path) not in IMAGE_SUFFIXES:
        raise CTLoadError(f"'{path}' does not have an image suffix ({', '.join(IMAGE_SUFFIXES)}). "
                          "Convert it, or pass a DICOM folder.")
    if path.name.lower().endswith(".gz"):
        _check_gzip(path)
    if dicom or _suffix(path) == ".dcm":
        _refuse_dicom_seg(path, what)
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
