"""Solid abdominal organs: liver, gallbladder, spleen, kidneys, pancreas, urinary bladder."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..masks import bounding_box
from .canvas import Canvas
from .frame import crop, merge
from .intensities import T
from .layout import Layout
from .shapes import ellipsoid, rotation, smooth_noise, spline_path, tube

__all__ = ["paint_solid_organs"]

_SOFT = ["torso_fat", "small_bowel", "colon", "duodenum", "stomach", "skeletal_muscle", "body"]
# Fat capsules: (organs, thickness range in body mm, neighbours the fat is carved out of, solid organs it only
# thins to a quarter of that). Real kidneys lie in perirenal fat (Gerota's fascia) and the pancreas in
# peripancreatic fat; spleen and liver keep their shape (a thin fat plane only), the duodenum keeps hugging the
# pancreatic head, and vessels and bones are painted later and cross the fat.
_CAPSULES = (
    (("kidney_right", "kidney_left"), (3.0, 10.0),
     _SOFT[1:] + ["iliopsoas_left", "iliopsoas_right", "autochthon_left", "autochthon_right"], ["spleen", "liver"]),
    (("pancreas",), (1.5, 5.0), ["small_bowel", "colon", "stomach", "skeletal_muscle", "body"], ["spleen"]),
)


def _below_dome(cv: Canvas, lay: Layout, box, margin: float) -> np.ndarray:
    w, v, u = cv.grid.axes(box)
    return w < lay.dome(u, v) - margin


def _liver(cv: Canvas, lay: Layout, cavity: np.ndarray) -> dict:
    rng = lay.rng
    k = float(rng.uniform(0.9, 1.1))
    right_c = np.array([-62 + rng.uniform(-6, 6), 6 + rng.uniform(-6, 6), lay.dome_right - 58 * k])
    left_c = np.array([20 + rng.uniform(-10, 10), -50 + rng.uniform(-5, 5), lay.dome_left - 40])
    mid_c = np.array([-15, -22, lay.dome_right - 52 * k])
    left_size = k * rng.uniform(0.8, 1.15)
    r1 = ellipsoid(cv.grid, right_c, np.array([72, 85, 80]) * k, rotation((0.35, 0.05, 1.0), 20))
    r2 = ellipsoid(cv.grid, left_c, np.array([34, 30, 72]) * left_size, rotation((1.0, 0.25, 0.45)))
    r3 = ellipsoid(cv.grid, mid_c, np.array([40, 52, 45]) * k)
    box, f = merge([r1, r2, r3])
    f = cv.rough(box, f, 0.05, 30.0)
    m = (f < 1) & cavity[box] & _below_dome(cv, lay, box, 5.0)
    cv.paint(box, m, "liver", T.LIVER, only=_SOFT)
    cv.texture(box, m, T.LIVER, corr_mm=8.0)
    return {"right": right_c, "left": left_c, "box": box}


def _gallbladder(cv: Canvas, lay: Layout, liver: dict):
    rng = lay.rng
    c = liver["right"] + np.array([22 + rng.uniform(-6, 6), -52 + rng.uniform(-6, 6), -48 + rng.uniform(-8, 8)])
    s = float(rng.uniform(0.8, 1.2))
    res = ellipsoid(cv.grid, c, (15 * s, 15 * s, 36 * s), rotation((-0.3, -0.5, 0.8)))
    if res is not None:
        box, f = res
        cv.paint(box, f < 1, "gallbladder", T.BILE, only=_SOFT + ["liver"])
        cv.set_tissue(box, (f > 0.85) & (f < 1), T.SOFT, within=["gallbladder"])


def _spleen(cv: Canvas, lay: Layout, cavity: np.ndarray):
    rng = lay.rng
    s = float(rng.uniform(0.8, 1.2))
    c = np.array([88 + rng.uniform(-6, 6), 45 + rng.uniform(-6, 6), lay.dome_left - 60])
    rot = rotation((0.45, 0.5, 0.75), float(rng.uniform(-15, 15)))
    res = ellipsoid(cv.grid, c, (38 * s, 24 * s, 62 * s), rot)
    if res is None:
        return
    box, f = res
    hollow = ellipsoid(cv.grid, c + np.array([-44, -30, 0]) * s, (40 * s, 26 * s, 60 * s), rot, pad=3.0)
    f = cv.rough(box, f, 0.05, 25.0)
    m = (f < 1) & cavity[box] & _below_dome(cv, lay, box, 5.0)
    if hollow is not None:
        m &= crop(*hollow, box) >= 1
    cv.paint(box, m, "spleen", T.SPLEEN, only=_SOFT)
    amp = 30.0 if lay.phase == "arterial" else None  # arterial phase: moire enhancement
    cv.texture(box, m, T.SPLEEN, corr_mm=6.0, amp=amp)


def _kidneys(cv: Canvas, lay: Layout) -> dict:
    rng = lay.rng
    hila = {}
    for side, name in ((-1.0, "kidney_right"), (1.0, "kidney_left")):
        s = float(rng.uniform(0.88, 1.12))
        w = lay.level("L1" if side < 0 else "T12") - 12 + rng.uniform(-10, 10)
        _, vs = lay.spine(np.array([w]))
        c = np.array([side * (68 + rng.uniform(-5, 5)) * lay.width, vs[0] + 30 + rng.uniform(-5, 5), w])
        rot = rotation((-side * 0.22, 0.25, 1.0), side * -35.0)
        hila[side] = c + np.array([-side * 24, -12, 0]) * s
        res = ellipsoid(cv.grid, c, (28 * s, 21 * s, 56 * s), rot)
        if res is None:
            continue
        box, f = res
        sinus = ellipsoid(cv.grid, c + np.array([-side * 20, -8, 0]) * s, (14 * s, 11 * s, 30 * s), rot, pad=4.0)
        f = cv.rough(box, f, 0.03, 20.0)
        m = f < 1
        cv.paint(box, m, name, T.KIDNEY_CORTEX, only=_SOFT)
        cv.set_tissue(box, m & (f < 0.72), T.KIDNEY_MEDULLA, within=[name])
        cv.texture(box, m, T.KIDNEY_CORTEX, corr_mm=5.0)
        if sinus is not None:
            sf = crop(*sinus, box)
            cv.paint(box, (sf < 1) & m, "torso_fat", T.VISCERAL_FAT, only=[name])
            cv.set_tissue(box, sf < 0.45, T.URINE, within=["torso_fat"])
    return hila


def _pancreas(cv: Canvas, lay: Layout):
    rng = lay.rng
    w0 = lay.level("L1") + rng.uniform(-8, 8)
    _, vs = lay.spine(np.array([w0]))
    v0 = vs[0]
    ctrl = np.array([
        [-32, v0 - 45, w0 - 22], [-6, v0 - 58, w0 - 4], [28, v0 - 50, w0 + 6], [62, v0 - 25, w0 + 14],
        [82, v0 + 5, w0 + 20],
    ]) + rng.uniform(-4, 4, (5, 3))
    r = np.array([16, 11, 11, 10, 8]) * float(rng.uniform(0.85, 1.15))
    pts, rad = spline_path(ctrl, r, step=3.0)
    res = tube(cv.grid, pts, rad, pad=1.3)
    if res is None:
        return
    box, f = res
    f = cv.rough(box, f, 0.12, 6.0)  # lobulated outline
    m = f < 1
    cv.paint(box, m, "pancreas", T.PANCREAS, only=_SOFT)
    cv.texture(box, m, T.PANCREAS, corr_mm=3.0)


def _bladder(cv: Canvas, lay: Layout):
    rng = lay.rng
    fill = float(rng.uniform(0.6, 1.25)) ** (1 / 3)
    c = np.array([rng.uniform(-5, 5), -32 + rng.uniform(-5, 5), 38 + 12 * fill])
    res = ellipsoid(cv.grid, c, (44 * fill, 34 * fill, 32 * fill))
    if res is None:
        return
    box, f = res
    w, _, _ = cv.grid.axes(box)
    f = f + np.maximum(w - c[2], 0) * 0.004  # flatter dome
    cv.paint(box, f < 1, "urinary_bladder", T.URINE, only=_SOFT)
    cv.set_tissue(box, (f > 0.92) & (f < 1), T.SOFT, within=["urinary_bladder"])


def _fat_capsules(cv: Canvas, rng: np.random.Generator):
    """Carve a shell of visceral fat around the kidneys and the pancreas out of their neighbours (`_CAPSULES`):
    its thickness is drawn per organ and varies by +-35 % around it (20 mm correlation); against spleen and liver
    it is a quarter as thick. Without it both organs touched bowel, stomach, spleen, liver and muscle directly,
    an edge real CT rarely shows (docs/synthetic_data.md)."""
    for names, (lo, hi), carve, thin in _CAPSULES:
        for name in names:
            rim = float(rng.uniform(lo, hi))
            organ = cv.label == cv.label_id(name)
            try:
                box = bounding_box(organ, [int(np.ceil(1.4 * rim / step)) + 1 for step in cv.grid.step])
            except ValueError:  # the organ is not in this field of view
                continue
            organ = organ[box]
            dist = ndi.distance_transform_edt(~organ, sampling=cv.grid.step)
            reach = rim * (1.0 + 0.5 * smooth_noise(rng, organ.shape, cv.grid.step, 20.0))  # noise std ~0.7
            cv.paint(box, (dist > 0) & (dist <= reach), "torso_fat", T.VISCERAL_FAT, only=carve)
            cv.paint(box, (dist > 0) & (dist <= 0.25 * reach), "torso_fat", T.VISCERAL_FAT, only=thin)


def paint_solid_organs(cv: Canvas, lay: Layout, cavity: np.ndarray) -> dict:
    """Paint pancreas, kidneys, spleen, liver, gallbladder and bladder, then the kidneys' and the pancreas's fat.

    Returns landmarks (mm): "liver_right" (right-lobe centre) and "kidney_hilum"
    ({-1: right, 1: left}).
    """
    _pancreas(cv, lay)
    hila = _kidneys(cv, lay)
    _spleen(cv, lay, cavity)
    liver = _liver(cv, lay, cavity)
    _gallbladder(cv, lay, liver)
    _bladder(cv, lay)
    # from a jumped copy of the layout stream: every later draw of the phantom stays as it was (session 8)
    _fat_capsules(cv, np.random.Generator(lay.rng.bit_generator.jumped()))
    return {"liver_right": liver["right"], "kidney_hilum": hila}
