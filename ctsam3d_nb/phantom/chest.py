"""Chest contents: heart with chambers, mediastinal fat, airways, oesophagus, lung vessel trees."""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .frame import crop
from .intensities import T
from .layout import Layout
from .shapes import ellipsoid, rotation, segments, swept_ellipse
from .vessels import Tube

__all__ = ["airway_tubes", "heart_landmarks", "paint_heart", "paint_lung_trees", "paint_mediastinal_fat"]

_LUNGS = ["lung_left", "lung_right"]


def heart_landmarks(lay: Layout) -> dict:
    """Heart centre, orientation and size (mm), drawn from the layout."""
    rng = lay.rng
    hc = np.array([18 + rng.uniform(-6, 6), -32 + rng.uniform(-5, 5), lay.dome_left + 40 + rng.uniform(-6, 6)])
    rot = rotation((0.55 + rng.uniform(-0.1, 0.1), -0.5, -0.65), float(rng.uniform(-20, 20)))
    size = float(rng.uniform(0.88, 1.12))
    return {"heart": hc, "heart_rot": rot, "heart_size": size, "right_atrium": hc + np.array([-33, 4, 12]) * size}


def paint_mediastinal_fat(cv: Canvas, lay: Layout, marks: dict):
    """Fat of the anterior mediastinum (between the lungs, behind the sternum)."""
    g = cv.grid
    hc = marks["heart"]
    box = g.box((-40, -200, hc[2] - 40), (40, 60, float(g.w.max())))
    if box is None:
        return
    w = g.w[box[0]].astype(np.float64)
    _, vc, _, ba, _ = lay.cavity(w)
    z = np.zeros_like(w)
    f = swept_ellipse(g, box, z + 4, vc - ba + 30, z + 16, z + 35, z + 35)
    cv.paint(box, f < 1, "torso_fat", T.VISCERAL_FAT, only=_LUNGS)
    # superior mediastinum: trachea, oesophagus and great vessels separate the two apices
    _, vs = lay.spine(w)
    grow = np.clip((w - (hc[2] + 60)) / 40.0, 0, 1)
    f = swept_ellipse(g, box, z + 2, vs - 28, 6 + 20 * grow, 20 + 40 * grow, z + 22)
    cv.paint(box, f < 1, "torso_fat", T.VISCERAL_FAT, only=_LUNGS)


def paint_heart(cv: Canvas, lay: Layout, marks: dict):
    """Heart: myocardium with four blood-filled chambers, wrapped in epicardial fat."""
    hc, rot, s = marks["heart"], marks["heart_rot"], marks["heart_size"]
    res = ellipsoid(cv.grid, hc, np.array([45, 39, 60]) * s, rot)
    if res is None:
        return
    box, f = res
    w, v, u = cv.grid.axes(box)
    above = w > lay.dome(u, v) - 2
    cv.paint(box, (f < 1.14) & above, "torso_fat", T.VISCERAL_FAT, only=_LUNGS + ["torso_fat", "skeletal_muscle"])
    heart = (f < 1) & above
    cv.paint(box, heart, "heart", T.MYOCARDIUM)
    chambers = [  # (offset from the centre, semi-axes along rot, tissue)
        ((14, -6, -12), (15, 13, 30), T.ARTERY),  # left ventricle
        ((-12, -26, -8), (10, 21, 27), T.RIGHT_HEART),  # right ventricle
        ((4, 27, 22), (21, 12, 15), T.ARTERY),  # left atrium
        ((-33, 4, 12), (16, 16, 23), T.RIGHT_HEART),  # right atrium
    ]
    for off, semi, tissue in chambers:
        ch = ellipsoid(cv.grid, hc + np.array(off) * s, np.array(semi) * s, rot, pad=1.0)
        if ch is not None:
            cv.set_tissue(box, heart & (crop(*ch, box) < 1), tissue)


