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

The codes are in ``dicom_codes`` and the checks of the inputs and source images in ``dicom_seg_inputs``;
``property_codes`` and ``INSTALL_HINT`` stay importable from here.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from ._version import __version__
from .dicom_codes import property_codes
from .dicom_seg_inputs import (INSTALL_HINT, _check_target, _fill_identity, _import_highdicom,  # noqa: F401
                               _label_input, _read_sources, _segment_name)
from .volume import CTVolume

__all__ = ["DicomSegWarning", "property_codes", "save_dicom_seg"]

_ALGORITHM_TYPES = ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL")
_ALGORITHM_FAMILY = ("123110", "DCM", "Artificial Intelligence")  # CID 7162


class DicomSegWarning(UserWarning):
    """The SEG was written, but something about it needs the user's attention."""


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
    if ct.dicom_files is None and ct.source and (Path(ct.source).is_dir() or ct.source.lower().endswith(".dcm")):
        raise ValueError(f"the CT came from '{ct.source}', one multi-frame (enhanced) DICOM file: a DICOM-SEG here "
                         "references a series of one file per slice, which this CT does not have. Save a NIfTI/NRRD "
                         "mask with save_mask(...) instead.")
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
