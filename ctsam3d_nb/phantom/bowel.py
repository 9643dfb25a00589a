"""Hollow gut: stomach, duodenum, colon and small bowel, with wall, fluid, gas and stool.

Gas rises to the front (low v) because the patient lies supine.
"""
from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .intensities import T
from .layout import Layout
from .shapes import smooth_noise, spline_path, tube

__all__ = ["paint_bowel"]

_FREE = ["torso_fat"]


def _gut(cv: Canvas, name, ctrl, radii, *, wall_mm=3.0, content=T.GI_FLUID, gas_depth=0.0, gas_patchy=0.0,
         only=_FREE, step=4.0, one_level=False, food=0.0, rugae=False):
    """Paint a gut segment along ``ctrl`` (N, 3) with ``radii``: wall, content, anterior gas.

    ``gas_depth`` mm of gas float at the front of the lumen: of each loop (per
    slice and column) or, with ``one_level``, above one gas-fluid level;
    ``food`` (HU) mottles the content, and a meal holds bubbles of swallowed gas (4-16 % of it,
    a few mm to 2 cm: on real CT the middle of a full stomach is often gas, so a click there
    must still mean the stomach); ``rugae``: a contracted lumen filled by enhancing mucosal folds with fluid
    in the clefts between them (the real portal-venous stomach of ../shared/data/real_ct: median 52 HU, as
    bright as the spleen beside it, where a fluid-filled phantom stomach was ~5 HU).
    """
    pts, rad = spline_path(np.asarray(ctrl, dtype=np.float64), radii, step=step)
    res = tube(cv.grid, pts, rad, pad=1.2)
    if res is None:
        return None
    box, f = res
    f = cv.rough(box, f, 0.06, 12.0)
    m = f < 1
    cv.paint(box, m, name, content, only=only)
    mine = cv.label[box] == cv.label_id(name)
    cv.set_tissue(box, mine & (f > 1 - wall_mm / float(rad.mean())), T.BOWEL_WALL)
    inner = mine & (f <= 1 - wall_mm / float(rad.mean()))
    if content == T.STOOL:
        cv.texture(box, inner, T.STOOL, corr_mm=4.0)
    elif food > 0:  # a recent meal: mottled content
        cv.texture(box, inner, content, corr_mm=6.0, amp=food)
    if rugae:  # from a twice-jumped copy of the noise stream, as the bubbles below: other draws stay as they were
        folds = np.random.Generator(cv.noise_rng.bit_generator.jumped(2))
        cleft = np.abs(smooth_noise(folds, inner.shape, cv.grid.step, 7.0)) < 0.3  # a third: fluid clefts
        cv.set_tissue(box, inner & ~cleft, T.BOWEL_WALL)
    if gas_depth > 0 or gas_patchy > 0:
        _, v, _ = cv.grid.axes(box)
        gas = np.zeros_like(inner)
        if gas_depth > 0:
            vmin = np.where(inner, v, np.inf).min(axis=1, keepdims=True)  # front of each loop
            if one_level:
                vmin = vmin.min()
            gas |= v < vmin + gas_depth
        if gas_patchy > 0:
            gas |= smooth_noise(cv.noise_rng, inner.shape, cv.grid.step, 15.0) > 1.0 - gas_patchy
        if food > 0 and not rugae:  # a jumped copy of the noise stream: the phantom's other draws stay as they were
            bubbles = np.random.Generator(cv.noise_rng.bit_generator.jumped())
            gas |= smooth_noise(bubbles, inner.shape, cv.grid.step, 7.0) > bubbles.uniform(0.55, 1.0)
        cv.set_tissue(box, inner & gas, T.GAS)
    return box


