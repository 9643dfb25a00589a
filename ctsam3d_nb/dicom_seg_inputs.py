"""Checks of ``save_dicom_seg``'s inputs: the label map or Predictor, names, the output path and
the CT's source DICOM images (read header-only and matched to the CT's grid; never modified on disk).
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._atomic import export_target
from .anatomy import MAX_LABEL_VALUE, by_id, by_name
from .dicom_slices import _ABS_TOL_MM, _REL_TOL, _UNIT_TOL
from .predictor import Predictor
from .volume import CTVolume

INSTALL_HINT = 'pip install "ctsam3d_nb[dicom]"'


# ------------------------------------------------------------------ inputs
def _import_highdicom():
    try:
        import highdicom as hd
        import pydicom
    except ImportError as e:
        raise ImportError(f"save_dicom_seg needs highdicom (with pydicom), an optional dependency that could not be "
                          f"imported ({e}). Install it with: {INSTALL_HINT}") from None
    return hd, pydicom


def _check_name(label_id: int, name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"the name of label {label_id} must be a string, got {type(name).__name__} {name!r}")
    text = name.strip()
    if not text or len(text) > 64 or "\\" in text or any(ord(c) < 32 for c in text):
        raise ValueError(f"the name of label {label_id}, {name!r}, cannot be a DICOM segment label: it must be 1..64 "
                         "characters without backslashes or control characters. Pass a shorter name in names=.")
    return text


def _label_input(obj, ct, names):
    """(label map (z, y, x) of ints, ct, {label id: name given by the caller or the objects})."""
    given: dict[int, str] = {}
    if isinstance(obj, Predictor):
        if obj.ct is None:
            raise ValueError("the Predictor has no CT: call pred.set_volume(ct) and segment something first")
        if ct is None:
            ct = obj.ct
        elif not isinstance(ct, CTVolume) or not ct.same_geometry(obj.ct):
            raise ValueError("ct= is not the CT the Predictor segments (another grid): pass pred.ct, or the CTVolume "
                             "given to pred.set_volume")
        if ct.dicom_files is None and obj.ct.dicom_files is not None:
            ct = obj.ct
        given = {o.label_id: o.name for o in obj.objects}
        labels = obj.label_map
    else:
        if isinstance(obj, (str, Path)):
            raise TypeError(f"save_dicom_seg takes a label map array or a Predictor, not a path ({str(obj)!r}). Load "
                            "the file first: labels = load_labels(path, like=ct)")
        labels = np.asarray(obj)
    if not isinstance(ct, CTVolume):
        raise TypeError(f"ct must be the CTVolume the labels belong to (from load_ct of its DICOM folder), got "
                        f"{type(ct).__name__}")
    if labels.shape != ct.shape:
        raise ValueError(f"the label map has shape {labels.shape} but the CT has shape {ct.shape} (z, y, x): a "
                         "DICOM-SEG maps each voxel onto a pixel of the CT's source images, so the label map must lie "
                         "on the CT's own grid. Load it with load_labels(path, like=ct), which puts it there, "
                         "or resample it onto ct.image with nearest-neighbour interpolation.")
    if labels.dtype == bool:
        if isinstance(names, str):
            names = {1: names}
        if not isinstance(names, Mapping) or set(names) != {1}:
            raise ValueError("a boolean mask holds one structure but says not which: pass its name, e.g. "
                             "save_dicom_seg(mask, ct, path, names='liver'), or pass a label map of ontology ids")
        labels = labels.astype(np.uint8)
    elif labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.array_equal(labels, np.rint(labels)):
            raise ValueError("the label map holds non-integer values (a probability map?): a label map holds integer "
                             "structure ids (0 = background). Threshold it first, e.g. (prob > 0.5), or round it.")
    elif labels.dtype.kind not in "iu":
        raise TypeError(f"the label map has dtype {labels.dtype}; pass integer label ids (0 = background) or a bool "
                        "mask")
    if labels.size and labels.min() < 0:
        raise ValueError(f"the label map holds negative values ({labels.min()}): "
                         f"label ids must be 0..{MAX_LABEL_VALUE}")
    if labels.size and labels.max() > MAX_LABEL_VALUE:
        raise ValueError(f"the label map holds label id {labels.max()}: label ids must be 0..{MAX_LABEL_VALUE}")
    if isinstance(names, str):
        present = np.unique(labels[labels > 0])
        if present.size != 1:
            raise ValueError(f"names={names!r} is one name but the label map holds {present.size} label ids "
                             f"({present[:10].tolist()}); pass a dict {{label id: name}}")
        names = {int(present[0]): names}
    if names is not None and not isinstance(names, Mapping):
        raise TypeError(f"names must be a dict {{label id: name}} (or one name for a single structure), got "
                        f"{type(names).__name__}")
    for k, v in dict(names or {}).items():
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
            raise TypeError(f"names= keys are label ids (integers), got {k!r}")
        given[int(k)] = v
    return labels, ct, given


def _segment_name(label_id: int, given: dict):
    """(segment label, the ontology Structure of that name or None)."""
    if label_id in given:
        name = _check_name(label_id, given[label_id])
        try:
            return name, by_name(name)
        except KeyError:
            return name, None
    try:
        s = by_id(label_id)
        return s.name, s
    except KeyError:
        return f"label_{label_id}", None


def _check_target(path, ct: CTVolume, overwrite: bool) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"path must be the output file name (str or pathlib.Path), e.g. 'seg.dcm'; got {path!r}")
    target = Path(path).expanduser().resolve()
    if target.is_dir():
        raise IsADirectoryError(f"'{target}' is a folder; pass a file name for the SEG, e.g. '{target / 'seg.dcm'}'")
    folders = {Path(f).parent for f in ct.dicom_files}
    if ct.source:
        folders.add(Path(ct.source))
    for folder in folders:
        if folder == target.parent or folder in target.parents:
            raise ValueError(f"refusing to write '{target}' into the CT's source DICOM folder '{folder}': a file there "
                             "becomes part of what load_ct(folder) reads, and the folder is the user's original data. "
                             "Write the SEG somewhere else, e.g. next to the folder.")
    return export_target(target, None, overwrite)


# ------------------------------------------------------------------ source images
def _read_sources(ct: CTVolume, pydicom):
    """The source datasets (headers only) in z order, checked against the CT's geometry."""
    spacing_xyz = np.asarray(ct.image.GetSpacing())
    nz, ny, nx = ct.shape
    # as the slices were checked on loading: spacing to 0.1 %, and in-plane drift (shear) to 0.1 % of the stack
    tol = max(_ABS_TOL_MM, _REL_TOL * float(spacing_xyz.min()), _REL_TOL * float(ct.spacing[0]) * (nz - 1))
    row_dir, col_dir = ct.direction[:, 0], ct.direction[:, 1]
    by_z: dict[int, object] = {}
    reload = "Load the CT again from its DICOM folder (load_ct(folder)) and export that."
    for f in ct.dicom_files:
        try:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
        except FileNotFoundError:
            raise FileNotFoundError(f"the CT's source DICOM file '{f}' no longer exists: a DICOM-SEG references the "
                                    f"images it segments, so they must be readable. {reload}") from None
        except Exception as e:  # pydicom raises InvalidDicomError and others
            raise ValueError(f"the CT's source DICOM file '{f}' is not readable ({e}). {reload}") from None
        try:
            ipp = np.array([float(v) for v in ds.ImagePositionPatient])
            iop = np.array([float(v) for v in ds.ImageOrientationPatient])
            # cosines written to a few decimals are off unit length; loading accepted that, SimpleITK normalised them
            iop = np.r_[iop[:3] / np.linalg.norm(iop[:3]), iop[3:] / np.linalg.norm(iop[3:])]
            rows, cols = int(ds.Rows), int(ds.Columns)
            pixel_spacing = np.array([float(v) for v in ds.PixelSpacing])  # (row = y, column = x) spacing
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"the CT's source DICOM file '{f}' lacks its geometry ({e}). {reload}") from None
        k = float(ct.physical_to_index(ipp)[0])
        kz = int(round(k))
        expected = ct.index_to_physical((kz, 0, 0))
        if (rows, cols) != (ny, nx) or not 0 <= kz < nz or np.linalg.norm(ipp - expected) > tol or \
                not np.allclose(iop, np.r_[row_dir, col_dir], atol=_UNIT_TOL) or \
                not np.allclose(pixel_spacing, ct.spacing[1:], rtol=1e-4, atol=1e-6):
            raise ValueError(f"the CT's source DICOM file '{f}' (position {ipp.tolist()}, {rows}x{cols} pixels) is not "
                             f"a slice of this CT's grid: the files changed since the CT was loaded. {reload}")
        if kz in by_z:
            raise ValueError(f"the CT's source DICOM files '{by_z[kz].filename}' and '{f}' lie at the same slice "
                             f"position: the files changed since the CT was loaded. {reload}")
        ds.filename = str(f)
        by_z[kz] = ds
    return [by_z[k] for k in range(nz)]


