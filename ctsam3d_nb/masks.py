"""Masks and label maps on a CT's grid: as a SimpleITK image (``mask_to_image``) or a file (``save_mask``).

A mask is a bool or integer array ``(z, y, x)`` of the CT's shape; it gets the CT's exact geometry.
Nothing here ever overwrites a file unless asked, nor the CT it belongs to.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ._atomic import atomic_write, export_target
from .anatomy import MAX_ID, MAX_LABEL_VALUE
from .volume import CTVolume

__all__ = ["WRITE_SUFFIXES", "bounding_box", "mask_to_image", "save_mask"]

WRITE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")


def bounding_box(mask: np.ndarray, pad=0) -> tuple[slice, ...]:
    """Slices of the bounding box of a non-empty ``mask``, grown by ``pad`` voxels (one number, or one per axis)
    and clipped to the array."""
    hits = [np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis))) for axis in range(mask.ndim)]
    if hits[0].size == 0:
        raise ValueError("the mask is empty: it has no bounding box")
    pads = [int(p) for p in pad] if np.ndim(pad) else [int(pad)] * mask.ndim
    return tuple(slice(max(int(h[0]) - p, 0), min(int(h[-1]) + 1 + p, n)) for h, p, n in zip(hits, pads, mask.shape))


def _write_suffix(path: Path) -> str:
    name = path.name.lower()
    for s in WRITE_SUFFIXES:
        if name.endswith(s):
            return s
    dicom = (" (DICOM: save_dicom_seg(label_map, ct, path) writes a DICOM Segmentation)"
             if name.endswith((".dcm", ".dicom")) else "")
    raise ValueError(f"cannot tell the format of '{path}' from its suffix; use one of {', '.join(WRITE_SUFFIXES)}"
                     f"{dicom}")


def _mask_array(mask, like: CTVolume, what: str) -> np.ndarray:
    """Validate a mask/label array on ``like``'s grid; uint8 or uint16, (z, y, x)."""
    if not isinstance(like, CTVolume):
        raise TypeError(f"like= must be the CTVolume the mask belongs to (from load_ct), got {type(like).__name__}")
    mask = np.asarray(mask)
    if mask.shape != like.shape:
        raise ValueError(f"mask shape {mask.shape} differs from the CT's {like.shape} (z, y, x); "
                         "map model-grid masks back with grid.mask_to_ct first")
    if mask.dtype == bool:
        return mask.astype(np.uint8)
    if mask.dtype.kind not in "iu":
        raise TypeError(f"mask must be bool or integer labels, got dtype {mask.dtype}; "
                        f"threshold a probability map first (e.g. {what}(prob > 0.5, like=ct ...))")
    if mask.size and (mask.min() < 0 or mask.max() > MAX_LABEL_VALUE):
        raise ValueError(f"label values must lie in 0..{MAX_LABEL_VALUE} (uint16 ids; ontology ids are "
                         f"1..{MAX_ID}), got {mask.min()}..{mask.max()}: they are never wrapped round to a small id. "
                         "Relabel the map to ids in that range.")
    return mask.astype(np.uint8 if (mask.max() if mask.size else 0) < 256 else np.uint16)


def mask_to_image(mask, like: CTVolume) -> sitk.Image:
    """A mask or label map on ``like``'s voxel grid as a SimpleITK image with the CT's exact geometry.

    The other way from ``load_ct(image)``: hand the result to SimpleITK, to ITK-based tools, or
    write it yourself. Nothing is written to disk (``save_mask`` does that, atomically).

    Args:
        mask: bool or integer array of shape ``like.shape`` (z, y, x), e.g. ``pred.label_map``.
        like: the CTVolume the mask belongs to; its size, spacing, origin and direction are copied.

    Returns:
        A new 3D ``sitk.Image`` (UInt8, or UInt16 for label ids above 255); ``mask`` is copied,
        so later changes to either do not reach the other.

    Example:
        >>> img = mask_to_image(pred.label_map, like=ct)   # doctest: +SKIP
        >>> sitk.LabelShapeStatisticsImageFilter().Execute(img)   # doctest: +SKIP
    """
    image = sitk.GetImageFromArray(np.ascontiguousarray(_mask_array(mask, like, "mask_to_image")))
    image.CopyInformation(like.image)
    return image


def save_mask(mask, like: CTVolume, path, overwrite: bool = False) -> Path:
    """Write a mask or label map in ``like``'s exact geometry, atomically.

    Args:
        mask: bool or integer array of shape ``like.shape`` (z, y, x).
        like: the CTVolume the mask belongs to (its geometry is copied).
        path: output file; the suffix picks the format (.nii.gz, .nii, .nrrd, .mha).
        overwrite: replace an existing file. Without it an existing file is never touched.

    Returns:
        The resolved output path.
    """
    image = mask_to_image(mask, like)
    path = Path(path).expanduser()
    suffix = _write_suffix(path)
    target = export_target(path, like.source, overwrite)
    atomic_write(target, lambda tmp: sitk.WriteImage(image, tmp, useCompression=True), suffix=suffix)
    return target
