"""Arms at the sides: upper arm and forearm (skin fat, muscle) with humerus, radius and ulna.

Whole-body, trauma and PET-CT scans keep the arms down beside the trunk, in a field of view of ~500 mm; a
384 mm field (the default phantom) holds the trunk alone, as an abdominal scan with the arms raised does.
Arms are painted only when asked (`make_phantom(..., arms=True)`, or by default when the field is at
least `ARMS_FOV_MM` wide): the default phantoms, held-out ones included, stay as they were. Their draws come
from their own stream, so the trunk of a seed is the same with and without arms.
"""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .intensities import T
from .layout import Layout
from .shapes import spline_path, tube
from .spine import paint_bone

__all__ = ["ARMS_FOV_MM", "paint_arms"]

ARMS_FOV_MM = 480.0  # narrowest left-right field of view (physical mm) that shows both arms beside the trunk


def _half_width(lay: Layout, w: float) -> float:
    """Lateral half-width (mm) of the trunk's skin outline at level ``w``, as `trunk.paint_body` draws it."""
    mu, _, ma, _, _ = lay.muscle(np.array([w]))
    return float(abs(mu[0]) + ma[0] + lay.fat_thickness(np.array([w]))[0])


def paint_arms(cv: Canvas, lay: Layout, rng: np.random.Generator) -> dict:
    """Paint both arms hanging beside the trunk, shoulder to below the hips.

    Per patient (``rng``): upper-arm and forearm girth, skin fat, the gap to the trunk (-8 to 15 mm: an arm
    may press on it), humerus length; the arm follows the trunk's side at each level. The humerus (head at
    the shoulder joint, shaft with fatty marrow, widening to the epicondyles) is ``humerus_left`` /
    ``humerus_right``; radius and ulna have no TotalSegmentator label and are painted as bone under ``body``.
    Soft tissue is painted over air only, so where an arm touches the trunk the trunk keeps its outline.
    Returns ``{side: humeral-head centre (u, v, w)}`` (mm).
    """
    s = lay.spine_scale
    w_sh = lay.levels["T2"][0] - 4.0 + float(rng.uniform(-8, 8))  # shoulder joint, about the T2 level
    heads = {}
    for side, name in ((1.0, "humerus_left"), (-1.0, "humerus_right")):
        r_upper = float(rng.uniform(31, 42)) * lay.width  # muscle radius of the upper arm
        r_fore = r_upper * float(rng.uniform(0.72, 0.82))
        fat = max(3.0, 0.55 * lay.fat * float(rng.uniform(0.7, 1.3)))
        gap = float(rng.uniform(-8.0, 15.0))  # < 0: the arm presses on the trunk's side
        l_hum = float(rng.uniform(285, 330)) * s
        w_elbow = w_sh - l_hum
        # the arm follows the trunk's side: beside the chest, in at the waist at the elbow, and the forearm
        # resting on the hip (painted over air only, it gives way where the pelvis is wider: soft tissue
        # pressed flat)
        out = gap + fat  # arm axis = trunk's side + gap + skin fat + the arm's own radius
        u_arm = _half_width(lay, w_sh - 120) + out + r_upper
        u_low = _half_width(lay, w_sh - 0.75 * l_hum) + out + r_upper
        u_elbow = _half_width(lay, w_elbow) + out + 0.9 * r_upper
        w_wrist = w_elbow - 260 * s
        u_wrist = max(u_elbow, _half_width(lay, w_wrist + 40) + out + 0.5 * r_fore)
        _, vc, _, _, _ = lay.muscle(np.array([w_sh]))
        v_arm = float(vc[0]) + float(rng.uniform(0, 20))  # arms rest a little behind the mid-coronal plane
        head = np.array([side * (_half_width(lay, w_sh) - 8.0), v_arm - 4.0, w_sh])
        heads[side] = head
        elbow = np.array([side * u_elbow, v_arm, w_elbow])
        wrist = np.array([side * u_wrist, v_arm - 12.0, w_wrist])  # palms in, hands by the thighs
        upper = np.vstack([head + [0, 0, 10], head * [1, 1, 0] + [side * 18, 0, w_sh - 40],
                           [side * u_arm, v_arm, w_sh - 120], [side * u_low, v_arm, w_sh - 0.75 * l_hum], elbow])
        fore = np.vstack([elbow, 0.5 * (elbow + wrist), wrist])
        for pts, rad in ((upper, r_upper), (fore, r_fore)):  # skin fat, then muscle, over air only
            p, _ = spline_path(pts, 1.0, step=4.0)
            for r, label, tissue, only in ((rad + fat, "subcutaneous_fat", T.FAT, [0]),
                                           (rad, "skeletal_muscle", T.MUSCLE, [0, "subcutaneous_fat"])):
                res = tube(cv.grid, p, np.full(len(p), r), pad=1.02)
                if res is not None:
                    cv.paint(res[0], res[1] < 1, label, tissue, only=only)
        # humerus: head, neck, shaft, epicondyles
        ctrl = np.vstack([head, head + [side * 6, 0, -30], [side * u_arm, v_arm, w_sh - 120],
                          [side * u_low, v_arm, w_sh - 0.75 * l_hum], elbow + [0, 2, 8]])
        p, rad = spline_path(ctrl, [22.0, 13.0, 11.5, 12.0, 17.0], step=3.0)
        res = tube(cv.grid, p, rad, pad=1.02)
        if res is not None:
            paint_bone(cv, res[0], res[1] < 1, name)
            # the shaft: a thick cortex (real mid-shaft humeri: median 570-760 HU in ../shared/data/real_ct)
            # around fatty marrow, not the cancellous core and thin shell of the ends
            keep = (p[:, 2] < head[2] - 45) & (p[:, 2] > elbow[2] + 45)
            if np.count_nonzero(keep) > 1:
                for r, tissue in ((rad[keep] + 2.0, T.CORTICAL), (rad[keep] - float(rng.uniform(3.5, 5.5)), T.MARROW)):
                    res = tube(cv.grid, p[keep], r, pad=1.0)
                    if res is not None:
                        cv.set_tissue(res[0], res[1] < 1, tissue, within=[name])
        # radius (thumb side, anterior-lateral) and ulna (medial-posterior) from the elbow to the wrist
        for du, dv, r in ((side * 9.0, -7.0, 7.0), (-side * 9.0, 7.0, 7.5)):
            bone = np.vstack([elbow + [du, dv, -6], wrist + [du, dv, 0]])
            res = tube(cv.grid, bone, np.array([r, r]), pad=1.02)
            if res is not None:
                paint_bone(cv, res[0], res[1] < 1, "body", marrow=T.MARROW)
    return heads
