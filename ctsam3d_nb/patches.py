"""Patch geometry on the model grid: cropping, neighbours, and overlap blending.

A patch is a ``PATCH³`` cube of the model grid named by the grid index of its
first voxel (its *origin*, ``(z, y, x)`` ints, may lie outside the grid: the
parts outside are padded). Neighbouring patches are ``STRIDE`` voxels apart so
that they overlap by ``PATCH - STRIDE`` voxels, where their probabilities are
blended with a smooth window.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["PATCH", "STRIDE", "origin_for", "crop", "contains", "neighbour_faces", "blend_window", "PatchMasks",
           "LevelMasks", "tile_origins"]

PATCH = 64  # voxels per side (96 mm at 1.5 mm)
STRIDE = 48  # neighbour offset; 16 voxels (24 mm) of overlap


def origin_for(center_zyx, size: int = PATCH) -> tuple[int, int, int]:
    """Origin of the patch centred on a (fractional) grid index."""
    return tuple(int(np.floor(c + 0.5)) - size // 2 for c in center_zyx)


def _overlap(origin, size, shape):
    """Slices (source in volume, destination in patch) of the part of a patch inside ``shape``."""
    src, dst = [], []
    for o, n in zip(origin, shape):
        a, b = max(o, 0), min(o + size, n)
        if b <= a:
            return None
        src.append(slice(a, b))
        dst.append(slice(a - o, b - o))
    return tuple(src), tuple(dst)


def crop(volume: np.ndarray, origin, size: int = PATCH, fill: float = 0.0) -> np.ndarray:
    """The ``size³`` patch of ``volume`` at ``origin``; outside the volume is ``fill``."""
    out = np.full((size,) * 3, fill, dtype=volume.dtype)
    ov = _overlap(origin, size, volume.shape)
    if ov is not None:
        out[ov[1]] = volume[ov[0]]
    return out


def contains(origin, point_zyx, size: int = PATCH, margin: float = 0.0) -> bool:
    """True if a grid point lies inside the patch, at least ``margin`` voxels from its faces."""
    p = np.asarray(point_zyx, float) - np.asarray(origin, float)
    return bool(np.all(p >= margin - 0.5) and np.all(p <= size - 0.5 - margin))


def neighbour_faces(prob: np.ndarray, threshold: float = 0.5, depth: int = 2, min_voxels: int = 4):
    """Faces of a patch that its mask touches: ``[(axis, direction), ...]``, direction ±1.

    A face counts when at least ``min_voxels`` voxels within ``depth`` voxels of it are
    above ``threshold``.
    """
    m = prob > threshold
    faces = []
    for axis in range(3):
        for direction, sl in ((-1, slice(0, depth)), (1, slice(-depth, None))):
            idx = [slice(None)] * 3
            idx[axis] = sl
            if np.count_nonzero(m[tuple(idx)]) >= min_voxels:
                faces.append((axis, direction))
    return faces


@functools.lru_cache(maxsize=4)
def blend_window(size: int = PATCH, overlap: int = PATCH - STRIDE) -> np.ndarray:
    """Separable weights, 1 in the middle, ramping down to a small value at the faces
    over ``overlap`` voxels, so stitched patches meet without seams. Read-only."""
    ramp = np.ones(size, np.float32)
    t = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    ramp[:overlap] = np.maximum(t, 0.02)
    ramp[size - overlap:] = ramp[:overlap][::-1]
    w = ramp[:, None, None] * ramp[None, :, None] * ramp[None, None, :]
    w.flags.writeable = False
    return w


class PatchMasks:
    """One object's predicted probabilities, stored per patch (float16), blended on demand."""

    def __init__(self, grid_shape, size: int = PATCH):
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.size = size
        self.probs: dict[tuple[int, int, int], np.ndarray] = {}

    def copy(self) -> "PatchMasks":
        new = PatchMasks(self.grid_shape, self.size)
        new.probs = dict(self.probs)  # arrays are replaced, never modified in place
        return new

    def bbox(self):
        """Grid bounding box ``(lo, hi)`` (hi exclusive) of all patches, clipped to the grid; None if empty."""
        if not self.probs:
            return None
        o = np.asarray(list(self.probs))
        lo = np.maximum(o.min(0), 0)
        hi = np.minimum(o.max(0) + self.size, self.grid_shape)
        if np.any(hi <= lo):
            return None
        return lo, hi

    def blended(self, lo=None, hi=None, weights: bool = False):
        """Blended probabilities over the grid box ``[lo, hi)`` (default: :meth:`bbox`), float32.

        With ``weights=True`` also the summed blend weights (0 where no patch reaches), as a pair.
        """
        if lo is None:
            bb = self.bbox()
            if bb is None:
                z = np.zeros((0, 0, 0), np.float32)
                return (z, z) if weights else z
            lo, hi = bb
        lo, hi = np.asarray(lo), np.asarray(hi)
        shape = tuple(hi - lo)
        num = np.zeros(shape, np.float32)
        den = np.zeros(shape, np.float32)
        w = blend_window(self.size)
        for origin, p in self.probs.items():
            ov = _overlap(tuple(np.asarray(origin) - lo), self.size, shape)
            if ov is None:
                continue
            num[ov[0]] += w[ov[1]] * p[ov[1]]
            den[ov[0]] += w[ov[1]]
        np.divide(num, den, out=num, where=den > 0)
        return (num, den) if weights else num

    def patch_prior(self, origin) -> np.ndarray:
        """The blended probabilities seen through patch ``origin`` (zeros where nothing is known)."""
        lo = np.asarray(origin)
        full = self.blended(lo, lo + self.size) if self.probs else np.zeros((self.size,) * 3, np.float32)
        return full


