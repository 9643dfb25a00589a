"""Augmentations for the few real labelled CTs: elastic deformation and contrast-phase changes.

A real case is one anatomy in one contrast phase; these turn it into many. Phantoms do not need
them (every phantom is a new anatomy and phase), so the sampler applies them to real volumes only.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..anatomy import MAX_ID, STRUCTURES
from ..grid import HU_WINDOW


class ElasticWarp:
    """A smooth random displacement field, defined everywhere in a volume's voxel space.

    A sum of a few low-frequency plane waves per axis (wavelengths 36-120 mm): smooth, cheap to
    evaluate at any point, and the same field for every patch of the volume, so two neighbouring
    patches (U and V of the cross-patch prompt) stay consistent where they overlap. The largest
    displacement is ``max_mm`` and the largest gradient 0.25, so the map stays one-to-one and a
    structure's volume changes by a few per cent at most.

    Args:
        rng: draws the field.
        max_mm: largest displacement (mm) of any point.
        spacing_mm: voxel size of the grid the points are given in.
        waves: plane waves per axis.
    """

    def __init__(self, rng, max_mm: float = 6.0, spacing_mm: float = 1.5, waves: int = 3):
        direction = rng.normal(size=(3, waves, 3))
        direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
        wavelength = rng.uniform(36, 120, (3, waves, 1)) / spacing_mm  # voxels
        self.k = direction * (2 * np.pi / wavelength)  # (axis, wave, 3)
        self.phase = rng.uniform(0, 2 * np.pi, (3, waves))
        amp = rng.uniform(0.3, 1.0, (3, waves))
        slope = (amp * np.linalg.norm(self.k, axis=-1)).sum(1).max()
        scale = min(max_mm / spacing_mm / amp.sum(1).max(), 0.25 / slope)
        self.amp = (amp * scale).astype(np.float32)
        self.k, self.phase = self.k.astype(np.float32), self.phase.astype(np.float32)
        self._last = (None, None)  # (key, points) of the last patch, see `coords`

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Displacements (voxels, ``(3, N)``, z, y, x) at ``points`` ``(3, N)`` (voxel indices, z, y, x)."""
        points = points.astype(np.float32, copy=False)
        out = np.empty(points.shape, np.float32)
        for a in range(3):
            arg = np.tensordot(self.k[a], points, axes=(1, 0)) + self.phase[a][:, None]  # (wave, N)
            out[a] = (self.amp[a][:, None] * np.sin(arg)).sum(0)
        return out

    def coords(self, matrix, offset, size: int, factor: int = 1) -> np.ndarray:
        """Sampling points ``(3, size³)`` of a ``size³`` patch cut with output→input ``matrix`` and ``offset``
        from a grid ``factor`` times coarser than the field's, displaced by the field. The last patch's
        points are kept: its image and its labels are cut at the same points."""
        key = (np.asarray(matrix, float).tobytes(), np.asarray(offset, float).tobytes(), size, factor)
        if self._last[0] != key:
            pts = (np.asarray(matrix, np.float32) @ np.indices((size,) * 3, np.float32).reshape(3, -1)
                   + np.asarray(offset, np.float32)[:, None])
            pts += self(pts * factor) / factor
            self._last = (key, pts)
        return self._last[1]


def _group_of_ids():
    """Ontology ids -> contrast group: 1 arteries, 2 veins, 3 enhancing organs, 0 the rest."""
    group = np.zeros(MAX_ID + 1, np.int8)
    organs = {"liver", "spleen", "kidney_left", "kidney_right", "pancreas", "adrenal_gland_left",
              "adrenal_gland_right", "adrenal_gland", "heart", "heart_myocardium", "thyroid_gland"}
    for s in STRUCTURES:
        n = s.name
        if s.group == "vessel" and any(w in n for w in ("aorta", "arter", "trunk", "carotid", "subclavian")):
            group[s.id] = 1
        elif s.group == "vessel" or "vena" in n or "vein" in n:
            group[s.id] = 2
        elif n in organs or n.startswith("heart_"):
            group[s.id] = 3
    return group


_GROUP = _group_of_ids()


def contrast_phase(image: np.ndarray, labels: np.ndarray, rng) -> np.ndarray:
    """``image`` (normalised [0, 1] over ``HU_WINDOW``) as if scanned in another contrast phase.

    Arteries, veins and enhancing organs each get one HU shift (arteries -150..+150, veins
    -120..+120, organs -50..+60) plus a small per-structure jitter, smoothed over a voxel so no
    label edge becomes a step the real image does not have; then a gamma of 0.7-1.4.
    Not clipped (the sampler's intensity step clips).
    """
    shift = np.zeros(1024, np.float32)
    ids = np.unique(labels)
    ids = ids[(ids > 0) & (ids <= MAX_ID)]
    group_shift = {1: rng.uniform(-150, 150), 2: rng.uniform(-120, 120), 3: rng.uniform(-50, 60)}
    for i in ids:
        g = int(_GROUP[i])
        if g:
            shift[i] = (group_shift[g] + rng.uniform(-15, 15)) / (HU_WINDOW[1] - HU_WINDOW[0])
    out = image
    if shift.any():
        out = image + ndimage.gaussian_filter(shift[labels.astype(np.int64)], 1.0)
    gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
    return np.clip(out, 0, 1) ** gamma
