"""The raster grid seen in the phantom's body frame.

Anatomy is described in *body millimetres* ``(u, v, w)``: ``u`` towards the
patient's left, ``v`` posterior, ``w`` superior (the LPS axes of the CT), with
``u = v = 0`` on the body axis and ``w = 0`` at the centre of the femoral heads.
A body millimetre is ``scale`` physical millimetres, so the same anatomy can be
rasterised on any field of view: a small grid shows a smaller (scaled) patient
instead of a cropped one. Voxel ``(k, j, i)`` of the ``(z, y, x)`` array sits at
body coordinates ``(u[i], v[j], w[k])``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BodyGrid", "Box", "box_shape", "crop", "merge", "sub_box", "union_box"]

Box = tuple[slice, slice, slice]  # array slices (z, y, x)


@dataclass(frozen=True)
class BodyGrid:
    """A ``(z, y, x)`` voxel grid with the body-frame coordinate of every row/column/slice.

    Attributes:
        shape: array shape ``(z, y, x)``.
        spacing: physical voxel size in mm per array axis ``(z, y, x)``.
        scale: physical mm per body mm (1.0 = adult size).
        u: ``(x,)`` body-frame lateral coordinate (mm, + = patient left) of each column.
        v: ``(y,)`` body-frame AP coordinate (mm, + = posterior) of each row.
        w: ``(z,)`` body-frame craniocaudal coordinate (mm, + = superior) of each slice.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    scale: float
    u: np.ndarray
    v: np.ndarray
    w: np.ndarray

    @classmethod
    def centred(cls, shape, spacing, scale, centre_uvw) -> "BodyGrid":
        """A grid whose centre voxel lies at body coordinates ``centre_uvw`` (mm, ``(u, v, w)``)."""
        axes = []
        for n, sp, c in zip(shape, spacing, centre_uvw[::-1]):
            axes.append(((np.arange(n) - (n - 1) / 2.0) * sp / scale + c).astype(np.float32))
        w, v, u = axes
        return cls(tuple(shape), tuple(spacing), float(scale), u, v, w)

    @property
    def step(self) -> np.ndarray:
        """Voxel size in body mm per array axis ``(z, y, x)``."""
        return np.asarray(self.spacing) / self.scale

    def box(self, lo_uvw, hi_uvw) -> Box | None:
        """Array slices covering the body-frame box ``[lo, hi]`` (mm, ``(u, v, w)``); None if outside."""
        sl = []
        for ax, lo, hi in zip((self.w, self.v, self.u), lo_uvw[::-1], hi_uvw[::-1]):
            a = int(np.searchsorted(ax, lo, side="left"))
            b = int(np.searchsorted(ax, hi, side="right"))
            if b <= a:
                return None
            sl.append(slice(a, b))
        return tuple(sl)

    def axes(self, box: Box):
        """Broadcastable body coordinates ``(w, v, u)`` of a box: shapes (n,1,1), (1,n,1), (1,1,n)."""
        return (
            self.w[box[0]][:, None, None],
            self.v[box[1]][None, :, None],
            self.u[box[2]][None, None, :],
        )


def box_shape(box: Box) -> tuple[int, int, int]:
    """Array shape ``(z, y, x)`` of a box."""
    return tuple(s.stop - s.start for s in box)


def union_box(a: Box | None, b: Box | None) -> Box | None:
    """The smallest box holding both (either may be None)."""
    if a is None:
        return b
    if b is None:
        return a
    return tuple(slice(min(p.start, q.start), max(p.stop, q.stop)) for p, q in zip(a, b))


def sub_box(outer: Box, inner: Box) -> Box:
    """``inner`` expressed relative to ``outer`` (inner must lie inside outer)."""
    return tuple(slice(i.start - o.start, i.stop - o.start) for o, i in zip(outer, inner))


def merge(parts, combine: str = "min"):
    """Combine ``(box, array)`` parts over their union box.

    ``combine="min"``: float fields, min where they overlap, inf elsewhere;
    ``combine="or"``: boolean masks. None parts are skipped; returns
    ``(None, None)`` when nothing is left.
    """
    parts = [p for p in parts if p is not None and p[0] is not None]
    if not parts:
        return None, None
    box = None
    for b, _ in parts:
        box = union_box(box, b)
    if combine == "or":
        acc = np.zeros(box_shape(box), bool)
        for b, m in parts:
            acc[sub_box(box, b)] |= m
    else:
        acc = np.full(box_shape(box), np.inf, np.float32)
        for b, f in parts:
            sb = sub_box(box, b)
            np.minimum(acc[sb], f, out=acc[sb])
    return box, acc


def crop(field_box: Box, field: np.ndarray, box: Box, fill=np.inf) -> np.ndarray:
    """``field`` (defined on ``field_box``) read over ``box``, ``fill`` outside its own box."""
    out = np.full(box_shape(box), fill, field.dtype)
    inter = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(field_box, box))
    if all(s.stop > s.start for s in inter):
        out[sub_box(box, inter)] = field[sub_box(field_box, inter)]
    return out
