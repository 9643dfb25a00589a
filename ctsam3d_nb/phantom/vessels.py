"""Tubular structures: arteries, veins, airways and oesophagus, as smooth centre-lines.

Each structure is a `Tube`; `paint_tubes` rasterises a list in order. Tubes in
the chest also claim a rim of mediastinal fat where they border the lungs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .canvas import Canvas
from .intensities import T
from .layout import Layout
from .shapes import spline_path, tube

__all__ = ["Tube", "arteries", "paint_tubes", "veins"]

_LUNGS = ["lung_left", "lung_right"]
_LIMB = ["skeletal_muscle", "torso_fat", "body"]  # femoral vessels run through muscle and fat only


@dataclass
class Tube:
    """A labelled tube. ``ctrl``: (N, 3) control points (u, v, w) mm; ``radii``: (N,) mm.

    Attributes:
        fat: if > 1, also paint mediastinal fat over lung voxels within ``fat`` x radius.
        lumen: optional (tissue, radius fraction) painted inside, e.g. air in the trachea.
        only: paint only over these labels (None = over anything).
    """

    name: str
    tissue: int
    ctrl: np.ndarray
    radii: np.ndarray
    fat: float = 0.0
    lumen: tuple[int, float] | None = None
    only: list | None = None


def paint_tubes(cv: Canvas, tubes: list[Tube]):
    """Rasterise tubes in order (later ones overwrite earlier ones)."""
    for tb in tubes:
        pts, rad = spline_path(tb.ctrl, tb.radii, step=3.0)
        res = tube(cv.grid, pts, rad, pad=max(1.05, tb.fat))
        if res is None:
            continue
        box, f = res
        if tb.fat > 1:
            cv.paint(box, f < tb.fat, "torso_fat", T.VISCERAL_FAT, only=_LUNGS)
        m = f < 1
        if tb.only is None:
            m &= cv.label[box] != 0  # never outside the body
        cv.paint(box, m, tb.name, tb.tissue, only=tb.only)
        if tb.lumen is not None:
            cv.set_tissue(box, f < tb.lumen[1], tb.lumen[0], within=[tb.name])


def _spine_v(lay: Layout, w):
    return lay.spine(np.asarray(w, dtype=np.float64))[1]


def arteries(lay: Layout, marks: dict, heads) -> list[Tube]:
    """Aorta (root, ascending, arch, descending, abdominal), arch branches, iliac, femoral, SMA, renal.

    ``marks``: landmarks (mm) "heart" (centre), "kidney_hilum" ({-1: right, 1: left});
    ``heads``: femoral-head centres (right, left).
    """
    rng = lay.rng
    hc = marks["heart"]
    top = lay.levels["T3"][1] + rng.uniform(-10, 6)  # top of the arch
    l4 = lay.level("L4") + rng.uniform(-8, 8)
    ws = np.array([top - 40, top - 85, lay.level("T12") + 5, lay.level("L1"), lay.level("L3"), l4 + 4])
    vs = _spine_v(lay, ws)
    kink = rng.uniform(-4, 4)
    aorta = np.array([
        hc + (-6, 14, 30), hc + (-18, -6, 54), [-14, -40, top - 30], [-4, -40, top - 5], [12, -24, top],
        [24, -2, top - 10], [27, vs[0] - 14, ws[0]], [25 + kink, vs[1] - 15, ws[1]], [12, vs[2] - 25, ws[2]],
        [7, vs[3] - 28, ws[3]], [6, vs[4] - 28, ws[4]], [4, vs[5] - 27, ws[5]],
    ])
    k = float(rng.uniform(0.85, 1.15))
    r = np.array([15, 15, 14.5, 13.5, 13, 12.5, 12, 11.5, 11, 10, 9.5, 9]) * k
    tubes = []
    # arch branches start inside the aorta (the aorta is painted last and trims them)
    a_bct, a_lcc, a_lsc = aorta[3] + (-4, 2, 4), aorta[4] + (-4, 0, 4), aorta[5] + (0, 2, 6)
    split = np.array([-20, -24, top + 30])
    tubes += [
        Tube("brachiocephalic_trunk", T.ARTERY, np.array([a_bct, a_bct + (-8, 4, 16), split]), np.array([7, 6.5, 6.5])),
        Tube("subclavian_artery_right", T.ARTERY, np.array([split, [-42, -14, top + 36], [-70, -8, top + 30],
                                                            [-110, 0, top + 18]]), np.array([5, 4.8, 4.5, 4.2])),
        Tube("common_carotid_artery_right", T.ARTERY, np.array([split, [-26, -22, top + 60], [-28, -16, top + 130],
                                                                [-30, -12, top + 220]]), np.array([4.2, 4, 3.8, 3.8])),
        Tube("common_carotid_artery_left", T.ARTERY, np.array([a_lcc, [20, -22, top + 40], [27, -16, top + 90],
                                                               [30, -12, top + 200]]), np.array([4.2, 4, 3.8, 3.8])),
        Tube("subclavian_artery_left", T.ARTERY, np.array([a_lsc, [34, 0, top + 30], [60, -6, top + 34],
                                                           [110, 0, top + 18]]), np.array([5, 4.8, 4.5, 4.2])),
    ]
    bif = aorta[-1]
    for side, name in ((-1.0, "iliac_artery_right"), (1.0, "iliac_artery_left")):
        h = heads[0] if side < 0 else heads[1]
        w1 = bif[2] - 40
        ctrl = np.array([bif + (side * 2, 0, 4), [side * 28, _spine_v(lay, w1) - 26, w1],
                         [side * 58, -20, 60], [h[0] * 0.86, h[1] - 44, 18]])
        tubes.append(Tube(name, T.ARTERY, ctrl, np.array([7.5, 6.5, 5.5, 5.0])))
        fem = np.array([[h[0] * 0.86, h[1] - 44, 22], [h[0] * 0.92, h[1] - 42, -30], [h[0] * 1.0, h[1] - 34, -80]])
        tubes.append(Tube("body", T.ARTERY, fem, np.array([5.0, 4.8, 4.5]), only=_LIMB))
    # visceral branches (unlabelled soft tissue, contrast-filled): SMA and renal arteries
    sma0 = aorta[9]
    tubes.append(Tube("body", T.ARTERY, np.array([sma0 + (0, -6, 4), sma0 + (0, -28, -6), sma0 + (-4, -40, -60)]),
                      np.array([4, 3.8, 3.2]), only=["torso_fat", "small_bowel", "pancreas", "body"]))
    for side in (-1.0, 1.0):
        hil = marks["kidney_hilum"].get(side)
        if hil is not None:
            tubes.append(Tube("body", T.ARTERY, np.array([sma0 + (0, 6, -12), hil]), np.array([3.2, 3.0]),
                              only=["torso_fat", "body"]))
    # pulmonary trunk from the right ventricle, under the arch, to both hila (unlabelled)
    bif_pa = np.array([6, -22, top - 42])
    tubes += [
        Tube("body", T.RIGHT_HEART, np.array([hc + (-2, -40, 24), hc + (2, -44, 44), bif_pa]), np.array([13, 13, 12]),
             fat=1.3, only=["torso_fat", "lung_left", "lung_right", "heart", "skeletal_muscle"]),
        Tube("body", T.RIGHT_HEART, np.array([bif_pa, [28, -12, top - 44], [46, 0, top - 52]]), np.array([11, 10, 9]),
             fat=1.3, only=["torso_fat", "lung_left", "lung_right", "heart"]),
        Tube("body", T.RIGHT_HEART, np.array([bif_pa, [-20, -16, top - 48], [-44, -6, top - 56]]),
             np.array([11, 10, 9]), fat=1.3, only=["torso_fat", "lung_left", "lung_right", "heart"]),
    ]
    tubes.append(Tube("aorta", T.ARTERY, aorta, r, fat=1.6))
    return tubes


def veins(lay: Layout, marks: dict, heads) -> list[Tube]:
    """IVC, iliac veins, SVC and brachiocephalic veins, portal/splenic vein, hepatic and renal veins.

    ``marks`` as in `arteries`, plus "right_atrium" and "liver_right" (right-lobe centre).
    """
    rng = lay.rng
    l5 = lay.level("L5") + rng.uniform(-6, 6)
    ws = np.array([l5 + 8, lay.level("L3"), lay.level("L1"), lay.level("T11")])
    vs = _spine_v(lay, ws)
    ra = marks["right_atrium"]
    ivc = np.array([[-18, vs[0] - 20, ws[0]], [-22, vs[1] - 22, ws[1]], [-24, vs[2] - 22, ws[2]],
                    [-26, vs[3] - 18, ws[3]], [-22, -10, lay.dome_right - 25], ra + (4, 6, -20)])
    tubes = []
    for side, name in ((-1.0, "iliac_vena_right"), (1.0, "iliac_vena_left")):
        h = heads[0] if side < 0 else heads[1]
        ctrl = np.array([ivc[0] + (4, 2, 2), [side * 20 - 4, _spine_v(lay, ws[0] - 30) - 14, ws[0] - 30],
                         [side * 50, -8, 58], [h[0] * 0.74, h[1] - 38, 16]])
        tubes.append(Tube(name, T.VEIN, ctrl, np.array([9, 8, 7, 6.5])))
        fem = np.array([[h[0] * 0.74, h[1] - 38, 20], [h[0] * 0.8, h[1] - 36, -30], [h[0] * 0.88, h[1] - 28, -80]])
        tubes.append(Tube("body", T.VEIN, fem, np.array([6.5, 6.0, 5.5]), only=_LIMB))
    for side in (-1.0, 1.0):  # renal veins; the left one crosses in front of the aorta
        hil = marks["kidney_hilum"].get(side)
        if hil is not None:
            mid = [0, vs[2] - 48, ws[2] - 12] if side > 0 else ivc[2] + (-10, 0, -14)
            tubes.append(Tube("body", T.VEIN, np.array([hil, mid, ivc[2] + (0, 0, -16)]), np.array([5, 5, 5.5]),
                              only=["torso_fat", "body"]))
    k = float(rng.uniform(0.9, 1.15))
    tubes.append(Tube("inferior_vena_cava", T.VEIN, ivc, np.array([10, 11, 12, 12, 12, 13]) * k, fat=1.3))
    # portal vein from the confluence behind the pancreatic neck to the liver hilum; splenic vein
    lr = marks["liver_right"]
    conf = np.array([-4, vs[2] - 50, ws[2] - 4])
    portal = np.array([conf, conf + (-22, 10, 22), lr + (18, -28, -10), lr + (-10, -22, 0)])
    tubes.append(Tube("portal_vein_and_splenic_vein", T.PORTAL, portal, np.array([8, 8, 7, 5])))
    tubes.append(Tube("portal_vein_and_splenic_vein", T.PORTAL,
                      np.array([lr + (18, -28, -10), [-2, -50, lr[2] + 12], [18, -56, lr[2] + 20]]),
                      np.array([6, 5, 4]), only=["liver"]))
    spl = np.array([conf, [25, vs[2] - 42, ws[2] + 4], [55, vs[2] - 22, ws[2] + 12], [78, vs[2] + 5, ws[2] + 20]])
    tubes.append(Tube("portal_vein_and_splenic_vein", T.PORTAL, spl, np.array([7, 5.5, 5, 5])))
    tubes.append(Tube("body", T.VEIN, np.array([conf + (2, -4, 0), conf + (6, -12, -50), conf + (4, -16, -110)]),
                      np.array([6, 5, 4]), only=["torso_fat", "small_bowel", "pancreas", "body"]))  # SMV
    # hepatic veins fan out from the IVC at the top of the liver
    hv0 = ivc[4]
    for end in ([-105, 15, -45], [-55, -55, -35], [30, -55, -20]):
        ctrl = np.array([hv0, hv0 + np.array(end) * 0.5 + (0, 0, 5), hv0 + np.array(end)])
        tubes.append(Tube("liver", T.HEPATIC_VEIN, ctrl, np.array([6, 4.5, 2.5]), only=["liver"]))
    # superior vena cava and brachiocephalic veins (first to fill after an arm injection)
    top = lay.levels["T3"][1]
    svc = np.array([ra + (2, -4, 16), [-26, -28, top - 30], [-28, -30, top]])
    tubes.append(Tube("superior_vena_cava", T.VEIN_UPPER, svc, np.array([10, 9.5, 9]), fat=1.5))
    for ctrl in ([[-28, -30, top], [-40, -34, top + 24], [-60, -28, top + 36]],
                 [[-28, -30, top], [10, -44, top + 14], [45, -38, top + 30], [70, -25, top + 40]]):
        tubes.append(Tube("body", T.VEIN_UPPER, np.array(ctrl, float), np.array([7.0] * len(ctrl)), fat=1.5))
    for side in (-1.0, 1.0):  # internal jugular veins beside the carotids
        tubes.append(Tube("body", T.VEIN, np.array([[side * 42, -24, top + 36], [side * 40, -20, top + 120],
                                                    [side * 40, -16, top + 220]]), np.array([6, 6.5, 6.5]),
                          only=["skeletal_muscle", "body", "torso_fat"]))
    return tubes
