"""DICOM Segmentation (DICOM-SEG) export of label maps, through highdicom (an optional extra).

    ct = load_ct("scan_dicom_folder/")                  # a CT read from a DICOM folder
    save_dicom_seg(pred, ct, "liver_spleen_seg.dcm")      # a Predictor: its objects become segments
    save_dicom_seg(labels, ct, "seg.dcm")                 # a label map (z, y, x) on the CT's grid

The SEG is a BINARY segmentation with one segment per label id present in the map, derived
from the CT's own DICOM images: ``labels[k]`` is written as frames of the source image
``ct.dicom_files[k]`` (matched by its ImagePositionPatient, never by file name or order),
pixel for pixel. Segment labels are the ontology names (``anatomy.by_id``), the objects'
names, or ``names=``; property codes are SNOMED CT (pydicom's code dictionary): the structure
where ctsam3d_nb knows it (``liver`` -> 10200004 Liver, with a Left/Right modifier for paired
structures), otherwise a generic code of its group (Bone, Blood vessel, Skeletal muscle,
Anatomical structure). ``segment_codes=`` overrides them.

highdicom is imported only when a SEG is written: ``pip install "ctsam3d_nb[dicom]"``.
"""
from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from ._version import __version__
from .anatomy import by_id, by_name
from .predictor import Predictor
from .volume import CTVolume

__all__ = ["DicomSegWarning", "property_codes", "save_dicom_seg"]

INSTALL_HINT = 'pip install "ctsam3d_nb[dicom]"'
_MAX_LABEL = 65535
_POS_TOL_MM = 0.01  # as dicom_slices: positions agree to 10 µm (or 0.1 % of a voxel, whichever is larger)
_ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")


class DicomSegWarning(UserWarning):
    """The SEG was written, but something about it needs the user's attention."""


# ------------------------------------------------------------------ property codes
# SNOMED CT (scheme "SCT") codes as (value, meaning), spelled as in pydicom's code dictionary
# (pydicom.sr.codedict.codes.SCT) but written out here: keyword look-ups differ between pydicom
# versions (some are ambiguous in pydicom 2). Names are the ontology's (anatomy.py).
_SCT = {
    "AnatomicalStructure": ("91723000", "Anatomical Structure"), "Tissue": ("85756007", "Tissue"),
    "MorphologicallyAbnormalStructure": ("49755003", "Morphologically Abnormal Structure"),
    "Left": ("7771000", "Left"), "Right": ("24028007", "Right"),
    "Bone": ("272673000", "Bone"), "BloodVessel": ("59820001", "Blood Vessel"),
    "SkeletalMuscle": ("127954009", "Skeletal muscle"), "Vertebra": ("51282000", "Vertebra"),
}
_ANATOMY = "AnatomicalStructure"
# whole names whose code says the side already
_EXACT = {
    "heart_atrium_left": ("82471001", "Left atrium"), "heart_atrium_right": ("73829009", "Right atrium"),
    "heart_ventricle_left": ("87878005", "Left ventricle"), "heart_ventricle_right": ("53085002", "Right ventricle"),
    "lung_middle_lobe_right": ("72481006", "Middle lobe of right lung"),
}
# names without left/right (and a rib's number): the side becomes a modifier
_STEMS = {
    "spleen": ("78961009", "Spleen"), "kidney": ("64033007", "Kidney"), "gallbladder": ("28231008", "Gallbladder"),
    "liver": ("10200004", "Liver"), "stomach": ("69695003", "Stomach"), "pancreas": ("15776009", "Pancreas"),
    "adrenal_gland": ("23451007", "Adrenal gland"), "lung": ("39607008", "Lung"),
    "lung_upper_lobe": ("45653009", "Upper lobe of lung"), "lung_lower_lobe": ("90572001", "Lower lobe of lung"),
    "esophagus": ("32849002", "Esophagus"), "trachea": ("44567001", "Trachea"),
    "thyroid_gland": ("69748006", "Thyroid"), "small_bowel": ("30315005", "Small intestine"),
    "duodenum": ("38848004", "Duodenum"), "colon": ("71854001", "Colon"),
    "urinary_bladder": ("89837001", "Bladder"), "prostate": ("41216001", "Prostate"), "rectum": ("34402009", "Rectum"),
    "heart": ("80891009", "Heart"), "brain": ("12738006", "Brain"), "spinal_cord": ("2748008", "Spinal cord"),
    "face": ("89545001", "Face"), "body": ("38266002", "Entire body"), "body_trunc": ("22943007", "Trunk"),
    "body_extremities": ("66019005", "Extremity"),
    "aorta": ("15825003", "Aorta"), "pulmonary_artery": ("81040000", "Pulmonary artery"),
    "pulmonary_vein": ("122972007", "Pulmonary vein"), "brachiocephalic_trunk": ("12691009", "brachiocephalic trunk"),
    "subclavian_artery": ("36765005", "Subclavian artery"),
    "common_carotid_artery": ("32062004", "Common carotid artery"),
    "brachiocephalic_vein": ("8887007", "Brachiocephalic vein"),
    "superior_vena_cava": ("48345005", "Superior vena cava"),
    "inferior_vena_cava": ("64131007", "Inferior vena cava"), "iliac_artery": ("10293006", "Iliac artery"),
    "iliac_vena": ("244411005", "Iliac vein"),
    "sacrum": ("54735007", "Sacrum"), "humerus": ("85050009", "Humerus"), "scapula": ("79601000", "Scapula"),
    "clavicula": ("51299004", "Clavicle"), "femur": ("71341001", "Femur"), "femoral_head": ("2812003", "Femoral head"),
    "skull": ("89546000", "Skull"), "rib": ("113197003", "Rib"), "sternum": ("56873002", "Sternum"),
    "costal_cartilages": ("50016007", "Costal Cartilage"),
    "kidney_cyst": ("367643001", "Cyst"), "subcutaneous_fat": ("71966008", "Subcutaneous tissue"),
    "torso_fat": ("55603005", "Fat"), "skeletal_muscle": ("127954009", "Skeletal muscle"),
}
_STEM_CATEGORY = {"kidney_cyst": "MorphologicallyAbnormalStructure", "subcutaneous_fat": "Tissue",
                  "torso_fat": "Tissue", "skeletal_muscle": "Tissue"}
