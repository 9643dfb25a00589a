"""`Canvas`: the label map and tissue map being painted, structure after structure.

Painting order is priority: a later structure overwrites an earlier one, so
the label map never holds two structures in one voxel.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .frame import BodyGrid, Box, box_shape
from .labels import PHANTOM_LABELS
from .intensities import texture_amp
from .shapes import smooth_noise

__all__ = ["Canvas"]


class Canvas:
    """Label map (uint8) + tissue map (uint8), both ``(z, y, x)`` on ``grid``.

    Attributes:
        noise_rng: generator for roughness/texture noise (its draws depend on the
            grid, unlike the layout's anatomy draws).
        offset: float32 ``(z, y, x)`` extra HU added on top of the tissue table
            (organ texture, lung gradient), painted per structure.
    """

    def __init__(self, grid: BodyGrid, noise_rng: np.random.Generator):
        self.grid = grid
        self.label = np.zeros(grid.shape, np.uint8)
        self.tissue = np.zeros(grid.shape, np.uint8)
        self.noise_rng = noise_rng
        self.offset = np.zeros(grid.shape, np.float32)

    @staticmethod
    def label_id(name: str | int) -> int:
        """Label id of a structure name (ids pass through)."""
        return PHANTOM_LABELS[name] if isinstance(name, str) else int(name)

    def _member(self, lab: np.ndarray, names) -> np.ndarray:
        """``lab`` holds one of ``names`` (a few ids: cheaper than np.isin on big boxes)."""
        ids = [self.label_id(n) for n in names]
        m = lab == ids[0]
        for i in ids[1:]:
            m |= lab == i
        return m

    def paint(self, box: Box | None, mask: np.ndarray, name: str | int, tissue: int, only=None):
        """Write label ``name`` and ``tissue`` where ``mask`` (shape of ``box``) is true; clears the
        texture offset painted there before.

        Args:
            only: optional label ids (or names); paint only over voxels that
                currently hold one of them.
        """
        if box is None:
            return
        lab_id = self.label_id(name)
        lab = self.label[box]
        if only is not None:
            mask = mask & self._member(lab, only)
        lab[mask] = lab_id
        self.tissue[box][mask] = tissue
        # a structure painted over another must not keep its texture (a liver over stool looked mottled)
        self.offset[box][mask] = 0.0

    def set_tissue(self, box: Box | None, mask: np.ndarray, tissue: int, within=None):
        """Change the tissue (not the label) where ``mask`` and clear its texture offset;
        ``within``: only on these labels."""
        if box is None:
            return
        if within is not None:
            mask = mask & self._member(self.label[box], within)
        self.tissue[box][mask] = tissue
        self.offset[box][mask] = 0.0

    def rough(self, box: Box, field: np.ndarray, amp: float, corr_mm: float) -> np.ndarray:
        """``field`` plus smooth noise of std ``amp`` and correlation ``corr_mm``: irregular outlines."""
        if amp <= 0:
            return field
        return field + amp * smooth_noise(self.noise_rng, box_shape(box), self.grid.step, corr_mm)

    def texture(self, box: Box | None, mask: np.ndarray, tissue: int, corr_mm: float = 6.0, amp=None):
        """Add smooth HU texture (std ``amp``, default the tissue's) where ``mask``."""
        if box is None or not mask.any():
            return
        amp = texture_amp(tissue) if amp is None else amp
        n = smooth_noise(self.noise_rng, box_shape(box), self.grid.step, corr_mm)
        self.offset[box][mask] += amp * n[mask]

    def absorb_fragments(self, skip=()) -> list[int]:
        """Give every label one connected piece; return the ids present afterwards.

        Later structures cut earlier ones (a vessel through a muscle, a rib
        across a lobe tip); the smaller pieces of each label are handed to the
        nearest other structure, label and tissue alike, so that each
        structure is a single connected component as in curated label maps.
        Labels in ``skip`` (ids) may stay in pieces.
        """
        todo = None
        for _ in range(4):  # absorbed voxels may split the receiving label: re-check it
            objs = ndi.find_objects(self.label)
            received = set()
            for lab_id, sl in enumerate(objs, 1):
                if sl is None or lab_id in skip or (todo is not None and lab_id not in todo):
                    continue
                received |= self._absorb(lab_id, sl)
            if not received:
                break
            todo = received
        objs = ndi.find_objects(self.label)
        return [i for i, sl in enumerate(objs, 1) if sl is not None]

    def _absorb(self, lab_id: int, sl) -> set[int]:
        m = self.label[sl] == lab_id
        cc, n = ndi.label(m)
        if n <= 1:
            return set()
        sizes = np.bincount(cc.ravel())
        sizes[0] = 0
        frag = (cc > 0) & (cc != sizes.argmax())
        # work in a padded box around the fragments only (may reach beyond sl)
        fb = ndi.find_objects(frag.view(np.uint8))[0]
        box = tuple(slice(max(s.start + f.start - 4, 0), min(s.start + f.stop + 4, n_ax))
                    for s, f, n_ax in zip(sl, fb, self.label.shape))
        fr = np.zeros(box_shape(box), bool)
        inner = tuple(slice(s.start + f.start - b.start, s.start + f.stop - b.start) for s, f, b in zip(sl, fb, box))
        fr[inner] = frag[fb]
        source = self.label[box] != lab_id
        if not source.any():
            return set()
        idx = ndi.distance_transform_edt(~source, return_distances=False, return_indices=True)
        near = tuple(i[fr] for i in idx)
        new = self.label[box][near]
        self.label[box][fr] = new
        self.tissue[box][fr] = self.tissue[box][near]
        self.offset[box][fr] = self.offset[box][near]
        return set(np.unique(new).tolist())
