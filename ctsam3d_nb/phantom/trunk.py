"""Body wall: outline, subcutaneous fat, muscle, body cavities, lungs, diaphragm, table."""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .intensities import T
from .labels import PHANTOM_LABELS as L
from .layout import Layout
from .shapes import smooth_noise, swept_parts

__all__ = ["paint_body", "paint_lungs", "paint_table"]

_THIGH_U, _THIGH_V, _THIGH_A, _THIGH_B = 86.0, 4.0, 72.0, 74.0
_THIGH_TOP = 20.0  # thighs merge into the pelvis above this w


def _outline_noise(cv: Canvas, n_w: int, n_other: int, axis: int, corr: float) -> np.ndarray:
    """Smooth 2D noise over (w, u) or (w, v), shaped to broadcast over the volume."""
    step = cv.grid.step
    shape = [n_w, 1, 1]
    shape[axis] = n_other
    return smooth_noise(cv.noise_rng, shape, step, corr)


def paint_body(cv: Canvas, lay: Layout) -> np.ndarray:
    """Paint air / subcutaneous fat / muscle / cavity fat over the whole grid.

    Returns the boolean cavity mask ``(z, y, x)`` (thoracic + abdominal + pelvic
    cavity), used to keep organs inside the trunk wall.
    """
    g = cv.grid
    nz, ny, nx = g.shape
    w = g.w.astype(np.float64)
    full = (slice(0, nz), slice(0, ny), slice(0, nx))
    cu, cvc, ca, cba, cbp = lay.cavity(w)
    mu, mvc, ma, mba, mbp = lay.muscle(w)
    fat = lay.fat_thickness(w)
    # Outline roughness: separable noise along (w, u) and (w, v) keeps every
    # layer a broadcast comparison of two thin arrays.
    rough_u = 0.05 * _outline_noise(cv, nz, nx, 2, 60.0)
    rough_v = 0.05 * _outline_noise(cv, nz, ny, 1, 60.0)
    fat_u = rough_u + 0.04 * _outline_noise(cv, nz, nx, 2, 40.0)
    fat_v = rough_v + 0.04 * _outline_noise(cv, nz, ny, 1, 40.0)
    layers = (
        (mu, mvc, ma + fat, mba + 1.25 * fat, mbp + 0.8 * fat, 3.2, rough_u, rough_v),
        (mu, mvc, ma, mba, mbp, 3.0, fat_u, fat_v),
        (cu, cvc, ca, cba, cbp, 2.6, 0.5 * rough_u, 0.5 * rough_v),
    )
    masks = []
    for uc, vc, a, ba, bp, q_post, ru, rv in layers:
        fu, fv = swept_parts(g, full, uc, vc, a, ba, bp, 2.3 if q_post > 3 else 2.2, 2.0, q_post)
        fu += ru
        fv += rv
        masks.append(fv < 1 - fu)
    body, muscle, cavity = masks

    thigh = w < _THIGH_TOP * lay.spine_scale
    if thigh.any():
        k = slice(0, int(np.nonzero(thigh)[0].max()) + 1)
        sub = (k, full[1], full[2])
        n = k.stop
        # thighs grow out of the pelvis: they fade in from _THIGH_TOP downwards
        grow = np.clip((_THIGH_TOP * lay.spine_scale - w[k]) / 40.0, 0.25, 1.0)
        tf = np.full(n, lay.fat * 1.1)
        for side in (-1.0, 1.0):
            uc = np.full(n, side * _THIGH_U * lay.width)
            vc = np.full(n, _THIGH_V)
            ta, tb = _THIGH_A * grow * lay.width, _THIGH_B * grow
            for mask, extra, ru, rv in ((body, tf, rough_u, rough_v), (muscle, 0.0, fat_u, fat_v)):
                fu, fv = swept_parts(g, sub, uc, vc, ta + extra, tb + extra, tb + extra)
                mask[k] |= (fv + rv[k]) < 1 - (fu + ru[k])

    muscle &= body
    cavity &= muscle
    # nested layers, outermost first (boolean writes: no index temporaries)
    cv.label[...] = 0
    cv.tissue[...] = T.AIR
    for mask, name, tissue in ((body, "subcutaneous_fat", T.FAT), (muscle, "skeletal_muscle", T.MUSCLE),
                               (cavity, "torso_fat", T.VISCERAL_FAT)):
        cv.label[mask] = L[name]
        cv.tissue[mask] = tissue
    return cavity


def paint_table(cv: Canvas, lay: Layout):
    """The scanner table under the patient's back (unlabelled, label 0)."""
    g = cv.grid
    ws = np.linspace(0, 520, 60) * lay.spine_scale
    _, vc, _, _, bp = lay.muscle(ws)
    top = float(np.max(vc + bp + 0.8 * lay.fat_thickness(ws))) + 2.0
    box = g.box((-260.0, top, g.w.min()), (260.0, top + 48.0, g.w.max()))
    if box is None:
        return
    _, v, u = g.axes(box)
    shell = (v < top + 5) | ((v > top + 42) & (v < top + 47))
    width = 230.0 - 60.0 * ((v - top) / 48.0) ** 2  # curved underside
    inside = (np.abs(u) < width) & (v >= top)
    m = np.broadcast_to(inside, [box[0].stop - box[0].start] + list(inside.shape[1:]))
    outside = cv.label[box] == 0
    tis = np.where(shell, T.TABLE, T.TABLE_CORE).astype(np.uint8)
    t = cv.tissue[box]
    sel = m & outside
    t[sel] = np.broadcast_to(tis, t.shape)[sel]


def paint_lungs(cv: Canvas, lay: Layout, cavity: np.ndarray):
    """Lungs fill the cavity above the diaphragm; a 5 mm diaphragm separates them from the abdomen."""
    g = cv.grid
    uu, vv = np.meshgrid(np.linspace(-160, 160, 33), np.linspace(-120, 100, 23))
    lo_w = float(lay.dome(uu, vv).min()) - 10.0  # lowest point of the diaphragm inside the trunk
    box = g.box((-200.0, -200.0, lo_w), (200.0, 200.0, g.w.max()))
    if box is None:
        return
    w, v, u = g.axes(box)
    dome = lay.dome(u, v)  # (1, ny, nx)
    cav = cavity[box]
    above = w > dome
    diaphragm = cav & (w > dome - 5.0) & ~above
    cv.paint(box, diaphragm, "skeletal_muscle", T.MUSCLE)
    lung = cav & above
    u_mid = 4.0
    left = lung & (u > u_mid)
    cv.paint(box, left, "lung_left", T.LUNG)
    cv.paint(box, lung & ~left, "lung_right", T.LUNG)
    # gravity: the dependent (posterior) lung is denser; anterior is darker
    grad = np.clip((v - 20.0) / 120.0, -1.0, 1.0) * 45.0
    cv.offset[box][lung] += np.broadcast_to(grad, lung.shape)[lung]
    cv.texture(box, lung, T.LUNG, corr_mm=4.0)
