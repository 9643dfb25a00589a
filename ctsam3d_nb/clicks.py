"""Simulated clicks: the standard protocol of interactive segmentation.

The first click goes to the interior point of the target farthest from its
boundary; each next click goes to the point farthest from the boundary of the
largest error region (missed voxels → positive click, extra voxels → negative
click). This is the protocol of RITM, SAM-Med3D and the CVPR 2025 3D
interactive segmentation challenge. Distances use the voxel spacing, so
anisotropic scans get the geometrically deepest point.

All points are voxel indices ``(z, y, x)`` of the given arrays.

`contents_click` is the first click of a harder case the protocol never draws: a click on what a structure holds
rather than its bulk (gas in a stomach or colon, fatty marrow in a humerus, a lesion's necrotic core). Users
click there; a model that learned "the region under the click, bounded by its edges" then segments only the gas
bubble or the marrow (`benchmarks/contents_clicks.py`; docs/model_card.md, session 25).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .masks import bounding_box

__all__ = ["first_click", "next_click", "deepest_point", "contents_click", "darker_contents"]


_COARSE_FROM = 32**3  # the seeded variant measures depth on a 2x coarser grid in boxes larger than this


def deepest_point(mask: np.ndarray, spacing=None, rng: np.random.Generator | None = None,
                  min_fraction: float = 0.5) -> tuple[int, int, int]:
    """The voxel of ``mask`` farthest from its boundary (the volume's edge counts as boundary).

    With ``rng``, a random voxel among those at least ``min_fraction`` × the maximum
    depth instead (the seeded variant used in training; for masks whose box exceeds 32³ voxels
    the depth is measured on 2×2×2 blocks wholly inside the mask, 8x less work, a voxel of the
    drawn block is returned). Ties go to the first voxel in C order, so the result is deterministic.
    """
    mask = np.asarray(mask, bool)
    if mask.ndim != 3:
        raise ValueError(f"mask must be 3D (z, y, x), got shape {mask.shape}")
    if not mask.any():
        raise ValueError("mask is empty: there is no interior point to click")
    box = bounding_box(mask, pad=1)
    local = _coarse_pick(mask[box], spacing, rng, min_fraction) if rng is not None else None
    if local is None:
        sub = np.pad(mask[box], 1)  # the volume edge is a boundary too
        dist = ndimage.distance_transform_edt(sub, sampling=spacing)[1:-1, 1:-1, 1:-1]
        if rng is None:
            local = np.unravel_index(int(np.argmax(dist)), dist.shape)
        else:
            cand = np.argwhere((dist >= min_fraction * dist.max()) & (dist > 0))  # > 0: in the mask
            local = cand[rng.integers(len(cand))]
    return tuple(int(l + s.start) for l, s in zip(local, box))


def _coarse_pick(sub: np.ndarray, spacing, rng: np.random.Generator, min_fraction: float):
    """The seeded deep pick on 2×2×2 blocks of ``sub`` that lie wholly inside it, or None (small box, or
    fewer than 8 such blocks: a thin structure, measured at full resolution instead)."""
    if sub.size <= _COARSE_FROM:
        return None
    z, y, x = (n // 2 for n in sub.shape)
    blocks = sub[:2 * z, :2 * y, :2 * x].reshape(z, 2, y, 2, x, 2).all(axis=(1, 3, 5))
    if np.count_nonzero(blocks) < 8:
        return None
    sampling = None if spacing is None else 2 * np.asarray(spacing, float)
    dist = ndimage.distance_transform_edt(np.pad(blocks, 1), sampling=sampling)[1:-1, 1:-1, 1:-1]
    cand = np.argwhere((dist >= min_fraction * dist.max()) & (dist > 0))
    return 2 * cand[rng.integers(len(cand))] + rng.integers(0, 2, 3)


def first_click(gt: np.ndarray, spacing=None, rng: np.random.Generator | None = None,
                min_fraction: float = 0.5) -> tuple[int, int, int]:
    """First click for target ``gt`` (bool ``(z, y, x)``): its deepest interior point, or with ``rng`` a random
    voxel at least ``min_fraction`` as deep (`deepest_point`; 0 = any voxel of the target; on targets whose box
    passes 32³ voxels the seeded pick runs on 2×2×2 blocks wholly inside it, so it stays off the outermost
    voxel layer)."""
    if not 0 <= min_fraction <= 1:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction!r}")
    return deepest_point(gt, spacing, rng, min_fraction)


def darker_contents(gt: np.ndarray, image: np.ndarray, min_contrast: float = 0.4, erode: bool = True,
                    median: float | None = None):
    """What target ``gt`` holds that is darker than its bulk: the voxels of ``gt`` at least ``min_contrast`` below
    its median on ``image``, the [0, 1] image the model sees (`grid.normalize_hu`; 0.4 is 140 HU), with ``erode``
    one voxel in from their edge (off partial-volume rims, no lone noisy voxels); a bool mask of ``gt``'s shape,
    or None for an air-filled target (median at the window's floor: what a lung or gas-filled loop holds is
    clicked for itself). Gas, fat and marrow belong to the structure; what is brighter (a vessel or nodule in a
    lung, a stone, a calcification) does not count, as a click there asks for that. ``median``: the structure's,
    when ``gt`` is only a part of it (a training patch)."""
    median = float(np.median(image[gt])) if median is None else median
    if median <= 0:
        return None
    dark = gt & (image <= median - min_contrast)
    return ndimage.binary_erosion(dark) if erode else dark


def contents_click(gt: np.ndarray, image: np.ndarray, rng: np.random.Generator | None = None, spacing=None,
                   min_contrast: float = 0.4, min_voxels: int = 27):
    """A first click on what target ``gt`` holds (`darker_contents` on ``image``), or None when it holds less
    than ``min_voxels`` of it: the contents' deepest voxel (in the thickest pocket; ``spacing`` as in
    `deepest_point`), or with ``rng`` a random voxel of them at least half as deep."""
    gt = np.asarray(gt, bool)
    image = np.asarray(image)
    if gt.ndim != 3 or image.shape != gt.shape:
        raise ValueError(f"gt {gt.shape} and image {image.shape} must be the same 3D (z, y, x) shape")
    if not gt.any():
        raise ValueError("gt is empty: there is no target to click on")
    box = bounding_box(gt, pad=1)
    core = darker_contents(gt[box], image[box], min_contrast)
    if core is None or np.count_nonzero(core) < min_voxels:
        return None
    local = deepest_point(core, spacing, rng)
    return tuple(int(l + s.start) for l, s in zip(local, box))


def next_click(pred: np.ndarray, gt: np.ndarray, spacing=None, rng: np.random.Generator | None = None):
    """Next click from the errors of ``pred`` against ``gt``.

    Returns:
        ``((z, y, x), positive)`` at the deepest point of the largest error component
        (a false-negative component gives a positive click, a false-positive one a
        negative click), or ``None`` when ``pred`` equals ``gt``.
    """
    pred = np.asarray(pred, bool)
    gt = np.asarray(gt, bool)
    if pred.shape != gt.shape:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must have the same shape")
    best = None
    for positive, err in ((True, gt & ~pred), (False, pred & ~gt)):
        if not err.any():
            continue
        box = bounding_box(err)
        lab, n = ndimage.label(err[box])
        sizes = np.bincount(lab.ravel())[1:]
        k = int(np.argmax(sizes))
        if best is None or sizes[k] > best[0]:
            comp = np.zeros_like(err)
            comp[box] = lab == k + 1
            best = (int(sizes[k]), comp, positive)
    if best is None:
        return None
    _, comp, positive = best
    return deepest_point(comp, spacing, rng), positive