_VERTEBRAE = {
    "C1": ("14806007", "C1 vertebra"), "C2": ("39976000", "C2 vertebra"), "C3": ("113205007", "C3 vertebra"),
    "C4": ("5329002", "C4 vertebra"), "C5": ("36978003", "C5 vertebra"), "C6": ("36054005", "C6 vertebra"),
    "C7": ("87391001", "C7 vertebra"), "T1": ("64864005", "T1 vertebra"), "T2": ("53733008", "T2 vertebra"),
    "T3": ("1626008", "T3 vertebra"), "T4": ("73071006", "T4 vertebra"), "T5": ("56401006", "T5 vertebra"),
    "T6": ("45296009", "T6 vertebra"), "T7": ("62487009", "T7 vertebra"), "T8": ("11068009", "T8 vertebra"),
    "T9": ("82687006", "T9 vertebra"), "T10": ("7610001", "T10 vertebra"), "T11": ("12989004", "T11 vertebra"),
    "T12": ("23215003", "T12 vertebra"), "L1": ("66794005", "L1 vertebra"), "L2": ("14293000", "L2 vertebra"),
    "L3": ("36470004", "L3 vertebra"), "L4": ("11994002", "L4 vertebra"), "L5": ("49668003", "L5 vertebra"),
}
_GROUP_TYPE = {"bone": "Bone", "vessel": "BloodVessel", "muscle": "SkeletalMuscle"}
_VERTEBRA = re.compile(r"^vertebrae_([CTLS]\d{1,2})$")
_ALGORITHM_FAMILY = ("123110", "DCM", "Artificial Intelligence")  # CID 7162


def _split_side(name: str) -> tuple[str, str | None]:
    """``"rib_left_3"`` -> ``("rib", "Left")``; ``"liver"`` -> ``("liver", None)``."""
    parts = name.split("_")
    sides = [p for p in parts if p in ("left", "right")]
    if len(sides) != 1:
        return name, None
    stem = "_".join(p for p in parts if p not in ("left", "right") and not p.isdigit())
    return stem, sides[0].capitalize()


def property_codes(name: str):
    """SNOMED CT codes ``(category, type, side)`` (pydicom ``Code``s) of a structure name.

    ``side`` is the Left/Right code for a paired structure whose type code does not say it
    (written as the type's modifier), else None. Structures without a specific code here get
    their group's code (Bone, Blood Vessel, Skeletal muscle, else Anatomical Structure); names
    that are not ontology structures get Anatomical Structure for both.

    Example:
        >>> [c.meaning for c in property_codes("kidney_left")]
        ['Anatomical Structure', 'Kidney', 'Left']
        >>> property_codes("liver")[1].value
        '10200004'
    """
    from pydicom.sr.coding import Code

    def sct(value_meaning):
        return Code(value_meaning[0], "SCT", value_meaning[1])

    category, side = _SCT[_ANATOMY], None
    if name in _EXACT:
        prop = _EXACT[name]
    else:
        stem, side = _split_side(name)
        m = _VERTEBRA.match(stem)
        if m:
            prop = _VERTEBRAE.get(m.group(1), _SCT["Vertebra"])
        elif stem in _STEMS:
            prop = _STEMS[stem]
            category = _SCT[_STEM_CATEGORY.get(stem, _ANATOMY)]
        else:
            try:
                group = by_name(name).group
            except KeyError:
                group, side = None, None
            prop = _SCT[_GROUP_TYPE.get(group, _ANATOMY)]
    return sct(category), sct(prop), (sct(_SCT[side]) if side else None)


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
        raise ValueError(f"the label map holds negative values ({labels.min()}): label ids must be 0..{_MAX_LABEL}")
    if labels.size and labels.max() > _MAX_LABEL:
        raise ValueError(f"the label map holds label id {labels.max()}: label ids must be 0..{_MAX_LABEL}")
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
    if not target.parent.is_dir():
        raise FileNotFoundError(f"output folder '{target.parent}' does not exist; create it first")
    if target.exists() and not overwrite:
        raise FileExistsError(f"'{target}' exists; pass overwrite=True to replace it, or choose another name")
    return target


