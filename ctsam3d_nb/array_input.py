"""In-memory CT input: a numpy array with explicit geometry (spacing or a nibabel/MONAI RAS affine).

``load_ct`` calls ``image_from_array``; ``ras_affine_to_lps`` is public for users who hold an affine.
Conventions: ``ctsam3d_nb.volume``. Arrays given with ``spacing=`` are ``(z, y, x)``; arrays given with
``affine=`` are in nibabel/MONAI order ``(i, j, k)`` (array axis ``a`` is the affine's column ``a``).
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .errors import CTLoadError
from .volume import CTVolume

__all__ = ["image_from_array", "ras_affine_to_lps"]


_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def ras_affine_to_lps(affine) -> tuple[tuple, tuple, np.ndarray]:
    """Split a nibabel/MONAI 4x4 RAS voxel-to-world affine into SimpleITK geometry.

    The affine maps a voxel index ``(i, j, k, 1)`` of the array as nibabel/MONAI hold it
    (array axis ``a`` is column ``a``) to RAS millimetres: +x towards the patient's Right,
    +y Anterior, +z Superior. SimpleITK and ctsam3d_nb use LPS (+x Left, +y Posterior,
    +z Superior), so x and y change sign: ``LPS = diag(-1, -1, 1) @ RAS``.

    Returns:
        ``(spacing_ijk, origin_lps_xyz, direction)``: spacing per index axis (i, j, k), the
        LPS position of voxel (0, 0, 0), and the 3x3 LPS direction cosines (column ``c`` is
        index axis ``c``), as SimpleITK's ``SetSpacing``/``SetOrigin``/``SetDirection`` take them.

    Raises:
        ValueError: not a 4x4 affine, non-finite, last row not (0, 0, 0, 1), a zero-length
            axis, or sheared/non-orthogonal axes (which SimpleITK cannot represent).
    """
    a = np.asarray(affine, dtype=np.float64)
    if a.shape != (4, 4):
        raise ValueError(f"affine must be a 4x4 matrix (nibabel's img.affine, MONAI's meta['affine']), "
                         f"got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("affine holds NaN or inf values")
    if not np.allclose(a[3], (0, 0, 0, 1), atol=1e-6):
        raise ValueError(f"affine's last row must be (0, 0, 0, 1), got {tuple(a[3])}: not a voxel-to-world affine")
    m = _RAS_TO_LPS @ a[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 1e-9):
        raise ValueError(f"affine has a zero-length axis (column norms {tuple(np.round(spacing, 6))}): "
                         "every voxel axis needs a positive size in mm")
    direction = m / spacing
    if not np.allclose(direction.T @ direction, np.eye(3), atol=1e-4):
        raise ValueError("affine has sheared (non-orthogonal) voxel axes, which a CT grid cannot represent. "
                         "Resample the volume onto an orthogonal grid first "
                         "(e.g. nibabel.processing.resample_to_output).")
    origin = _RAS_TO_LPS @ a[:3, 3]
    return tuple(float(s) for s in spacing), tuple(float(o) for o in origin), direction


def image_from_array(array: np.ndarray, spacing, origin, direction, affine) -> sitk.Image:
    """A new SimpleITK image from a HU array and its geometry (``load_ct``'s arguments; see there).

    Either ``spacing`` (with optional ``origin``/``direction``) for a ``(z, y, x)`` array, or ``affine``
    (4x4, RAS) for an ``(i, j, k)`` array. The array is always copied.
    """
    if array.dtype == bool:
        raise TypeError("the CT array is boolean: a mask, not a CT. Pass Hounsfield units (int16 or float32); "
                        "for masks use save_mask / mask_to_image.")
    if array.dtype.kind == "c":
        raise TypeError(f"the CT array is complex ({array.dtype}); a CT holds one real value (HU) per voxel. If this "
                        "is k-space or FFT output, reconstruct the image first (e.g. np.abs of the inverse FFT).")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"the CT array has dtype {array.dtype}; pass real Hounsfield units (int16 or float32)")
    if array.ndim == 4 and 1 in (array.shape[0], array.shape[-1]):
        hint = " It looks channel-first/last: pass arr[0] (or arr[..., 0]) to drop the channel axis."
    else:
        hint = ""
    if array.ndim != 3:
        raise CTLoadError(f"the CT array has shape {array.shape}; a CT is one 3D volume.{hint}")
    if array.dtype == np.float16 or array.dtype == np.float64:
        array = array.astype(np.float32)
    elif not array.dtype.isnative:  # e.g. big-endian data straight from a NIfTI file's dataobj
        array = array.astype(array.dtype.newbyteorder("="))
    if affine is not None:
        if spacing is not None or origin is not None or direction is not None:
            raise TypeError("pass either affine= or spacing= (with origin=, direction=), not both: "
                            "the affine already holds spacing, origin and direction")
        sp_ijk, org, dirn = ras_affine_to_lps(affine)
        # nibabel/MONAI arrays are indexed (i, j, k) like the affine's columns; SimpleITK's numpy
        # order is (k, j, i). Transposing gives exactly what SimpleITK makes of the same NIfTI file.
        image = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
        image.SetSpacing(sp_ijk)
        image.SetOrigin(org)
        image.SetDirection(tuple(dirn.ravel()))
        return image
    if spacing is None:
        raise TypeError(
            "a numpy array has no geometry: pass spacing= (mm per array axis (z, y, x), e.g. "
            "load_ct(arr, spacing=(2.5, 0.8, 0.8))), and origin=/direction= if you know them, or affine= "
            "(a 4x4 RAS affine, as nibabel's img.affine or MONAI's meta['affine']) for arrays in nibabel/MONAI "
            "order. There is no 1 mm default: a wrong spacing silently resamples the CT to the wrong size.")
    ct = CTVolume.from_array(array, spacing=spacing, origin=(0.0, 0.0, 0.0) if origin is None else origin,
                             direction=direction)
    return ct.image
