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

__all__ = ["PATCH", "STRIDE", "origin_for", "crop", "contains", "neighbour_faces", "blend_window", "PatchMasks"]

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

    def blended(self, lo=None, hi=None) -> np.ndarray:
        """Blended probabilities over the grid box ``[lo, hi)`` (default: :meth:`bbox`), float32."""
        if lo is None:
            bb = self.bbox()
            if bb is None:
                return np.zeros((0, 0, 0), np.float32)
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
        return num

    def patch_prior(self, origin) -> np.ndarray:
        """The blended probabilities seen through patch ``origin`` (zeros where nothing is known)."""
        lo = np.asarray(origin)
        full = self.blended(lo, lo + self.size) if self.probs else np.zeros((self.size,) * 3, np.float32)
        return full