# ------------------------------------------------------------------ source images
def _read_sources(ct: CTVolume, pydicom):
    """The source datasets (headers only) in z order, checked against the CT's geometry."""
    spacing_xyz = np.asarray(ct.image.GetSpacing())
    tol = max(_POS_TOL_MM, 1e-3 * float(spacing_xyz.min()))
    row_dir, col_dir = ct.direction[:, 0], ct.direction[:, 1]
    nz, ny, nx = ct.shape
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
            rows, cols = int(ds.Rows), int(ds.Columns)
            pixel_spacing = np.array([float(v) for v in ds.PixelSpacing])  # (row = y, column = x) spacing
        except (AttributeError, TypeError, ValueError) as e:
            raise ValueError(f"the CT's source DICOM file '{f}' lacks its geometry ({e}). {reload}") from None
        k = float(ct.physical_to_index(ipp)[0])
        kz = int(round(k))
        expected = ct.index_to_physical((kz, 0, 0))
        if (rows, cols) != (ny, nx) or not 0 <= kz < nz or np.linalg.norm(ipp - expected) > tol or \
                not np.allclose(iop, np.r_[row_dir, col_dir], atol=1e-4) or \
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


# ------------------------------------------------------------------ the export
def save_dicom_seg(label_map_or_objects, ct: CTVolume | None, path, names=None, overwrite: bool = False, *,
                   algorithm_type: str = "SEMIAUTOMATIC", segment_codes=None, series_number: int | None = None,
                   series_description: str = "ctsam3d_nb segmentation", content_label: str = "CTSAM3D",
                   content_creator_name: str | None = None) -> Path:
    """Write a label map as a DICOM Segmentation (BINARY, one segment per label id), atomically.

    Args:
        label_map_or_objects: an integer label map ``(z, y, x)`` on the CT's grid (``ct.shape``;
            e.g. ``load_labels(path, like=ct)`` or ``pred.label_map``), a bool mask (with
            ``names="structure"``), or a ``Predictor``: its ``label_map``, segments named after its objects.
        ct: the CTVolume loaded from the DICOM folder (``load_ct(folder)``): its ``dicom_files``
            are the source images. May be None for a Predictor (its own CT is used).
        path: the output file (conventionally ``.dcm``); never inside the source DICOM folder.
        names: ``{label id: name}`` for the segment labels (default: the objects' names for a
            Predictor, else the ontology name of the id, ``anatomy.by_id``; ``label_<id>`` for ids
            outside it), or one name for a single structure. A name that is an ontology structure
            also picks its SNOMED CT codes.
        overwrite: replace an existing file. Without it an existing file is never touched.
        algorithm_type: ``"SEMIAUTOMATIC"`` (click-prompted, the default), ``"AUTOMATIC"`` or
            ``"MANUAL"``; all but MANUAL name the algorithm ``ctsam3d_nb`` with its version.
        segment_codes: ``{label id: (category, type)}`` pydicom ``Code``s overriding the codes
            chosen from the name (see ``dicom_seg.property_codes``).
        series_number: the SEG series' number (default: the source's + 1000, or 1000).
        series_description, content_label, content_creator_name: written into the SEG.

    Returns:
        The resolved output path.

    Frames reference the source images by SOPInstanceUID: ``labels[k]`` lands on the image whose
    ImagePositionPatient is slice ``k`` of the CT. Empty frames are omitted. Source files whose
    SOPInstanceUID/SOPClassUID are blank in the data set (anonymised) are referenced by their file
    meta UIDs; blank Study/Series/FrameOfReference UIDs get derived ones, with a ``DicomSegWarning``
    (viewers then cannot pair the SEG with the CT by UID). The source files are only read.

    Raises:
        ImportError: highdicom is not installed (``pip install "ctsam3d_nb[dicom]"``).
        ValueError: the CT was not loaded from DICOM; the label map's shape is not the CT's; the
            map is empty, negative, non-integer or > 65535; a bool mask without a name; the path is
            inside the source DICOM folder; the source files changed since loading.
        TypeError: inputs of the wrong type.
        FileExistsError: the file exists and ``overwrite`` is False.
        FileNotFoundError: the output folder or a source DICOM file does not exist.

    Example:
        >>> ct = load_ct("dicom_folder")                                         # doctest: +SKIP
        >>> save_dicom_seg(load_labels("seg.nii.gz", like=ct), ct, "seg.dcm")    # doctest: +SKIP
    """
    labels, ct, given = _label_input(label_map_or_objects, ct, names)
    if ct.dicom_files is None:
        where = f"from '{ct.source}'" if ct.source else "from an array or SimpleITK image in memory"
        raise ValueError(f"the CT was not loaded from a DICOM series (it came {where}), so there are no source images "
                         "for a DICOM-SEG to reference. Load the CT from its DICOM folder with load_ct(folder) and "
                         "segment that; for other CTs save a NIfTI/NRRD mask with save_mask(...) instead.")
    algorithm_type = str(algorithm_type).upper()
    if algorithm_type not in _ALGORITHM_TYPES:
        raise ValueError(f"algorithm_type must be one of {_ALGORITHM_TYPES}, got {algorithm_type!r}")
    ids = [int(v) for v in np.unique(labels) if v > 0]
    if not ids:
        raise ValueError("the label map is empty (no voxel has a label id > 0): there is nothing to export. Segment "
                         "something first (pred.click(...)), or check that this is the right label map.")
    overrides = dict(segment_codes or {})
    target = _check_target(path, ct, overwrite)  # every cheap check before highdicom is even imported
    hd, pydicom = _import_highdicom()
    from pydicom.sr.coding import Code

    sources = _read_sources(ct, pydicom)
    derived = _fill_identity(sources, ct)

    algorithm = None
    if algorithm_type != "MANUAL":
        algorithm = hd.AlgorithmIdentificationSequence(name="ctsam3d_nb", version=__version__,
                                                       family=Code(*_ALGORITHM_FAMILY), source="ctsam3d_nb")
    to_lab = getattr(hd.color.CIELabColor, "from_rgb", None)  # newer highdicom only (0.28 has it, 0.23 not)
    descriptions = []
    for number, label_id in enumerate(ids, start=1):
        name, structure = _segment_name(label_id, given)
        category, prop, side = property_codes(structure.name if structure else "")
        if label_id in overrides:
            try:
                category, prop = overrides[label_id]
            except (TypeError, ValueError):
                raise TypeError(f"segment_codes[{label_id}] must be a pair (category, type) of pydicom Codes") from None
            side = None
        desc = hd.seg.SegmentDescription(
            segment_number=number, segment_label=name, segmented_property_category=category,
            segmented_property_type=prop, algorithm_type=algorithm_type, algorithm_identification=algorithm,
            tracking_id=name, tracking_uid=hd.UID())
        if structure is not None and to_lab is not None:  # the ontology's display colour
            desc.RecommendedDisplayCIELabValue = [int(v) for v in to_lab(*structure.color).value]
        if side is not None:  # paired structure: the side as a modifier of the property type (DICOM PS3.3 C.8.20.2)
            desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                hd.sr.CodedConcept.from_code(side)]
        descriptions.append(desc)

    lut = np.zeros(max(ids) + 1, np.uint16 if len(ids) > 255 else np.uint8)
    lut[ids] = np.arange(1, len(ids) + 1)
    pixels = lut[labels.astype(np.uint16, copy=False)]  # exact: every value was checked to be a whole 0..65535
    if series_number is None:
        try:
            series_number = int(sources[0].SeriesNumber) + 1000
        except (AttributeError, TypeError, ValueError):
            series_number = 1000

    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=int(series_number),
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="ctsam3d_nb developers",
        manufacturer_model_name="ctsam3d_nb", software_versions=__version__, device_serial_number="none",
        series_description=series_description, content_label=content_label,
        content_description="Segmentation made with ctsam3d_nb (click-promptable CT-SAM3D)",
        content_creator_name=content_creator_name)
    atomic_write(target, lambda tmp: seg.save_as(tmp), suffix=".dcm")
    if derived:
        warnings.warn(
            f"the CT's source DICOM files carry no {', '.join(derived)} (blanked, e.g. by anonymisation); '{target}' "
            "references derived UIDs instead, so a viewer or PACS cannot pair the SEG with the CT by UID (its frames "
            "still reference each source image by its SOPInstanceUID). Give the series its UIDs before exporting if "
            "the SEG must travel with it.", DicomSegWarning, stacklevel=2)
    return target
