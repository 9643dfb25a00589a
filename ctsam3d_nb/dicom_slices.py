"""Checks of a DICOM series' slice positions before it is stacked into one volume.

SimpleITK's ``ImageSeriesReader`` stacks the slices with one averaged spacing between them, and
says so only on C++ stderr ("Non uniform sampling or missing slices detected"). A series with a
missing slice, a duplicated slice, varying slice spacing or sheared slices (gantry tilt) then
loads silently with wrong geometry: distances, volumes and click positions are off.

``check_slice_positions`` reads each file's header (ImagePositionPatient ``0020|0032`` and
ImageOrientationPatient ``0020|0037``), projects the positions on the slice normal and refuses
such series with a :class:`~ctsam3d_nb.errors.CTLoadError` that names the slice positions, the
files and the fix. Nothing is resampled: the decision is an error, never a guess.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import CTLoadError

__all__ = ["check_slice_positions"]

_IPP, _IOP = "0020|0032", "0020|0037"
_ABS_TOL_MM = 0.01  # positions are written in mm with a few decimals; 10 µm is far below any voxel
_REL_TOL = 1e-3  # ... or 0.1 % of the slice spacing, whichever is larger
_IOP_TOL = 1e-4  # direction cosines of two slices that agree to this are the same orientation
_UNIT_TOL = 1e-3  # a slice's row and column directions may be this far from unit length and orthogonality


def _dcm2niix(what: str, first: bool = False) -> str:
    """The fix for a series SimpleITK cannot stack: dcm2niix resamples it (``what`` says how)."""
    return (("C" if first else "c") + "onvert the series with dcm2niix (github.com/rordenlab/dcm2niix), which "
            f"resamples it{what}, and load that NIfTI file")


def _numbers(reader, key, n, name, path) -> np.ndarray:
    if not reader.HasMetaDataKey(key):
        raise CTLoadError(f"DICOM file '{path}' has no {name} ({key.replace('|', ',')}): the positions of the "
                          "slices cannot be checked, so their spacing is unknown. Re-export the series from the "
                          "scanner/PACS with its full headers.")
    raw = reader.GetMetaData(key).strip()
    try:
        values = np.array([float(v) for v in raw.split("\\")], dtype=np.float64)
    except ValueError:
        values = np.array([])
    if values.size != n or not np.all(np.isfinite(values)):
        raise CTLoadError(f"DICOM file '{path}' has an unreadable {name} ({key.replace('|', ',')}) = {raw!r} "
                          f"(expected {n} finite numbers): its header is damaged. Re-export the series.")
    return values


def _read_headers(files) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n, 3), orientations (n, 6)) of ``files`` in LPS mm, from the headers only."""
    positions, orientations = [], []
    for f in files:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(f))
        try:
            reader.ReadImageInformation()
        except RuntimeError as e:
            last = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
            raise CTLoadError(f"DICOM file '{f}' is not readable ({last}). It may be corrupt or cut off: "
                              "copy the series again.") from None
        positions.append(_numbers(reader, _IPP, 3, "ImagePositionPatient", f))
        orientations.append(_numbers(reader, _IOP, 6, "ImageOrientationPatient", f))
    return np.asarray(positions), np.asarray(orientations)


def _mm(v) -> str:
    return f"{v:.4g}"


def _vec(v) -> str:
    return "(" + ", ".join(f"{x:.6g}" for x in v) + ")"


