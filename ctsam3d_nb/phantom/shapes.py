"""Implicit shapes rasterised inside their bounding box only.

Every function returns ``(box, field)``: array slices ``(z, y, x)`` of the
bounding box on the grid and a float32 *normalised distance* over that box,
below 1 inside the shape, exactly 1 on its surface. Thresholding the same field
at other values grows or shrinks the shape (a wall, a fat rim), and adding
smooth noise to it roughens the outline. Points are body mm ``(u, v, w)``.
"""
from __future__ import annotations

import numpy as np
from scipy import interpolate

from .frame import BodyGrid, Box, box_shape

__all__ = [
    "ellipsoid",
    "rotation",
    "smooth_noise",
    "spline_path",
    "segments",
    "swept_ellipse",
    "swept_parts",
    "tube",
]


def rotation(long_axis, roll_deg: float = 0.0) -> np.ndarray:
    """3x3 matrix whose rows are local unit axes (u, v, w order): row 2 along ``long_axis``."""
    a = np.asarray(long_axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    ref = np.array([1.0, 0.0, 0.0]) if abs(a[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    e0 = ref - a * (ref @ a)
    e0 /= np.linalg.norm(e0)
    e1 = np.cross(a, e0)
    t = np.deg2rad(roll_deg)
    e0, e1 = np.cos(t) * e0 + np.sin(t) * e1, -np.sin(t) * e0 + np.cos(t) * e1
    return np.stack([e0, e1, a])


def _lerp_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Linearly resample ``a`` to ``n`` samples along ``axis`` (end points kept).

    One output plane at a time: far faster than a gather over the whole array.
    """
    c = a.shape[axis]
    pos = np.linspace(0.0, c - 1.0, n)
    i0 = np.minimum(pos.astype(np.intp), c - 2)
    f = (pos - i0).astype(np.float32)
    shape = list(a.shape)
    shape[axis] = n
    out = np.empty(shape, np.float32)
    src, dst = np.moveaxis(a, axis, 0), np.moveaxis(out, axis, 0)
    for k in range(n):
        lo = src[i0[k]]
        np.subtract(src[i0[k] + 1], lo, out=dst[k])
        dst[k] *= f[k]
        dst[k] += lo
    return out


def smooth_noise(rng: np.random.Generator, shape, step_zyx, corr_mm: float) -> np.ndarray:
    """Smooth random field of ``shape`` (z, y, x), std ~0.7, correlation length ``corr_mm``.

    Drawn on a coarse lattice (one node per ``corr_mm``) and linearly upsampled
    one axis at a time, so it costs a few passes over ``shape``.
    """
    shape = tuple(int(n) for n in shape)
    coarse = [max(2, int(np.ceil(n * s / corr_mm)) + 1) for n, s in zip(shape, step_zyx)]
    out = rng.standard_normal(coarse, dtype=np.float32)
    for axis in (2, 1, 0):
        out = _lerp_axis(out, shape[axis], axis)
    return out


def ellipsoid(
    grid: BodyGrid, centre, semi_axes, rot: np.ndarray | None = None, pad: float = 1.3
) -> tuple[Box, np.ndarray] | None:
    """Normalised radius of an ellipsoid (``semi_axes`` mm along the rows of ``rot``).

    The box covers ``pad`` times the largest semi-axis around ``centre`` so the
    field can be thresholded above 1 (rims) or perturbed by noise.
    """
    c = np.asarray(centre, dtype=np.float32)
    r = float(max(semi_axes)) * pad
    box = grid.box(c - r, c + r)
    if box is None:
        return None
    w, v, u = grid.axes(box)
    du, dv, dw = u - c[0], v - c[1], w - c[2]
    rot = np.eye(3) if rot is None else np.asarray(rot)
    f = np.zeros(box_shape(box), np.float32)
    for row, s in zip(rot.astype(np.float32), semi_axes):
        f += ((du * row[0] + dv * row[1] + dw * row[2]) / np.float32(s)) ** 2
    return box, np.sqrt(f, out=f)


def spline_path(points, radii, step: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Smooth path through control ``points`` (N, 3) mm, resampled every ``step`` mm.

    Returns ``(points, radii)`` of the resampled path; radii are interpolated
    linearly along the arc length between the control points.
    """
    p = np.asarray(points, dtype=np.float64)
    r = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(p),))
    t = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(p, axis=0), axis=1))])
    k = min(3, len(p) - 1)
    spl = interpolate.make_interp_spline(t, p, k=k)
    n = max(2, int(np.ceil(t[-1] / step)) + 1)
    ts = np.linspace(0.0, t[-1], n)
    return spl(ts), np.interp(ts, t, r)


