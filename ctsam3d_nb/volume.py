"""`CTVolume`: a CT scan with its exact geometry.

Conventions used everywhere in ctsam3d_nb:

* Arrays are in numpy order ``(z, y, x)`` (slice, row, column), as
  ``SimpleITK.GetArrayFromImage`` returns them.
* Voxel indices given to or returned by the public API are ``(z, y, x)``.
* Physical points are millimetres in SimpleITK's patient frame (LPS:
  +x towards the patient's Left, +y Posterior, +z Superior), ordered ``(x, y, z)``
  like SimpleITK. Any name holding physical coordinates says ``mm`` or ``physical``.
* ``spacing`` is given per array axis ``(z, y, x)`` in mm, so that
  ``array.shape[i]`` and ``spacing[i]`` belong together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

__all__ = ["CTVolume"]


class _ImageView(np.ndarray):
    """A numpy view of a SimpleITK image's buffer that keeps the image alive.

    ``sitk.GetArrayViewFromImage`` alone dangles once the image is freed (e.g.
    ``load_ct(p).array`` after the CTVolume is gone); holding the image here,
    and being the ``base`` of every slice, prevents that.
    """

    _owner = None

    def __array_wrap__(self, arr, context=None, return_scalar=False):
        # results of arithmetic are new arrays: hand them back as plain ndarrays
        out = np.asarray(arr).view(np.ndarray)
        return out[()] if return_scalar else out


def _as_direction(direction) -> np.ndarray:
    d = np.asarray(direction, dtype=np.float64)
    if d.size != 9:
        raise ValueError(f"direction must be a 3x3 matrix (9 numbers), got {d.size} numbers")
    d = d.reshape(3, 3)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"direction must be finite, got {[float(v) for v in d.ravel()]}")
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-4):
        raise ValueError("direction must be orthonormal (columns are the unit axes of i, j, k); sheared "
                         "(non-orthogonal) axes cannot be represented by a CT grid. Resample the volume onto an "
                         "orthogonal grid first, or pass the direction without its voxel sizes (those go in spacing=).")
    return d


@dataclass(frozen=True, eq=False)
class CTVolume:
    """A CT volume: Hounsfield units on a voxel grid with exact geometry.

    The SimpleITK image is the single source of truth; ``array`` is a
    read-only view of its voxels, so holding a CTVolume does not double memory
    and the loaded CT can never be modified by accident.

    Attributes:
        image: the SimpleITK image (3D, scalar).
        source: the path it was loaded from, or None for in-memory volumes.
        dicom_files: for a CT read from a DICOM folder, its files (resolved paths) in the
            order of the array's z axis: ``array[k]`` is the image of ``dicom_files[k]``.
            None for every other input. ``save_dicom_seg`` uses them to reference the source images.
        series_uid: the SeriesInstanceUID of that DICOM series, or None (not DICOM, or the
            files carry none, e.g. blanked by anonymisation).

    Example:
        >>> ct = CTVolume.from_array(np.full((4, 5, 6), -1000, np.int16), spacing=(3.0, 1.5, 1.5))
        >>> ct.shape, ct.spacing
        ((4, 5, 6), (3.0, 1.5, 1.5))
    """

    image: sitk.Image
    source: str | None = None
    dicom_files: tuple[str, ...] | None = None
    series_uid: str | None = None

    def __post_init__(self):
        if self.image.GetDimension() != 3:
            raise ValueError(f"CTVolume needs a 3D image, got {self.image.GetDimension()}D")
        if self.image.GetNumberOfComponentsPerPixel() != 1:
            raise ValueError("CTVolume needs a scalar image, got a vector/multi-component image")
        if self.dicom_files is not None:
            if isinstance(self.dicom_files, (str, bytes)):
                raise TypeError("dicom_files must be a sequence of file paths (one per z slice), not one string")
            files = tuple(str(f) for f in self.dicom_files)
            if len(files) != self.shape[0]:
                raise ValueError(f"dicom_files lists {len(files)} files but the CT has {self.shape[0]} z slices: "
                                 "give one DICOM file per slice, in the order of the array's z axis")
            object.__setattr__(self, "dicom_files", files)  # frozen: normalise once, here
        if self.series_uid is not None:
            object.__setattr__(self, "series_uid", str(self.series_uid).strip() or None)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_array(
        cls,
        array: np.ndarray,
        *,
        spacing=None,
        origin=(0.0, 0.0, 0.0),
        direction=None,
        source: str | None = None,
    ) -> "CTVolume":
        """Build a volume from a ``(z, y, x)`` HU array (the array is copied).

        Args:
            array: 3D array ``(z, y, x)`` of Hounsfield units (int16 or float32 recommended).
            spacing: required: voxel size in mm per array axis ``(z, y, x)``. There is no
                default: a guessed 1 mm would silently resample the CT to the wrong size.
            origin: physical position in mm (LPS, ``(x, y, z)``) of voxel ``(0, 0, 0)``.
            direction: 3x3 direction cosines as SimpleITK (column ``c`` is the
                physical direction of index axis ``c`` in (i, j, k) = (x, y, z) order);
                identity if None.

        Raises:
            TypeError: no ``spacing``, or a boolean, complex or non-numeric array.
            ValueError: not 3D, spacing not three positive numbers, direction not orthonormal.

        For arrays in nibabel/MONAI order with a RAS affine use ``ctsam3d_nb.load_ct(array, affine=...)``.
        """
        if spacing is None:
            raise TypeError(
                "CTVolume.from_array needs spacing=: the voxel size in mm per array axis (z, y, x), "
                "e.g. spacing=(2.5, 0.8, 0.8). There is no default, because a guessed 1 mm would silently "
                "resample the CT to the wrong size. Take it from the scan's header (NIfTI pixdim, DICOM "
                "PixelSpacing and slice positions), or load the file itself with load_ct(path).")
        array = np.asarray(array)
        if array.ndim != 3:
            raise ValueError(f"CT array must be 3D (z, y, x), got shape {array.shape}")
        if array.dtype == np.float64 or array.dtype == np.float16:  # SimpleITK has no float16
            array = array.astype(np.float32)
        elif array.dtype.kind in "iuf" and not array.dtype.isnative:  # e.g. big-endian data of a NIfTI's dataobj
            array = array.astype(array.dtype.newbyteorder("="))
        if array.dtype == bool:
            raise TypeError("CT array is boolean; pass Hounsfield units (int16/float32)")
        if array.dtype.kind == "c":
            raise TypeError(f"CT array is complex ({array.dtype}); a CT holds one real value (HU) per voxel. "
                            "If this is k-space or FFT output, reconstruct the image first (e.g. np.abs of the "
                            "inverse FFT) and pass that.")
        if array.dtype.kind not in "iuf":
            raise TypeError(f"CT array has dtype {array.dtype}; pass Hounsfield units as numbers (int16/float32)")
        spacing = tuple(float(s) for s in np.ravel(spacing))
        if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
            raise ValueError(f"spacing must be three positive mm values (z, y, x), got {spacing}")
        origin = tuple(float(o) for o in np.ravel(origin))
        if len(origin) != 3 or not all(np.isfinite(o) for o in origin):
            raise ValueError(f"origin must be three finite mm values (x, y, z) in LPS, got {origin}")
        image = sitk.GetImageFromArray(np.ascontiguousarray(array))
        image.SetSpacing(spacing[::-1])
        image.SetOrigin(origin)
        if direction is not None:
            image.SetDirection(tuple(_as_direction(direction).ravel()))
        return cls(image, source)

    # ------------------------------------------------------------------ geometry
    @property
    def array(self) -> np.ndarray:
        """Read-only ``(z, y, x)`` view of the voxels in HU (no copy)."""
        a = sitk.GetArrayViewFromImage(self.image).view(_ImageView)
        a._owner = self.image
        a.flags.writeable = False
        return a

    @property
    def shape(self) -> tuple[int, int, int]:
        """Array shape ``(z, y, x)``."""
        return tuple(self.image.GetSize()[::-1])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm per array axis ``(z, y, x)``."""
        return tuple(self.image.GetSpacing()[::-1])

    @property
    def origin(self) -> tuple[float, float, float]:
        """Physical position (mm, LPS, ``(x, y, z)``) of voxel ``(0, 0, 0)``."""
        return tuple(self.image.GetOrigin())

    @property
    def direction(self) -> np.ndarray:
        """3x3 direction cosines as SimpleITK (columns: index axes i, j, k = x, y, z)."""
        return np.asarray(self.image.GetDirection(), dtype=np.float64).reshape(3, 3)

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres."""
        return float(np.prod(self.spacing)) / 1000.0

    def index_to_physical(self, index_zyx) -> np.ndarray:
        """Voxel index ``(z, y, x)`` (may be fractional, shape ``(..., 3)``) → LPS mm ``(x, y, z)``."""
        idx = np.asarray(index_zyx, dtype=np.float64)[..., ::-1]
        spacing_xyz = np.asarray(self.image.GetSpacing())
        return np.asarray(self.origin) + (idx * spacing_xyz) @ self.direction.T

    def physical_to_index(self, point_mm) -> np.ndarray:
        """LPS mm ``(x, y, z)`` (shape ``(..., 3)``) → fractional voxel index ``(z, y, x)``."""
        p = np.asarray(point_mm, dtype=np.float64) - np.asarray(self.origin)
        spacing_xyz = np.asarray(self.image.GetSpacing())
        ijk = (p @ self.direction) / spacing_xyz
        return ijk[..., ::-1]

    def same_geometry(self, other: "CTVolume | sitk.Image", tol: float = 1e-4) -> bool:
        """True if ``other`` has the same size, spacing, origin and direction."""
        img = other.image if isinstance(other, CTVolume) else other
        return (
            img.GetSize() == self.image.GetSize()
            and np.allclose(img.GetSpacing(), self.image.GetSpacing(), atol=tol)
            and np.allclose(img.GetOrigin(), self.image.GetOrigin(), atol=tol * 10)
            and np.allclose(img.GetDirection(), self.image.GetDirection(), atol=tol)
        )

    def __repr__(self) -> str:
        sp = ", ".join(f"{s:.3g}" for s in self.spacing)
        src = f", source={self.source!r}" if self.source else ""
        return f"CTVolume(shape(z,y,x)={self.shape}, spacing(z,y,x)=({sp}) mm{src})"
