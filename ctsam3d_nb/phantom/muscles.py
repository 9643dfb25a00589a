"""Named muscles: the erector spinae (autochthon) and the iliopsoas, plus the paravertebral column."""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .intensities import T
from .layout import Layout
from .shapes import spline_path, swept_ellipse, tube

__all__ = ["paint_back_muscles", "paint_iliopsoas"]

_CAVITY_LABELS = ["torso_fat", "lung_left", "lung_right", "skeletal_muscle"]


def paint_back_muscles(cv: Canvas, lay: Layout):
    """Soft tissue around the spine (keeps lungs out of it) and the two autochthon muscles."""
    g = cv.grid
    bulge = 1.0 + 0.08 * float(lay.rng.uniform(-1, 1))
    box = g.box((-100, -40, 20 * lay.spine_scale), (100, 170, g.w.max()))
    if box is None:
        return
    w = g.w[box[0]].astype(np.float64)
    us, vs = lay.spine(w)
    z = np.zeros_like(w)
    # paravertebral column: from the front of the vertebral bodies to the skin
    col = swept_ellipse(g, box, us, vs + 25, 27 + z, 45 + z, 90 + z, 2.5)
    cv.paint(box, col < 1, "skeletal_muscle", T.MUSCLE, only=_CAVITY_LABELS)
    # erector spinae: beside the spinous processes, behind the transverse processes
    size = np.interp(w, [30, 80, 200, 300, 420, 520, 600], [12, 24, 25, 21, 18, 15, 13])
    depth = np.interp(w, [30, 80, 200, 300, 420, 520, 600], [10, 22, 26, 22, 20, 16, 14])
    back = np.interp(w, [30, 120, 250, 350, 540, 600], [55, 48, 46, 44, 40, 36])
    for side, name in ((1.0, "autochthon_left"), (-1.0, "autochthon_right")):
        f = swept_ellipse(g, box, us + side * (size * bulge + 6), vs + back, size * bulge, depth, depth, 2.2)
        f = cv.rough(box, f, 0.05, 25.0)
        cv.paint(box, f < 1, name, T.MUSCLE, only=_CAVITY_LABELS + ["body"])


def paint_iliopsoas(cv: Canvas, lay: Layout, femur_heads):
    """Psoas from T12 beside the lumbar bodies, joined by the iliacus in the pelvis, to the lesser trochanter.

    ``femur_heads``: centres (u, v, w) mm of the right and left femoral heads.
    """
    s = lay.spine_scale
    for side, name, head in ((1.0, "iliopsoas_left", femur_heads[1]), (-1.0, "iliopsoas_right", femur_heads[0])):
        ws = np.array([lay.level("T12"), lay.level("L2"), lay.level("L4"), 110 * s, 60 * s, 20.0, -15.0, -45.0])
        _, vs = lay.spine(ws)
        hu, hv = abs(head[0]), head[1]
        u = np.array([28, 36, 45, 62, 70, 0.85 * hu, 0.98 * hu, 1.16 * hu]) * side
        v = np.array([vs[0] + 8, vs[1] + 4, vs[2] + 2, vs[3] - 10, -25, hv - 35, hv - 25, hv + 6])
        r = np.array([7, 14, 19, 26, 24, 17, 14, 11]) * float(lay.rng.uniform(0.88, 1.12))
        pts, rad = spline_path(np.stack([u, v, ws], 1), r, step=4.0)
        res = tube(cv.grid, pts, rad, pad=1.2)
        if res is None:
            continue
        box, f = res
        f = cv.rough(box, f, 0.06, 20.0)
        cv.paint(box, f < 1, name, T.MUSCLE, only=_CAVITY_LABELS + ["body"])
