"""Shoulder blades: scapula_left / scapula_right on the back of the rib cage.

Every chest CT holds both scapulae (the arms raised or down); the phantom had none. Each is a thin bony
blade lying on the posterior ribs, with muscle between (subscapularis), from its superior angle near T2 to
its inferior angle near T7, and thick margins: the lateral border running up to the glenoid (the shoulder
joint's socket), the spine crossing the blade's back up to the acromion beside the clavicle's end.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .canvas import Canvas
from .frame import merge
from .layout import Layout
from .ribcage import _P, wall_point  # _P: the cavity's lateral superellipse exponent
from .shapes import ellipsoid, spline_path, tube
from .spine import paint_bone

__all__ = ["paint_scapulae"]

_SOFT = ["skeletal_muscle", "subcutaneous_fat", "torso_fat", "body"]  # what a scapula may displace


def _on_back(lay: Layout, side: float, u, w, offset: float) -> np.ndarray:
    """Points ``offset`` mm behind the posterior cavity wall at lateral distance ``|u|`` and level ``w``."""
    u, w = np.asarray(u, np.float64), np.asarray(w, np.float64)
    _, _, a, _, _ = lay.cavity(w)
    phi = np.arcsin(np.clip((np.abs(u) / (a + offset)) ** (_P / 2), 0.0, 0.97))
    return wall_point(lay, side, phi, w, offset)


def paint_scapulae(cv: Canvas, lay: Layout, rng: np.random.Generator) -> None:
    """Paint both scapulae (over muscle and fat only: ribs, lungs and everything inside stay as they are).

    Per patient (``rng``): size, how far from the spine the medial border lies (50-70 mm), the blade's
    distance behind the ribs (14-20 mm from the cavity wall) and thickness (2.5-4 mm).
    """
    g = cv.grid
    step = float(min(g.step))
    w_top = lay.levels["T2"][1] + float(rng.uniform(-6, 6))  # superior angle
    w_bot = lay.levels["T7"][0] + float(rng.uniform(-10, 10))  # inferior angle
    k = float(rng.uniform(0.9, 1.1)) * lay.width
    u_med, u_inf, u_gl = float(rng.uniform(50, 70)), float(rng.uniform(75, 95)), 120.0 * k
    depth, half_t = float(rng.uniform(14, 20)), float(rng.uniform(1.25, 2.0))
    for side, name in ((1.0, "scapula_left"), (-1.0, "scapula_right")):
        s_pt, i_pt, g_pt = np.array([u_med, w_top]), np.array([u_inf, w_bot]), np.array([u_gl, w_top - 18.0])
        # the blade: the triangle (superior angle, inferior angle, glenoid) sampled finer than a voxel,
        # laid on the back of the rib cage, then thickened to a plate with a distance transform
        n = int(np.ceil(np.linalg.norm(i_pt - s_pt) / (0.5 * step))) + 2
        m = int(np.ceil(np.linalg.norm(g_pt - s_pt) / (0.5 * step))) + 2
        a, b = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, m), indexing="ij")
        keep = a + b <= 1.0
        uw = s_pt + a[keep, None] * (i_pt - s_pt) + b[keep, None] * (g_pt - s_pt)
        pts = _on_back(lay, side, uw[:, 0], uw[:, 1], depth)
        box = g.box(pts.min(0) - 6.0, pts.max(0) + 6.0)
        if box is None:
            continue
        w_ax, v_ax, u_ax = (ax[sl] for ax, sl in zip((g.w, g.v, g.u), box))
        idx = np.stack([np.rint((pts[:, c] - ax[0]) / (ax[1] - ax[0] if len(ax) > 1 else 1.0)).astype(int)
                        for c, ax in ((2, w_ax), (1, v_ax), (0, u_ax))], axis=1)
        inside = np.all((idx >= 0) & (idx < [len(w_ax), len(v_ax), len(u_ax)]), axis=1)  # the grid may cut it
        seed = np.zeros((len(w_ax), len(v_ax), len(u_ax)), bool)
        seed[tuple(idx[inside].T)] = True
        blade = ndi.distance_transform_edt(~seed, sampling=g.step) <= max(half_t, 0.5 * step)
        parts = [(box, blade)]
        # margins: lateral border (thick), medial border, spine to the acromion; the glenoid socket
        lateral = _on_back(lay, side, np.linspace(u_inf, u_gl, 6), np.linspace(w_bot, w_top - 18.0, 6), depth)
        medial = _on_back(lay, side, np.linspace(u_med, u_inf, 5), np.linspace(w_top, w_bot, 5), depth)
        spine_w = w_top - 0.25 * (w_top - w_bot)
        root = _on_back(lay, side, np.array([u_med + 3.0]), np.array([spine_w]), depth)[0]
        ridge = _on_back(lay, side, np.array([0.5 * (u_med + u_gl)]), np.array([spine_w + 12.0]), depth + 12.0)[0]
        acromion = np.array([side * 146.0 * k, ridge[1] - 20.0, w_top + 12.0])
        for ctrl, r in ((lateral, [3.0, 3.5, 4.0, 4.5, 5.0, 6.0]), (medial, 2.2),
                        (np.vstack([root, ridge, acromion]), [2.5, 5.0, 4.5])):
            p, rad = spline_path(ctrl, r, step=3.0)
            res = tube(g, p, rad, pad=1.02)
            if res is not None:
                parts.append((res[0], res[1] < 1))
        glen = ellipsoid(g, lateral[-1] + np.array([side * 6.0, -6.0, 0.0]), (10.0, 13.0, 18.0), pad=1.02)
        if glen is not None:
            parts.append((glen[0], glen[1] < 1))
        box, mask = merge(parts, "or")
        paint_bone(cv, box, mask, name, only=_SOFT)