def tile_origins(points_zyx) -> list[tuple[int, int, int]]:
    """Origins of the patches of the fixed tiling (stride ``STRIDE``, cores ``[STRIDE k, STRIDE (k+1))``)
    whose cores hold the given grid points, each once, in sorted order."""
    pts = np.asarray(points_zyx, float).reshape(-1, 3)
    if not len(pts):
        return []
    k = np.unique(np.floor(pts / STRIDE).astype(int), axis=0)
    off = (PATCH - STRIDE) // 2
    return [tuple(int(v) for v in row * STRIDE - off) for row in k]


def _resize_box(arr: np.ndarray, lo, r: float, out_lo, out_hi) -> np.ndarray:
    """``arr`` (a box of one level starting at ``lo``) seen on a level ``r`` times finer (r > 1, linear,
    voxel centres aligned: coarse ``i`` = fine ``r i``) or coarser (r < 1, every ``1/r``-th voxel),
    over the box ``[out_lo, out_hi)`` of that level."""
    lo, out_lo, out_hi = (np.asarray(v, int) for v in (lo, out_lo, out_hi))
    if r < 1:
        k = int(round(1 / r))
        start = out_lo * k - lo
        return np.ascontiguousarray(arr[tuple(slice(int(a), int(a) + k * int(n), k)
                                              for a, n in zip(start, out_hi - out_lo))])
    k = int(round(r))
    size = (np.asarray(arr.shape) - 1) * k + 1
    t = torch.from_numpy(np.ascontiguousarray(arr, np.float32))[None, None]
    up = F.interpolate(t, size=tuple(int(v) for v in size), mode="trilinear", align_corners=True)[0, 0].numpy()
    a = out_lo - lo * k
    return np.ascontiguousarray(up[tuple(slice(int(x), int(x) + int(n)) for x, n in zip(a, out_hi - out_lo))])


