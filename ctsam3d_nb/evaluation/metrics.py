"""Overlap and surface metrics for binary 3D masks.

Conventions (the same in every function here):

* Masks are arrays of shape ``(z, y, x)``; any non-zero value is foreground.
  ``pred`` and ``gt`` must have the same shape.
* ``spacing`` is the voxel size in mm per array axis ``(z, y, x)``
  (``CTVolume.spacing``); distances are in mm between voxel centres.
* **Surface voxels** of a mask are its foreground voxels with at least one
  6-connected (face) neighbour outside the mask: ``mask & ~binary_erosion(mask)``
  with a cross-shaped structuring element. Voxels on the edge of the array
  count as surface (the outside of the array is background), the same choice
  as MONAI's ``get_mask_edges`` and as `clicks.deepest_point`.
* **Surface distance** from a voxel to a mask is the Euclidean distance in mm
  from that voxel's centre to the nearest surface-voxel centre of the mask,
  computed exactly with ``scipy.ndimage.distance_transform_edt(sampling=spacing)``.

This is the voxel-based normalised surface Dice of MONAI's
``compute_surface_dice`` (``use_subvoxels=False``). The DeepMind
``surface-distance`` package (Nikolov et al., 2021) has the same definition
but weights each surface element by its area instead of counting surface
voxels, so its values differ slightly; the voxel count needs no lookup tables
and is easy to check by brute force (see the tests).

Edge cases are defined, never NaN:

==========================  ======  =====  ======
case                        dice    nsd    hd95
==========================  ======  =====  ======
both masks empty            1.0     1.0    0.0
exactly one mask empty      0.0     0.0    inf
==========================  ======  =====  ======
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..masks import bounding_box

__all__ = ["dice", "normalized_surface_dice", "hd95", "surface_distances", "boundary_band", "error_counts"]

_CROSS = ndimage.generate_binary_structure(3, 1)  # 6-connectivity
#: Distances within this many mm (relative, for τ > 1 mm) of τ count as equal to τ. On a voxel
#: grid many distances equal τ exactly in theory (3 × 1.1 mm vs τ = 3.3 mm); this keeps float
#: rounding from deciding those ties.
TIE_EPS_MM = 1e-9


def _pair(pred, gt) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred)
    gt = np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape (z, y, x)")
    if pred.ndim != 3:
        raise ValueError(f"masks must be 3D (z, y, x), got shape {pred.shape}")
    return pred.astype(bool, copy=False), gt.astype(bool, copy=False)


def _spacing(spacing) -> np.ndarray:
    sp = np.asarray(spacing if spacing is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    if sp.shape != (3,) or not np.all(np.isfinite(sp)) or np.any(sp <= 0):
        raise ValueError(f"spacing must be three positive mm values (z, y, x), got {spacing!r}")
    return sp


def dice(pred, gt) -> float:
    """Dice similarity coefficient ``2|P∩G| / (|P| + |G|)`` of two masks.

    Args:
        pred: predicted mask ``(z, y, x)``, bool or 0/1.
        gt: reference mask of the same shape.

    Returns:
        A float in [0, 1]; 1.0 when both masks are empty.

    Example:
        >>> a = np.zeros((4, 4, 4), bool); a[:2] = True
        >>> b = np.zeros((4, 4, 4), bool); b[1:3] = True
        >>> dice(a, b)
        0.5
    """
    p, g = _pair(pred, gt)
    n_p, n_g = np.count_nonzero(p), np.count_nonzero(g)
    if n_p + n_g == 0:
        return 1.0
    return float(2.0 * np.count_nonzero(p & g) / (n_p + n_g))  # a Python float, as documented


def _surface(mask: np.ndarray) -> np.ndarray:
    # border_value=0: beyond the array is background, so edge voxels are surface
    return mask & ~ndimage.binary_erosion(mask, structure=_CROSS, border_value=0)


def surface_distances(pred, gt, spacing=None) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm, for both directions.

    Args:
        pred, gt: non-empty masks ``(z, y, x)`` of the same shape.
        spacing: voxel size in mm per axis ``(z, y, x)``; 1 mm if None.

    Returns:
        ``(d_pred_to_gt, d_gt_to_pred)``: 1D float64 arrays; ``d_pred_to_gt[i]`` is the
        distance from the i-th surface voxel of ``pred`` (C order) to the surface of ``gt``.

    Raises:
        ValueError: a mask is empty (distances to an empty surface do not exist).
    """
    p, g = _pair(pred, gt)
    sp = _spacing(spacing)
    if not p.any() or not g.any():
        raise ValueError("surface distances need two non-empty masks")
    # the union box grown by one voxel holds every surface voxel and its outside neighbours, and the
    # array edge stays an edge where the box reaches it: distances inside it equal the whole array's
    box = bounding_box(p | g, pad=1)
    p, g = p[box], g[box]
    sp_p, sp_g = _surface(p), _surface(g)
    # distance of every voxel to the nearest surface voxel of the other mask
    to_g = ndimage.distance_transform_edt(~sp_g, sampling=sp)
    to_p = ndimage.distance_transform_edt(~sp_p, sampling=sp)
    return to_g[sp_p], to_p[sp_g]


