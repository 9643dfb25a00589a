"""A volume of the training pool: its voxels indexed per label (for fast target sampling) and coarser levels."""
from __future__ import annotations

import numpy as np

from ..grid import downsample


class Volume:
    """One volume of the pool with a per-label index of voxel positions (for fast target sampling)."""

    def __init__(self, image, labels, rng, max_points=4000):
        self.image = np.ascontiguousarray(image, np.float32)
        self.labels = labels
        sub = labels[::2, ::2, ::2]
        flat = sub.ravel()
        order = np.argsort(flat, kind="stable")
        ids, starts = np.unique(flat[order], return_index=True)
        self.points = {}
        self.ml = {}  # volume of each label in mL (from the 2x-subsampled counts; 1.5 mm grid)
        bounds = list(starts[1:]) + [len(order)]
        for i, a, b in zip(ids, starts, bounds):
            if i == 0 or b - a < 8:
                continue
            self.ml[int(i)] = (b - a) * 8 * 1.5 ** 3 / 1000
            pick = order[a:b]
            if len(pick) > max_points:
                pick = rng.choice(pick, max_points, replace=False)
            self.points[int(i)] = np.stack(np.unravel_index(pick, sub.shape), 1) * 2
        self._levels = {1: self}
        self.real = False  # a real scan (its source has ``real = True``): elastic and contrast augmentation

    def level(self, factor: int) -> "Volume":
        """This volume ``factor`` times coarser (:func:`~ctsam3d_nb.grid.downsample`; labels: nearest), cached."""
        if factor not in self._levels:
            v = Volume.__new__(Volume)
            v.image = downsample(self.image, factor)
            v.labels = np.ascontiguousarray(self.labels[::factor, ::factor, ::factor])
            v.real = self.real
            self._levels[factor] = v
        return self._levels[factor]