class LevelMasks:
    """One object's probabilities over the zoom levels: a :class:`PatchMasks` per level factor
    (1 = the 1.5 mm model grid, 2 = 3 mm, 4 = 6 mm; all grids share their origin).

    :meth:`view` combines them on any level: the coarsest level that has patches gives the base and
    every finer level overrides it where its patches reach, fading into it over the patches' blend
    ramps. With level-1 patches only, this is exactly :meth:`PatchMasks.blended`.
    """

    def __init__(self, grid_shape, factors=(1,), size: int = PATCH):
        self.grid_shape = tuple(int(s) for s in grid_shape)
        self.size = size
        self.levels = {int(f): PatchMasks(self.level_shape(f), size) for f in sorted(set(factors) | {1})}

    def level_shape(self, factor: int):
        return tuple((s - 1) // int(factor) + 1 for s in self.grid_shape)

    def level(self, factor: int) -> PatchMasks:
        factor = int(factor)
        if factor not in self.levels:
            self.levels[factor] = PatchMasks(self.level_shape(factor), self.size)
        return self.levels[factor]

    @property
    def probs(self) -> dict:
        """The level-1 (finest) patches."""
        return self.levels[1].probs

    def n_patches(self) -> int:
        return sum(len(m.probs) for m in self.levels.values())

    def copy(self) -> "LevelMasks":
        new = LevelMasks.__new__(LevelMasks)
        new.grid_shape, new.size = self.grid_shape, self.size
        new.levels = {f: m.copy() for f, m in self.levels.items()}
        return new

    def _present(self):
        return [f for f in sorted(self.levels, reverse=True) if self.levels[f].probs]

    def bbox(self, threshold: float | None = None):
        """Level-1 box ``(lo, hi)`` holding every patch of every level (with ``threshold``: every voxel
        above it, plus a margin of one voxel of its level), clipped to the grid; None if empty."""
        los, his = [], []
        for f in self._present():
            m = self.levels[f]
            bb = m.bbox()
            if bb is None:
                continue
            lo, hi = bb
            if threshold is not None and f > 1:  # coarse patches are large: keep only where the mask is
                idx = np.argwhere(m.blended(lo, hi) > threshold)
                if not len(idx):
                    continue
                lo, hi = lo + np.maximum(idx.min(0) - 1, 0), lo + idx.max(0) + 2
            los.append(np.asarray(lo) * f)
            his.append((np.asarray(hi) - 1) * f + 1)
        if not los:
            return None
        lo = np.maximum(np.min(los, 0), 0)
        hi = np.minimum(np.max(his, 0), self.grid_shape)
        if np.any(hi <= lo):
            return None
        return lo, hi

    def view(self, factor: int, lo, hi) -> np.ndarray:
        """Combined probabilities on level ``factor`` over its box ``[lo, hi)``, float32."""
        lo, hi = np.asarray(lo, int), np.asarray(hi, int)
        out = np.zeros(tuple(hi - lo), np.float32)
        first = True
        for f in self._present():
            m = self.levels[f]
            r = f / factor  # > 1: level f is coarser than the view
            if r > 1:
                k = int(round(r))
                a, b = np.floor_divide(lo, k), -np.floor_divide(-(hi - 1), k) + 1
            else:
                k = int(round(1 / r))
                a, b = lo * k, (hi - 1) * k + 1
            if f > factor or f < factor:
                bb = m.bbox()
                if bb is None or np.any(np.minimum(b, bb[1]) <= np.maximum(a, bb[0])):
                    continue
            p, w = m.blended(a, b, weights=True)
            if not w.any():
                continue
            if f != factor:
                p, w = _resize_box(p, a, r, lo, hi), _resize_box(w, a, r, lo, hi)
            elif first:  # the base level on its own grid: p is already 0 where no patch reaches (the same values)
                out, first = p, False
                continue
            alpha = (w > 0).astype(np.float32) if first else np.clip(w, 0, 1)
            out += alpha * (p - out)
            first = False
        return out

    def patch_prior(self, origin, factor: int = 1) -> np.ndarray:
        """The combined probabilities seen through patch ``origin`` of level ``factor``."""
        lo = np.asarray(origin, int)
        return self.view(factor, lo, lo + self.size)

    def mask_box(self, threshold: float):
        """``(lo, hi, probabilities)``: :meth:`blended` over ``bbox(threshold)``, or None if empty. One blend
        serves every consumer of a click's mask (connected parts, the CT-grid mask)."""
        bb = self.bbox(threshold)
        return None if bb is None else (bb[0], bb[1], self.blended(*bb))

    def blended(self, lo=None, hi=None) -> np.ndarray:
        """The combined probabilities on level 1 over ``[lo, hi)`` (default: :meth:`bbox`)."""
        if lo is None:
            bb = self.bbox()
            if bb is None:
                return np.zeros((0, 0, 0), np.float32)
            lo, hi = bb
        return self.view(1, lo, hi)