def check_slice_positions(folder, files) -> None:
    """Refuse a DICOM series whose slices do not form one regular, orthogonal stack.

    Args:
        folder: the series' folder (for messages).
        files: the series' file names, as ``ImageSeriesReader`` would read them.

    Raises:
        CTLoadError: with the slice positions (mm along the slice normal), the files and the fix, when

            * a file lacks (or has an unreadable) ImagePositionPatient/ImageOrientationPatient;
            * the row and column directions of ImageOrientationPatient are not orthogonal unit vectors;
            * the slices have different orientations;
            * two slices lie at the same position (a duplicated file, or two acquisitions in one series);
            * slices are missing (a gap that is a whole multiple of the slice spacing);
            * the slice spacing varies;
            * the slices are shifted in-plane along the stack (sheared, e.g. gantry tilt), which no
              orthogonal grid can represent.
    """
    files = [str(f) for f in files]
    names = [Path(f).name for f in files]
    pos, iop = _read_headers(files)
    row, col = iop[0, :3], iop[0, 3:]
    if (abs(np.linalg.norm(row) - 1) > _UNIT_TOL or abs(np.linalg.norm(col) - 1) > _UNIT_TOL
            or abs(float(row @ col)) > _UNIT_TOL):
        raise CTLoadError(
            f"DICOM file '{files[0]}' has ImageOrientationPatient {_vec(iop[0])}: its row and column directions "
            "are not orthogonal unit vectors (a sheared or damaged header), which no CT grid can represent. "
            "Re-export the series from the scanner or PACS.")
    differ = np.flatnonzero(np.abs(iop - iop[0]).max(1) > _IOP_TOL)
    if differ.size:
        i = int(differ[0])
        raise CTLoadError(
            f"the DICOM series in '{folder}' mixes slice orientations: '{names[0]}' has ImageOrientationPatient "
            f"{_vec(iop[0])} but '{names[i]}' has {_vec(iop[i])} ({differ.size} of {len(files)} files differ). "
            "It holds more than one stack (e.g. axial and reformatted slices) under one series UID: move each "
            "orientation into its own folder and load one of them.")
    normal = np.cross(row / np.linalg.norm(row), col / np.linalg.norm(col))
    along = pos @ normal
    order = np.argsort(along, kind="stable")
    along, pos = along[order], pos[order]
    names = [names[i] for i in order]
    gaps = np.diff(along)
    real = gaps[gaps > _ABS_TOL_MM]
    spacing = float(np.median(real)) if real.size else 0.0
    tol = max(_ABS_TOL_MM, _REL_TOL * spacing)

    dup = np.flatnonzero(gaps <= tol)
    if dup.size:
        shown = "; ".join(f"'{names[i]}' and '{names[i + 1]}' at {_mm(along[i])} mm" for i in dup[:3])
        more = f" (and {dup.size - 3} more)" if dup.size > 3 else ""
        raise CTLoadError(
            f"the DICOM series in '{folder}' has {dup.size} duplicate slice position(s) along the slice normal: "
            f"{shown}{more}. Loading it would stack the same position twice with one averaged spacing. The folder "
            "holds a copied slice or two acquisitions with one series UID: remove the duplicate files (or move "
            "the second acquisition into its own folder) and load again.")

    off = np.abs(gaps - spacing) > tol
    if off.any():
        ratio = gaps / spacing
        missing = off & (np.abs(ratio - np.rint(ratio)) * spacing <= tol) & (np.rint(ratio) >= 2)
        bad = np.flatnonzero(off)
        if missing[off].all():
            n = int(np.sum(np.rint(ratio[bad]) - 1))
            shown = "; ".join(f"{_mm(gaps[i])} mm between {_mm(along[i])} and {_mm(along[i + 1])} mm "
                              f"('{names[i]}' and '{names[i + 1]}')" for i in bad[:3])
            raise CTLoadError(
                f"the DICOM series in '{folder}' is missing {n} slice(s): its slices are {_mm(spacing)} mm apart, "
                f"but there is a gap of {shown}{' and more' if bad.size > 3 else ''} along the slice normal. "
                "Loading it would spread the slices over one averaged spacing and distort the CT. Copy the "
                "complete series into the folder; if the gap is real (a scan in parts), "
                + _dcm2niix(" onto equal spacing (the file ending in _Eq)") + ".")
        shown = ", ".join(_mm(g) for g in np.unique(np.round(gaps, 3))[:8])
        i = int(bad[0])
        raise CTLoadError(
            f"the DICOM series in '{folder}' has varying slice spacing: gaps of {shown} mm between slice "
            f"positions (e.g. {_mm(gaps[i])} mm between {_mm(along[i])} and {_mm(along[i + 1])} mm, files "
            f"'{names[i]}' and '{names[i + 1]}'). One spacing cannot describe it, so the CT would be distorted. "
            + _dcm2niix(" onto equal spacing (the file ending in _Eq)", first=True) + ".")

    d = pos - pos[0]
    inplane = d - np.outer(d @ normal, normal)
    shift = np.linalg.norm(inplane, axis=1)
    extent = along[-1] - along[0]
    if shift.max() > max(_ABS_TOL_MM, _REL_TOL * extent):
        angle = float(np.degrees(np.arctan2(shift[-1], extent)))
        raise CTLoadError(
            f"the DICOM slices in '{folder}' are sheared: along the stack each slice is shifted in-plane (by "
            f"{_mm(shift[-1])} mm from the first slice to the last over {_mm(extent)} mm, a gantry tilt of about "
            f"{angle:.2g} degrees). A CT grid has orthogonal axes, so the volume would be stacked straight and "
            "clicks would land in the wrong place. "
            + _dcm2niix(" to correct the tilt (the file ending in _Tilt_1)", first=True) + ".")