def normalized_surface_dice(pred, gt, spacing=None, tolerance_mm: float = 2.0) -> float:
    """Normalised surface Dice (NSD) at a tolerance in mm (Nikolov et al., 2021).

    The fraction of both surfaces that lies within ``tolerance_mm`` of the other:
    ``(|{p ∈ ∂P : d(p, ∂G) ≤ τ}| + |{g ∈ ∂G : d(g, ∂P) ≤ τ}|) / (|∂P| + |∂G|)``,
    with surfaces and distances as defined in the module docstring (``≤``, not ``<``;
    distances within `TIE_EPS_MM` of τ count as equal to it).

    Args:
        pred: predicted mask ``(z, y, x)``.
        gt: reference mask of the same shape.
        spacing: voxel size in mm per axis ``(z, y, x)`` (``ct.spacing``); 1 mm if None.
        tolerance_mm: τ in mm (>= 0).

    Returns:
        A float in [0, 1]; 1.0 if both masks are empty, 0.0 if exactly one is.

    Example:
        >>> a = np.zeros((8, 8, 8), bool); a[2:6, 2:6, 2:6] = True
        >>> normalized_surface_dice(a, np.roll(a, 1, axis=0), spacing=(3.0, 1.0, 1.0), tolerance_mm=3.0)
        1.0
    """
    tol = float(tolerance_mm)
    if not np.isfinite(tol) or tol < 0:
        raise ValueError(f"tolerance_mm must be a finite number >= 0, got {tolerance_mm!r}")
    p, g = _pair(pred, gt)
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 1.0
    if not (has_p and has_g):
        return 0.0
    d_pg, d_gp = surface_distances(p, g, spacing)
    tol += TIE_EPS_MM * max(1.0, tol)  # a distance equal to τ counts, whatever the float rounding
    return float((np.count_nonzero(d_pg <= tol) + np.count_nonzero(d_gp <= tol)) / (d_pg.size + d_gp.size))


def hd95(pred, gt, spacing=None) -> float:
    """95th-percentile Hausdorff distance in mm.

    ``max(P95(d(∂P → ∂G)), P95(d(∂G → ∂P)))``: the larger of the two directed
    95th percentiles (numpy's linear interpolation), as MONAI's
    ``compute_hausdorff_distance(percentile=95)``.

    Returns:
        mm; 0.0 if both masks are empty, ``inf`` if exactly one is.
    """
    p, g = _pair(pred, gt)
    has_p, has_g = bool(p.any()), bool(g.any())
    if not has_p and not has_g:
        return 0.0
    if not (has_p and has_g):
        return float("inf")
    d_pg, d_gp = surface_distances(p, g, spacing)
    return float(max(np.percentile(d_pg, 95), np.percentile(d_gp, 95)))


def boundary_band(gt, spacing=None, width_mm: float = 2.5) -> np.ndarray:
    """The voxels within ``width_mm`` of the boundary of ``gt``, on either side (bool, ``gt``'s shape).

    A voxel outside ``gt`` is in the band when the nearest ``gt`` voxel is at most ``width_mm`` away (centre to
    centre); a voxel inside, when the nearest voxel outside ``gt`` is. Errors in this band are boundary errors (an
    edge drawn a voxel or two off); errors outside it are parts missed or leaked. Distances are computed in a box
    around ``gt`` (voxels beyond it are farther than ``width_mm``); the outside of the array counts as outside ``gt``.

    Example:
        >>> g = np.zeros((1, 1, 9), bool); g[0, 0, 3:6] = True
        >>> boundary_band(g, (1, 1, 1), 1.0)[0, 0].astype(int).tolist()
        [0, 0, 1, 1, 1, 1, 1, 0, 0]
    """
    gt = np.asarray(gt).astype(bool, copy=False)
    sp = _spacing(spacing)
    if not float(width_mm) >= 0:
        raise ValueError(f"width_mm must be >= 0, got {width_mm!r}")
    band = np.zeros(gt.shape, bool)
    if not gt.any():
        return band
    pad = np.ceil(float(width_mm) / sp).astype(int) + 1
    box = bounding_box(gt, pad)
    g = np.pad(gt[box], 1)  # a ring outside the array: the array's edge is a boundary of gt
    near = ((ndimage.distance_transform_edt(~g, sampling=sp) <= width_mm + TIE_EPS_MM)
            & (ndimage.distance_transform_edt(g, sampling=sp) <= width_mm + TIE_EPS_MM))
    band[box] = near[1:-1, 1:-1, 1:-1]
    return band


def error_counts(pred, gt, band=None) -> dict[str, int]:
    """Voxels ``pred`` adds (``fp``) and misses (``fn``), and of those the ones outside ``band`` (``fp_far``,
    ``fn_far``; a :func:`boundary_band` of ``gt``; without one, every error counts as far)."""
    pred, gt = _pair(pred, gt)
    fp, fn = pred & ~gt, gt & ~pred
    n_fp, n_fn = int(np.count_nonzero(fp)), int(np.count_nonzero(fn))
    if band is None:  # every error counts as far
        return {"fp": n_fp, "fn": n_fn, "fp_far": n_fp, "fn_far": n_fn}
    return {"fp": n_fp, "fn": n_fn, "fp_far": int(np.count_nonzero(fp & ~band)),
            "fn_far": int(np.count_nonzero(fn & ~band))}
