"""Pelvic bones and proximal femurs."""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .frame import merge
from .intensities import T
from .layout import Layout
from .shapes import ellipsoid, tube
from .spine import paint_bone

__all__ = ["femur_heads", "paint_hips", "paint_femurs"]


def femur_heads(lay: Layout):
    """Centres (u, v, w) mm of the right and left femoral heads, and the head radius."""
    rng = lay.rng
    hu = 88.0 * lay.width * float(rng.uniform(0.96, 1.04))
    hv = float(rng.uniform(-12, -4))
    r = 23.0 * float(rng.uniform(0.92, 1.08))
    return (np.array([-hu, hv, 0.0]), np.array([hu, hv, 0.0])), r


def _cap(cv, a, b, r):
    res = tube(cv.grid, np.array([a, b]), np.array([r, r]), pad=1.05)
    return None if res is None else (res[0], res[1] < 1)


def _wing(cv: Canvas, lay: Layout, side: float):
    """Iliac wing: a plate curving from the sacroiliac joint laterally and forwards to the crest.

    Per slice it is a band around an ellipse arc through the sacroiliac joint
    (behind) and the lateral rim (front), concave towards the pelvis (the iliac
    fossa); it narrows downwards into the body of the ilium above the acetabulum.
    """
    g = cv.grid
    s = lay.spine_scale
    crest = (140 + float(lay.rng.uniform(-8, 8))) * s
    low = 25.0
    lo_u, hi_u = (40, 170) if side > 0 else (-170, -40)
    box = g.box((lo_u, -90, low), (hi_u, 110, crest + 2))
    if box is None:
        return None
    w = g.w[box[0]].astype(np.float64)
    t = np.clip((w - low) / (crest - low), 0, 1)
    _, vs = lay.spine(w)
    si_u, si_v = 60.0 * lay.width, vs + 6.0  # sacroiliac joint, just lateral to the sacrum
    a = (74 + 56 * t) * lay.width  # lateral rim, flaring upwards
    c = -8 - 34 * t  # AP position of the lateral rim
    b = (si_v - c) / np.sqrt(np.clip(1 - (si_u / a) ** 2, 0.05, 1))
    col = lambda x: np.asarray(x, dtype=np.float32)[:, None, None]  # noqa: E731
    _, v, u = g.axes(box)
    r = np.sqrt((u / col(a)) ** 2 + ((v - col(c)) / col(b)) ** 2)
    thick = np.interp(w, [low, 45, 70, 110, crest - 12, crest], [26, 16, 10, 8, 9, 12])
    band = np.abs(r - 1) < col(thick / (2 * a))
    top = crest - 25 * ((v - 5) / 75.0) ** 2
    m = band & (v > col(c - 12 - 10 * t)) & (v < col(si_v + 10)) & (np.abs(u) > si_u - 4) & (col(w) < top)
    return box, m


def paint_hips(cv: Canvas, lay: Layout, heads, r_head: float):
    """hip_left / hip_right: iliac wing, acetabular cup and block, ischium, pubic rami."""
    for side, name, h in ((1.0, "hip_left", heads[1]), (-1.0, "hip_right", heads[0])):
        parts = [_wing(cv, lay, side)]
        cup = ellipsoid(cv.grid, h, (r_head + 9,) * 3, pad=1.02)
        if cup is not None:
            box, f = cup
            w, v, u = cv.grid.axes(box)
            n_open = np.array([side * 0.55, -0.35, -0.75])
            d = (u - h[0]) * n_open[0] + (v - h[1]) * n_open[1] + (w - h[2]) * n_open[2]
            dist = f * (r_head + 9)
            parts.append((box, (dist > r_head + 2) & (dist < r_head + 9) & (d < 0.25 * dist)))
        block = ellipsoid(cv.grid, h + np.array([-side * 24, 6, 10]), (11, 24, 30), pad=1.02)
        parts.append(None if block is None else (block[0], block[1] < 1))
        tuber = h + np.array([-side * 30, 42, -48])
        sym = np.array([side * 4.0, h[1] - 48, -4])
        parts.append(_cap(cv, h + np.array([-side * 14, 20, -14]), tuber, 11))
        parts.append(_cap(cv, h + np.array([-side * 16, -14, 4]), sym + np.array([side * 5, 0, 0]), 9))
        parts.append(_cap(cv, sym + np.array([side * 7, 4, -14]), tuber + np.array([0, -6, 0]), 7))
        box, m = merge(parts, "or")
        if box is None:
            continue
        _, _, u = cv.grid.axes(box)
        m &= (u * side) > 2.0  # symphysis gap
        paint_bone(cv, box, m, name)


def paint_femurs(cv: Canvas, lay: Layout, heads, r_head: float):
    """Femoral head, neck, trochanters and shaft; fatty marrow in the shaft."""
    for side, name, h in ((1.0, "femur_left", heads[1]), (-1.0, "femur_right", heads[0])):
        neck_end = h + np.array([side * 34, 8, -32])
        shaft_top = neck_end + np.array([side * 2, 0, -4])
        shaft_bot = h + np.array([side * 28, -4, -430])
        head = ellipsoid(cv.grid, h, (r_head,) * 3, pad=1.02)
        troch = ellipsoid(cv.grid, h + np.array([side * 44, 14, -22]), (14, 17, 21), pad=1.02)
        parts = [
            None if head is None else (head[0], head[1] < 1),
            _cap(cv, h, neck_end, 14.5),
            None if troch is None else (troch[0], troch[1] < 1),
            _cap(cv, shaft_top, shaft_bot, 14.0),
            _cap(cv, h + np.array([side * 22, 16, -52]), h + np.array([side * 30, 10, -52]), 8.5),
        ]
        box, m = merge(parts, "or")
        if box is None:
            continue
        paint_bone(cv, box, m, name)
        shaft = tube(cv.grid, np.array([shaft_top + [0, 0, -30], shaft_bot]), np.array([14.0, 14.0]), pad=1.0)
        if shaft is not None:
            sb, f = shaft
            cv.set_tissue(sb, f < 0.6, T.MARROW, within=[name])
