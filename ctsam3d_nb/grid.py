"""The model grid: 1.5 mm isotropic voxels in one fixed orientation.

CT-SAM3D sees every scan the same way: resampled to ``MODEL_SPACING`` mm
isotropic voxels with identity direction (LPS: array ``(z, y, x)`` axes run
towards Superior, Posterior and patient-Left), intensities clipped to
``HU_WINDOW`` and scaled to [0, 1]. A :class:`ModelGrid` is that grid laid over
one CT's field of view; it converts coordinates both ways and carries masks
back to the CT's own voxel grid with nearest-neighbour sampling.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .volume import CTVolume

__all__ = ["MODEL_SPACING", "LEVEL_FACTORS", "HU_WINDOW", "PAD_HU", "ModelGrid", "normalize_hu", "downsample"]

MODEL_SPACING = 1.5  # mm, isotropic
HU_WINDOW = (-125.0, 225.0)  # clipped to this range, then scaled to [0, 1]
PAD_HU = -1024.0  # value outside the scan (air)
# zoom levels: the same 64³ patch on grids of MODEL_SPACING x factor (1.5, 3 and 6 mm: 96, 192 and 384 mm fields)
LEVEL_FACTORS = (1, 2, 4)


def normalize_hu(hu, window=HU_WINDOW, out=None) -> np.ndarray:
    """Clip HU to ``window`` and scale to [0, 1] as float32."""
    lo, hi = window
    a = np.asarray(hu, dtype=np.float32)
    if out is None:
        out = np.empty(a.shape, np.float32)
    np.clip(a, lo, hi, out=out)
    out -= lo
    out *= 1.0 / (hi - lo)
    return out


def downsample(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` on a grid ``factor`` times coarser with the same origin (voxel ``i`` of the result is
    centred on voxel ``factor * i``): Gaussian anti-aliasing, then every ``factor``-th voxel.

    The predictor's zoom levels and the training data of coarse levels both use it, so the model sees
    coarse patches the same way in both.
    """
    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return np.asarray(image, np.float32)
    # a separable Gaussian, one axis after the other, keeping every ``factor``-th voxel of an axis as soon as it
    # is filtered, the contiguous axis first: ndimage.gaussian_filter's values (to float rounding) for 1/3 to 1/4
    # of its time (the later, strided axes are filtered on 1/factor, then 1/factor² of the voxels)
    out = np.asarray(image, np.float32)
    for axis in reversed(range(out.ndim)):
        out = ndimage.gaussian_filter1d(out, sigma=0.42 * factor, axis=axis, mode="nearest", truncate=3.0)
        out = out[(slice(None),) * axis + (slice(None, None, factor),)]
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class ModelGrid:
    """An axis-aligned (identity-direction) isotropic grid in LPS millimetres.

    Attributes:
        origin_mm: physical position ``(x, y, z)`` of grid voxel ``(0, 0, 0)``.
        shape: grid size ``(z, y, x)``.
        spacing: voxel size in mm (isotropic).
    """

    origin_mm: tuple[float, float, float]
    shape: tuple[int, int, int]
    spacing: float = MODEL_SPACING

    @classmethod
    def covering(cls, ct: CTVolume, spacing: float = MODEL_SPACING) -> "ModelGrid":
        """The grid covering all voxel centres of ``ct`` (any orientation): it starts at the lowest corner's
        centre and its last voxel centre lies within half a grid voxel of the highest, so every CT voxel's
        nearest grid voxel is in the grid (with floor, a CT extent of 332.7 grid voxels lost its last row)."""
        size = np.asarray(ct.shape) - 1
        corners = np.array(np.meshgrid(*[[0, s] for s in size], indexing="ij")).reshape(3, -1).T
        pts = ct.index_to_physical(corners)
        lo, hi = pts.min(0), pts.max(0)
        n_xyz = np.floor((hi - lo) / spacing + 0.5).astype(int) + 1
        return cls(tuple(float(v) for v in lo), tuple(int(v) for v in n_xyz[::-1]), float(spacing))

    def coarser(self, factor: int) -> "ModelGrid":
        """The grid with ``factor`` times the spacing and the same origin (see :func:`downsample`)."""
        n = [(s - 1) // int(factor) + 1 for s in self.shape]
        return ModelGrid(self.origin_mm, tuple(n), self.spacing * int(factor))

    # --------------------------------------------------------------- coordinates
    def index_to_physical(self, index_zyx) -> np.ndarray:
        """Grid index ``(z, y, x)`` (``(..., 3)``, may be fractional) → LPS mm ``(x, y, z)``."""
        idx = np.asarray(index_zyx, dtype=np.float64)[..., ::-1]
        return np.asarray(self.origin_mm) + idx * self.spacing

    def physical_to_index(self, point_mm) -> np.ndarray:
        """LPS mm ``(x, y, z)`` → fractional grid index ``(z, y, x)``."""
        p = (np.asarray(point_mm, dtype=np.float64) - np.asarray(self.origin_mm)) / self.spacing
        return p[..., ::-1]

    def from_ct_index(self, ct: CTVolume, index_zyx) -> np.ndarray:
        """CT voxel index ``(z, y, x)`` → fractional grid index ``(z, y, x)``."""
        return self.physical_to_index(ct.index_to_physical(index_zyx))

    def to_ct_index(self, ct: CTVolume, grid_index_zyx) -> np.ndarray:
        """Grid index ``(z, y, x)`` → fractional CT voxel index ``(z, y, x)``."""
        return ct.physical_to_index(self.index_to_physical(grid_index_zyx))

    # --------------------------------------------------------------- resampling
    def reference_image(self, pixel_id=sitk.sitkUInt8) -> sitk.Image:
        """An empty SimpleITK image with this grid's geometry."""
        img = sitk.Image([int(v) for v in self.shape[::-1]], pixel_id)
        img.SetSpacing((self.spacing,) * 3)
        img.SetOrigin(self.origin_mm)
        return img

    def resample_ct(self, ct: CTVolume, normalize: bool = True) -> np.ndarray:
        """The CT on this grid, ``(z, y, x)`` float32: linear interpolation,
        outside filled with air; clipped/scaled to [0, 1] unless ``normalize=False`` (then HU)."""
        # resample the int16 image directly (no float copy of the whole CT: matters at 512x512x800)
        out = sitk.Resample(ct.image, self.reference_image(sitk.sitkFloat32), sitk.Transform(), sitk.sitkLinear,
                            PAD_HU, sitk.sitkFloat32)
        arr = sitk.GetArrayFromImage(out)
        return normalize_hu(arr, out=arr) if normalize else arr

    def labels_to_grid(self, labels: np.ndarray, ct: CTVolume) -> np.ndarray:
        """A label map / mask on ``ct``'s grid → this grid (nearest neighbour; 0 outside)."""
        return self._nearest(labels, ct.image, self.reference_image())

    def mask_to_ct(self, mask: np.ndarray, ct: CTVolume) -> np.ndarray:
        """A mask / label map on this grid → ``ct``'s exact voxel grid (nearest neighbour).

        Returns an array of shape ``ct.shape`` with ``mask``'s dtype (bool stays bool).
        """
        return self._nearest(mask, self.reference_image(), ct.image)

    def ct_box(self, ct: CTVolume, lo, hi):
        """CT index box ``[a, b)`` (z, y, x) covering this grid's box ``[lo, hi)`` (one voxel of margin)."""
        corners = np.array(np.meshgrid(*[[l - 0.5, h - 0.5] for l, h in zip(lo, hi)], indexing="ij")).reshape(3, -1).T
        c = self.to_ct_index(ct, corners)
        a = np.clip(np.floor(c.min(0)) - 1, 0, ct.shape).astype(int)
        b = np.clip(np.ceil(c.max(0)) + 2, 0, ct.shape).astype(int)
        return a, b

    def paste_to_ct(self, arr: np.ndarray, lo, ct: CTVolume, out: np.ndarray) -> np.ndarray:
        """Nearest-neighbour copy of a sub-array of this grid (origin ``lo``) into ``out`` (``ct.shape``)."""
        hi = np.asarray(lo) + arr.shape
        a, b = self.ct_box(ct, lo, hi)
        if np.any(b <= a):
            return out
        src = sitk.GetImageFromArray(np.ascontiguousarray(arr))
        src.SetSpacing((self.spacing,) * 3)
        src.SetOrigin(tuple(self.index_to_physical(lo)))
        ref = sitk.Image([int(v) for v in (b - a)[::-1]], src.GetPixelID())
        ref.SetSpacing(ct.image.GetSpacing())
        ref.SetDirection(ct.image.GetDirection())
        ref.SetOrigin(tuple(ct.index_to_physical(a)))
        res = sitk.GetArrayFromImage(sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        out[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = res
        return out

    def _nearest(self, arr: np.ndarray, src_ref: sitk.Image, dst_ref: sitk.Image) -> np.ndarray:
        arr = np.asarray(arr)
        if arr.shape != tuple(src_ref.GetSize()[::-1]):
            raise ValueError(f"array shape {arr.shape} does not match its grid "
                             f"{tuple(src_ref.GetSize()[::-1])} (z, y, x)")
        is_bool = arr.dtype == bool
        work = arr.astype(np.uint8) if is_bool else arr
        if work.dtype == np.int64:
            work = work.astype(np.int32)
        img = sitk.GetImageFromArray(np.ascontiguousarray(work))
        img.CopyInformation(src_ref)
        out = sitk.GetArrayFromImage(sitk.Resample(img, dst_ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
        return out.astype(bool) if is_bool else out.astype(arr.dtype, copy=False)