def airway_tubes(lay: Layout) -> list[Tube]:
    """Trachea with the main bronchi (label trachea, air lumen) and the oesophagus."""
    rng = lay.rng
    carina = lay.levels["T5"][1] + rng.uniform(-8, 8)
    ws = np.array([carina, 500, 470, 400, 330, 290])
    vs = lay.spine(ws)[1]
    car = np.array([1, vs[0] - 40, carina])
    trachea = np.array([[0, -30, 720], [0, -28, 560], [0, vs[1] - 38, 500], car])
    r = float(rng.uniform(8, 10.5))
    tubes = [Tube("trachea", T.AIRWAY_WALL, trachea, np.array([r, r, r, r * 0.95]), fat=1.5, lumen=(T.GAS, 0.8))]
    for side, end in ((-1, (-48, 12, -42)), (1, (50, 16, -52))):
        ctrl = np.array([car, car + (side * 18, 4, -14), car + end])
        tubes.append(Tube("trachea", T.AIRWAY_WALL, ctrl, np.array([r * 0.8, r * 0.7, r * 0.55]), fat=1.4,
                          lumen=(T.GAS, 0.75)))
    eso = np.array([[-3, -9, 720], [-3, -9, 560], [4, vs[2] - 26, 470], [6, vs[3] - 24, 400],
                    [10, vs[4] - 30, 330], [26, vs[5] - 46, 290], [44, -12, lay.dome_left - 30]])
    gas = 0.35 if rng.uniform() < 0.5 else 0.0
    tubes.append(Tube("esophagus", T.BOWEL_WALL, eso, np.array([7, 7, 7.5, 7.5, 8, 8, 9]), fat=1.5,
                      lumen=(T.GAS, gas) if gas else None))
    return tubes


def _tree(rng, start, direction, length, radius, depth, out):
    """Append the segments of a random bifurcating tree to ``out`` (lists of a, b, ra, rb)."""
    d = np.asarray(direction, float)
    d /= np.linalg.norm(d)
    end = start + d * length
    r_end = radius * 0.85
    out[0].append(start), out[1].append(end), out[2].append(radius), out[3].append(r_end)
    if depth == 0:
        return
    perp = np.cross(d, rng.normal(size=3))
    perp /= np.linalg.norm(perp)
    for sgn in (-1, 1):
        ang = np.deg2rad(rng.uniform(22, 42))
        child = np.cos(ang) * d + sgn * np.sin(ang) * perp + rng.normal(size=3) * 0.1
        _tree(rng, end, child, length * rng.uniform(0.7, 0.85), max(r_end * 0.8, 0.7), depth - 1, out)


def paint_lung_trees(cv: Canvas, lay: Layout, marks: dict):
    """Branching pulmonary arteries and veins from each hilum, clipped to the lung."""
    rng = lay.rng
    w_h = marks["heart"][2] + 45.0
    dirs = [(0.25, 0.1, 1.0), (0.6, 0.3, 0.8), (0.9, -0.5, 0.1), (0.7, -0.6, -0.4), (0.5, 0.4, -0.8),
            (0.3, 0.9, -0.4), (0.6, -0.2, 0.6), (0.4, 0.8, 0.3), (0.2, 0.5, -1.0)]
    for side, name in ((-1.0, "lung_right"), (1.0, "lung_left")):
        out = ([], [], [], [])
        for hil_off, r0 in (((side * 46, 2, w_h), 5.5), ((side * 40, -10, w_h - 22), 5.0)):
            hil = np.array(hil_off, float)
            for d in dirs:
                d = np.array(d) * (side, 1, 1) + rng.normal(size=3) * 0.15
                _tree(rng, hil, d, 34.0, r0, 6, out)
        a, b, ra, rb = (np.array(x) for x in out)
        res = segments(cv.grid, a, b, ra, rb, pad=1.0)
        if res is None:
            continue
        box, f = res
        cv.paint(box, f < 1, name, T.LUNG_VESSEL, only=[name])
