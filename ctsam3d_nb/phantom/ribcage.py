"""Rib cage: 12 rib pairs, costal cartilages, sternum and clavicles.

Ribs hug the outside of the cavity wall (see `Layout.cavity`): each starts just
lateral to the tip of its thoracic vertebra's transverse process, bends back to
the rib angle and runs around the wall, dropping towards the front.
"""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .intensities import T
from .layout import Layout
from .shapes import spline_path, swept_ellipse, tube
from .spine import Vertebra, paint_bone

__all__ = ["paint_ribcage"]

_P, _Q_ANT, _Q_POST = 2.2, 2.0, 2.6  # cavity superellipse exponents (as in trunk.paint_body)
# per rib 1..12: drop (mm) from back to front, end angle (fraction of pi, 1 = front midline), radius
_DROP = [22, 38, 55, 68, 78, 88, 96, 100, 100, 92, 58, 40]
_END = [0.80, 0.80, 0.80, 0.79, 0.78, 0.77, 0.76, 0.74, 0.70, 0.64, 0.50, 0.38]
_RADIUS = [5.0, 4.6, 4.4, 4.4, 4.4, 4.4, 4.3, 4.2, 4.0, 3.8, 3.5, 3.2]


def wall_point(lay: Layout, side: float, phi, w, offset: float):
    """Point(s) ``offset`` mm outside the cavity wall at angle ``phi`` (0 back, pi front), level ``w``."""
    phi = np.asarray(phi, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    _, vc, a, ba, bp = lay.cavity(w)
    s, c = np.sin(phi), np.cos(phi)
    u = side * (a + offset) * np.abs(s) ** (2 / _P)
    back = c >= 0
    b = np.where(back, bp, ba) + offset
    v = vc + np.sign(c) * b * np.abs(c) ** np.where(back, 2 / _Q_POST, 2 / _Q_ANT)
    return np.stack([u, v, w], axis=-1)


def _sternum(cv: Canvas, lay: Layout, top: float, bottom: float):
    g = cv.grid
    box = g.box((-40, -200, bottom - 20), (40, 0, top + 2))
    if box is None:
        return
    w = g.w[box[0]].astype(np.float64)
    _, vc, _, ba, _ = lay.cavity(w)
    manubrium = np.clip((w - (top - 50)) / 10.0, 0, 1)
    half_w = 13 + 12 * manubrium
    half_t = np.where(w < bottom, 4.0, 6.5 + 1.5 * manubrium)
    half_w = np.where(w < bottom, 9.0 * np.clip((w - bottom + 20) / 20, 0, 1) + 0.1, half_w)
    f = swept_ellipse(g, box, np.zeros_like(w), vc - ba - half_t - 1, half_w, half_t, half_t, 2.6)
    paint_bone(cv, box, f < 1, "sternum")


def paint_ribcage(cv: Canvas, lay: Layout, verts: list[Vertebra]):
    """Paint ribs (rib_left_k / rib_right_k), costal cartilages, sternum and clavicles."""
    rng = lay.rng
    by_name = {vt.name: vt for vt in verts}
    top = lay.levels["T2"][0] - 8.0
    bottom = lay.level("T9")
    attach = np.interp(np.arange(1, 8), [1, 2, 7], [top - 12, top - 45, bottom + 6])
    _, vc_top, _, ba_top, _ = lay.cavity(np.array([top]))
    ends, ribs = {}, []
    for k in range(1, 13):
        vt = by_name[f"T{k}"]
        drop = _DROP[k - 1] * lay.spine_scale * float(rng.uniform(0.9, 1.1))
        end = _END[k - 1] * float(rng.uniform(0.97, 1.03))
        for side, name in ((1.0, f"rib_left_{k}"), (-1.0, f"rib_right_{k}")):
            tp_y = vt.canal_y + 0.2 * vt.rc + 8.0
            start = vt.to_body((side * (vt.tp + 4.0), tp_y, 0.05 * vt.height))
            _, _, a, _, _ = lay.cavity(np.array([start[2]]))
            phi0 = float(np.arcsin(min(0.9, ((abs(start[0]) + 18) / (a[0] + 6)) ** (_P / 2))))
            phis = np.linspace(phi0, end * np.pi, 14)
            frac = (phis - phi0) / (np.pi - phi0)
            ws = start[2] - 4 - drop * frac**1.25
            wall = wall_point(lay, side, phis, ws, 6.0)
            pts, rad = spline_path(np.vstack([start, wall]), _RADIUS[k - 1], step=3.0)
            ribs.append((name, pts, rad))
            ends[(k, side)] = (pts[-1], phis[-1], ws[-1])
    # costal cartilages: ribs 1-7 to the sternum edge, 8-10 up to the cartilage above
    for (k, side), (p_end, phi_end, w_end) in ends.items():
        if k > 10:
            continue
        if k <= 7:
            w_att = attach[k - 1]
            _, vc, _, ba, _ = lay.cavity(np.array([w_att]))
            target = np.array([side * 12.0, vc[0] - ba[0] - 6.0, w_att])
        else:
            w_att = bottom - 8 - 14 * (k - 8)
            target = wall_point(lay, side, 0.86 * np.pi - 0.03 * (k - 8) * np.pi, w_att, 6.0)
        mid_w = 0.5 * (w_end + target[2])
        mid = wall_point(lay, side, 0.5 * (phi_end + np.pi * (0.97 if k <= 7 else 0.86)), mid_w, 6.0)
        pts, rad = spline_path(np.vstack([p_end, mid, target]), 4.0, step=3.0)
        res = tube(cv.grid, pts, rad, pad=1.05)
        if res is not None:
            cv.paint(res[0], res[1] < 1, "costal_cartilages", T.CARTILAGE)
    for name, pts, rad in ribs:  # after the cartilages, so that no rib loses a voxel to them
        res = tube(cv.grid, pts, rad, pad=1.05)
        if res is not None:
            paint_bone(cv, res[0], res[1] < 1, name)
    _sternum(cv, lay, top, bottom)
    # clavicles: sternoclavicular joint to the acromion
    vs = float(vc_top[0] - ba_top[0]) - 10.0
    for side, name in ((1.0, "clavicula_left"), (-1.0, "clavicula_right")):
        ctrl = np.array([[side * 24, vs - 4, top + 4], [side * 80, vs + 2, top + 14],
                         [side * 128, vs + 30, top + 22], [side * 146, vs + 52, top + 24]])
        pts, rad = spline_path(ctrl, [7.0, 6.0, 5.5, 6.0], step=3.0)
        res = tube(cv.grid, pts, rad, pad=1.05)
        if res is not None:
            paint_bone(cv, res[0], res[1] < 1, name)