def tube(grid: BodyGrid, points, radii, pad: float = 1.5) -> tuple[Box, np.ndarray] | None:
    """Normalised distance to a tube of varying radius along a polyline.

    Args:
        points: (N, 3) centre-line in body mm ``(u, v, w)``; consecutive points are
            joined by straight segments (use `spline_path` for smooth curves).
        radii: (N,) tube radius in mm at each point (linear along each segment).
        pad: the field is computed out to ``pad`` times the radius.

    Returns:
        ``(box, field)`` where ``field`` is distance / local radius (inf far away),
        or None if the tube misses the grid.
    """
    p = np.asarray(points, dtype=np.float32)
    r = np.broadcast_to(np.asarray(radii, dtype=np.float32), (len(p),))
    return segments(grid, p[:-1], p[1:], r[:-1], r[1:], pad)


def segments(grid: BodyGrid, a, b, ra, rb, pad: float = 1.5) -> tuple[Box, np.ndarray] | None:
    """Like `tube` for independent segments ``a[i] -> b[i]`` (M, 3) with end radii (M,).

    Each segment is evaluated only inside its own small box, so a branching
    tree of hundreds of segments costs little more than its own volume.
    """
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    ra, rb = np.asarray(ra, np.float32), np.asarray(rb, np.float32)
    reach = (np.maximum(ra, rb) * pad)[:, None]
    box = grid.box(np.minimum(a, b).min(0) - reach.max(), np.maximum(a, b).max(0) + reach.max())
    if box is None:
        return None
    field = np.full(box_shape(box), np.inf, np.float32)
    ax_w, ax_v, ax_u = grid.w[box[0]], grid.v[box[1]], grid.u[box[2]]
    for i in range(len(a)):
        p0, p1, r0, r1 = a[i], b[i], ra[i], rb[i]
        lo, hi = np.minimum(p0, p1) - reach[i], np.maximum(p0, p1) + reach[i]
        idx = []
        for ax, lo_ax, hi_ax in zip((ax_w, ax_v, ax_u), lo[::-1], hi[::-1]):
            idx.append(slice(int(np.searchsorted(ax, lo_ax)), int(np.searchsorted(ax, hi_ax, side="right"))))
        if any(s.stop <= s.start for s in idx):
            continue
        du = ax_u[idx[2]][None, None, :] - p0[0]
        dv = ax_v[idx[1]][None, :, None] - p0[1]
        dw = ax_w[idx[0]][:, None, None] - p0[2]
        d = p1 - p0
        t = (du * d[0] + dv * d[1] + dw * d[2]) / max(float(d @ d), 1e-6)
        np.clip(t, 0.0, 1.0, out=t)
        dist2 = (du - t * d[0]) ** 2 + (dv - t * d[1]) ** 2 + (dw - t * d[2]) ** 2
        val = np.sqrt(dist2) / (r0 + t * (r1 - r0))
        sub = field[tuple(idx)]
        np.minimum(sub, val, out=sub)
    return box, field


def swept_parts(
    grid: BodyGrid, box: Box, uc, vc, a, b_ant, b_post, p: float = 2.0, q_ant: float = 2.0, q_post: float = 2.0
):
    """The two thin terms of `swept_ellipse`: ``(|du/a|^p`` (nz, 1, nx), ``|dv/b|^q`` (nz, ny, 1)).

    ``inside = fv < 1 - fu`` compares them by broadcasting without ever
    building a full float volume.
    """
    w, v, u = grid.axes(box)
    col = lambda x: np.asarray(x, dtype=np.float32)[:, None, None]  # noqa: E731
    fu = (np.abs(u - col(uc)) / np.maximum(col(a), 1e-3)) ** p
    dv = v - col(vc)
    ant = dv < 0
    b = np.where(ant, np.maximum(col(b_ant), 1e-3), np.maximum(col(b_post), 1e-3))
    fv = np.abs(dv) / b
    fv = np.where(ant, fv**q_ant, fv**q_post)
    return fu.astype(np.float32), fv.astype(np.float32)


def swept_ellipse(
    grid: BodyGrid, box: Box, uc, vc, a, b_ant, b_post, p: float = 2.0, q_ant: float = 2.0, q_post: float = 2.0
):
    """Superellipse cross-sections stacked along ``w`` (one per slice of ``box``).

    ``uc, vc, a, b_ant, b_post`` are (nz,) arrays: centre and half-axes per slice
    (``b_ant`` towards -v, ``b_post`` towards +v); ``q_post`` > 2 flattens the back.
    Returns the field ``|du/a|^p + |dv/b|^q`` over ``box`` (< 1 inside).
    """
    fu, fv = swept_parts(grid, box, uc, vc, a, b_ant, b_post, p, q_ant, q_post)
    return fu + fv