def _fill_identity(sources, ct: CTVolume) -> list[str]:
    """Give blank UIDs of the (in-memory) source headers a value; the files are never touched.

    Returns the names of the UIDs that had to be derived (for a warning)."""
    from pydicom.uid import generate_uid

    def blank(ds, kw):
        return not str(getattr(ds, kw, "") or "").strip()

    for ds in sources:
        meta = getattr(ds, "file_meta", None)
        for kw, meta_kw in (("SOPInstanceUID", "MediaStorageSOPInstanceUID"),
                            ("SOPClassUID", "MediaStorageSOPClassUID")):
            if blank(ds, kw):
                value = str(getattr(meta, meta_kw, "") or "").strip() if meta is not None else ""
                if not value:
                    raise ValueError(f"the CT's source DICOM file '{ds.filename}' has no {kw}, neither in its data set "
                                     "nor in its file meta information: a DICOM-SEG cannot reference it. Re-export the "
                                     "series from the scanner or PACS with its UIDs.")
                setattr(ds, kw, value)
    sop_uids = [str(ds.SOPInstanceUID) for ds in sources]
    if len(set(sop_uids)) != len(sop_uids):
        raise ValueError("two of the CT's source DICOM files have the same SOPInstanceUID (a copied file?): a SEG "
                         "frame must reference one image. Remove the duplicates and load the series again.")
    derived = []
    for kw in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        values = {str(getattr(ds, kw, "") or "").strip() for ds in sources}
        if len(values) > 1:
            raise ValueError(f"the CT's source DICOM files disagree on their {kw} ({sorted(values)[:3]}): they are not "
                             "one series. Load the series again from a folder that holds only it.")
        if values == {""}:
            value = generate_uid(entropy_srcs=[kw, *sorted(sop_uids)])  # the same for every export of this series
            for ds in sources:
                setattr(ds, kw, value)
            derived.append(kw)
    if ct.series_uid is not None and str(sources[0].SeriesInstanceUID) != ct.series_uid:
        raise ValueError(f"the CT's source DICOM files now hold SeriesInstanceUID {sources[0].SeriesInstanceUID}, not "
                         f"{ct.series_uid} as when the CT was loaded. Load the CT again from its folder.")
    return derived