def _random_loops(rng: np.random.Generator, start, end, n: int, lo, hi, step: float):
    """A reflected random walk from ``start`` to ``end`` inside the box [lo, hi] (mm)."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    pts = [np.asarray(start, float)]
    d = rng.normal(size=3)
    for _ in range(n):
        d = 0.55 * d / np.linalg.norm(d) + rng.normal(size=3) * 0.7
        d /= np.linalg.norm(d)
        p = pts[-1] + d * step
        over, under = p > hi, p < lo
        p = np.clip(np.where(over, 2 * hi - p, np.where(under, 2 * lo - p, p)), lo, hi)
        d = np.where(over | under, -d, d)
        pts.append(p)
    pts.append(np.asarray(end, float))
    return np.array(pts)


#: Share of stomachs drawn contracted, their lumen filled by enhancing folds (`_gut`'s ``rugae``).
P_RUGAE = 0.35


def paint_bowel(cv: Canvas, lay: Layout, state_rng: np.random.Generator | None = None):
    """Colon, small bowel, duodenum and stomach (in this order; later ones win).

    ``state_rng`` (its own stream, so that every other draw of the seed stays as it was) draws whether the
    stomach is contracted (`P_RUGAE`); without it the stomach holds fluid or a meal.
    """
    rng = lay.rng
    s = lay.spine_scale
    l1 = lay.level("L1")
    # colon: caecum, ascending, transverse (sagging forward), descending, sigmoid, rectum
    ctrl = np.array([
        [-82, -20, 95], [-95, 5, 150], [-95, 12, 200], [-82, -20, l1 - 8], [-40, -72, l1 - 25],
        [20, -76, l1 - 35], [62, -50, l1 - 5], [90, 0, l1 + 25], [100, 28, l1 - 20], [96, 26, 160],
        [82, 0, 112], [45, -40, 88], [0, -32, 72], [-12, 8, 80], [0, 32, 55], [0, 34, 12],
    ]) * np.array([lay.width, 1, 1]) + rng.uniform(-6, 6, (16, 3)) * np.array([1, 1, s])
    radii = np.array([28, 24, 22, 22, 22, 21, 20, 19, 17, 17, 17, 18, 18, 18, 20, 17]) * rng.uniform(0.85, 1.15)
    _gut(cv, "colon", ctrl, radii, content=T.STOOL, gas_depth=float(rng.uniform(3, 14)),
         gas_patchy=float(rng.uniform(0.1, 0.5)))
    # small bowel: loops in the mid and lower abdomen, from the duodenojejunal flexure to the caecum
    loops = _random_loops(rng, (30, -35, l1 - 30), (-75, -25, 100), int(rng.integers(26, 36)),
                          (-70, -85, 85), (70, 0, l1 - 30), 32.0)
    _gut(cv, "small_bowel", loops, float(rng.uniform(10, 13)), wall_mm=2.5,
         gas_patchy=float(rng.uniform(0.0, 0.25)))
    # duodenum: C-loop around the pancreatic head
    ctrl = np.array([
        [-22, -52, l1 - 22], [-46, -36, l1 - 18], [-58, -18, l1 - 28], [-55, -20, l1 - 60],
        [-25, -45, l1 - 68], [15, -45, l1 - 64], [28, -38, l1 - 45], [30, -36, l1 - 30],
    ]) + rng.uniform(-4, 4, (8, 3))
    _gut(cv, "duodenum", ctrl, 11.0, wall_mm=2.5, gas_patchy=0.15, only=_FREE + ["small_bowel", "colon"])
    # stomach: fundus under the left dome, body, antrum crossing the midline, pylorus
    d = lay.dome_left
    k = float(rng.uniform(0.8, 1.2))
    food = float(rng.choice([0.0, 25.0, 60.0]))
    rugae = state_rng is not None and bool(state_rng.random() < P_RUGAE)  # replaces a meal's texture and bubbles
    ctrl = np.array([
        [60, 22, d - 22], [62, -18, d - 55], [45, -48, d - 88], [10, -62, d - 108], [-20, -52, l1 - 22],
    ]) + rng.uniform(-5, 5, (5, 3))
    radii = np.array([36, 36, 30, 22, 13]) * k
    meal = food > 0 and not rugae
    gas_depth = float(rng.uniform(5, 35)) * (0.35 if meal else 1.0)  # a meal: less gas above, bubbles inside
    _gut(cv, "stomach", ctrl, radii, wall_mm=4.0, gas_depth=gas_depth,
         only=_FREE + ["small_bowel", "colon", "duodenum"], one_level=True, food=food, rugae=rugae)
