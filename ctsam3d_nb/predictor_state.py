"""State behind :class:`~ctsam3d_nb.predictor.Predictor`: objects, click checks and masks back
on the CT grid. The session log (replay, autosave, restore) is in :mod:`ctsam3d_nb.session`."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from . import patches as P
from .anatomy import by_id, by_name, near_miss
from .grid import ModelGrid
from .volume import CTVolume

__all__ = ["Click", "ObjectState", "check_click", "object_index", "to_ct_label_map", "to_ct_mask"]

CUSTOM_ID_START = 1000


class Click(NamedTuple):
    """One prompt of an object, as :meth:`Predictor.click <ctsam3d_nb.predictor.Predictor.click>` recorded it.

    A named tuple: ``click.ct_zyx`` reads better than ``click[0]``, and ``ct_zyx, grid_zyx, positive = click``
    and tuple equality still work.

    Attributes:
        ct_zyx: voxel index ``(z, y, x)`` of the loaded CT (floats, as given to ``click``).
        grid_zyx: the same point on the 1.5 mm model grid, ``(z, y, x)`` voxels of ``predictor.grid``.
        positive: True for an include (positive) click, False for an exclude (negative) one.
    """

    ct_zyx: tuple[float, float, float]
    grid_zyx: tuple[float, float, float]
    positive: bool


def check_click(zyx, shape) -> tuple[float, float, float]:
    """Validate a click ``(z, y, x)`` against a volume shape; returns floats."""
    if isinstance(zyx, (str, bytes)) or not hasattr(zyx, "__len__"):
        raise TypeError(f"a click is a (z, y, x) voxel index, got {zyx!r}")
    if len(zyx) != 3:
        raise ValueError(f"a click needs 3 coordinates (z, y, x), got {len(zyx)}: {tuple(zyx)!r}")
    try:
        v = tuple(float(c) for c in zyx)
    except (TypeError, ValueError):
        raise TypeError(f"click coordinates must be numbers (z, y, x), got {tuple(zyx)!r}") from None
    if not all(math.isfinite(c) for c in v):
        raise ValueError(f"click coordinates must be finite, got {v}")
    for c, n, name in zip(v, shape, "zyx"):
        if not -0.5 <= c <= n - 0.5:
            raise ValueError(f"click {tuple(round(x, 2) for x in v)} is outside the volume: {name} must lie in "
                             f"0..{n - 1} (volume shape (z, y, x) = {tuple(shape)}). Coordinates are voxel "
                             "indices in numpy (z, y, x) order, not millimetres or (x, y, z).")
    return v


def free_label_id(existing) -> int:
    """The next custom label id (from ``CUSTOM_ID_START``) no object in ``existing`` uses."""
    return max((o.label_id for o in existing if o.label_id >= CUSTOM_ID_START), default=CUSTOM_ID_START - 1) + 1


@dataclass
class ObjectState:
    """One segmented object: its name, ontology id, clicks and per-patch probabilities on every zoom level."""

    name: str
    label_id: int
    masks: P.LevelMasks
    clicks: list[Click] = field(default_factory=list)  # in the order they were made

    @classmethod
    def create(cls, name, label_id, grid_shape, existing, levels=(1,)) -> "ObjectState":
        explicit = label_id is not None
        if label_id is None:
            try:
                label_id = by_name(name).id
            except KeyError:
                meant = near_miss(str(name))
                if meant is not None:  # a typo would silently become a custom object with a custom id
                    raise ValueError(f"{name!r} is not an ontology name: did you mean {meant!r}? For a custom object "
                                     f"of this name, give it an id: label_id={free_label_id(existing)}") from None
                label_id = free_label_id(existing)
        if isinstance(label_id, bool) or not isinstance(label_id, (int, np.integer)) and not (
                isinstance(label_id, (float, np.floating)) and float(label_id).is_integer()):
            raise TypeError(f"label_id must be a whole number in 1..65535, got {label_id!r}")
        label_id = int(label_id)
        if not 0 < label_id < 65536:
            raise ValueError(f"label_id must be in 1..65535, got {label_id}")
        taken = {o.label_id: o.name for o in existing}
        if label_id in taken:
            what = "another label_id" if explicit else f"its own label_id (the ontology's {name!r} is taken)"
            fix = (f"give this one {what}, e.g. label_id={free_label_id(existing)}, or select that object "
                   f"(select_object({taken[label_id]!r})) to click on it")
            raise ValueError(f"label_id {label_id} is already used by object {taken[label_id]!r}: objects need "
                             f"their own ids; {fix}")
        return cls(str(name), label_id, P.LevelMasks(grid_shape, levels))

    def add_click(self, ct_zyx, grid_zyx, positive: bool):
        self.clicks.append(Click(tuple(ct_zyx), tuple(grid_zyx), bool(positive)))

    def clicks_in(self, origin, factor: int = 1):
        """Clicks inside patch ``origin`` of zoom level ``factor`` as patch-local ``(z, y, x)`` points
        and 1/0 labels."""
        pts, labels = [], []
        o = np.asarray(origin, float)
        for click in self.clicks:
            g = np.asarray(click.grid_zyx, float) / factor
            if P.contains(origin, g):
                pts.append(g - o)
                labels.append(1 if click.positive else 0)
        return np.reshape(pts, (-1, 3)), np.asarray(labels, np.int64)

    def snapshot(self) -> "ObjectState":
        return ObjectState(self.name, self.label_id, self.masks.copy(), list(self.clicks))

    def cleared(self) -> "ObjectState":
        return ObjectState(self.name, self.label_id, P.LevelMasks(self.masks.grid_shape, self.masks.levels))

    @property
    def color(self):
        try:
            return by_id(self.label_id).color
        except KeyError:
            rng = np.random.default_rng(self.label_id)
            return tuple(int(c) for c in rng.integers(60, 255, 3))


def object_index(objects, which, how: str = "select an object by its index (int) or name (str)") -> int:
    """The index in ``objects`` of ``which``: an index, or a name (the first object of that name).

    Raises:
        TypeError: ``which`` is neither an int nor a str (the message starts with ``how``).
        KeyError: no such object (the message lists the objects' names).
    """
    if isinstance(which, bool) or not isinstance(which, (int, np.integer, str)):
        raise TypeError(f"{how}, got {which!r}")
    idx = next((i for i, o in enumerate(objects) if o.name == which), None) if isinstance(which, str) \
        else int(which)
    if idx is None or not 0 <= idx < len(objects):
        raise KeyError(f"no object {which!r}; objects: {[o.name for o in objects]}")
    return idx


def to_ct_mask(masks: P.LevelMasks, grid: ModelGrid, ct: CTVolume, threshold: float, box=None) -> np.ndarray:
    """One object's blended patches, thresholded, on the CT's voxel grid (bool, ct.shape). ``box``: the
    object's ``masks.mask_box(threshold)`` when the caller has it already."""
    out = np.zeros(ct.shape, bool)
    box = masks.mask_box(threshold) if box is None else box
    if box is None:
        return out
    lo, _, probs = box
    grid.paste_to_ct((probs > threshold).view(np.uint8), lo, ct, out.view(np.uint8))
    return out


def to_ct_label_map(objects, grid: ModelGrid, ct: CTVolume, threshold: float) -> np.ndarray:
    """All objects in one uint16 label map on the CT grid; the most probable object wins."""
    out = np.zeros(ct.shape, np.uint16)
    boxes = [o.masks.bbox(threshold) for o in objects]
    live = [(o, b) for o, b in zip(objects, boxes) if b is not None]
    if not live:
        return out
    lo = np.min([b[0] for _, b in live], 0)
    hi = np.max([b[1] for _, b in live], 0)
    best = np.full(tuple(hi - lo), threshold, np.float32)
    lab = np.zeros(tuple(hi - lo), np.uint16)
    for o, _ in live:
        p = o.masks.blended(lo, hi)
        win = p > best
        best[win] = p[win]
        lab[win] = o.label_id
    return grid.paste_to_ct(lab, lo, ct, out)
