"""Where things are: body profile, spine levels and diaphragm of one random patient.

All values are body mm ``(u, v, w)`` (see `frame`): ``u`` + = patient left,
``v`` + = posterior, ``w`` + = superior, femoral-head centres at ``w = 0``.
The tables describe an average adult; `Layout.draw` perturbs them per seed.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Layout", "VERTEBRAE", "FULL_RANGE_W"]

#: the default neck-to-upper-thigh range shown by a 600 mm field of view (body mm, w).
FULL_RANGE_W = (-40.0, 560.0)

# Vertebrae from caudal to cranial: (name, disc below (mm), body height (mm)).
VERTEBRAE = [
    ("S1", 0, 30), ("L5", 9, 24), ("L4", 9, 24), ("L3", 9, 24), ("L2", 8, 23), ("L1", 8, 22),
    ("T12", 7, 21), ("T11", 6, 20), ("T10", 6, 19), ("T9", 5, 18), ("T8", 5, 18), ("T7", 5, 17),
    ("T6", 5, 17), ("T5", 5, 16), ("T4", 4, 16), ("T3", 4, 16), ("T2", 4, 16), ("T1", 4, 15),
    ("C7", 4, 14), ("C6", 4, 13), ("C5", 4, 13), ("C4", 4, 13), ("C3", 4, 13), ("C2", 4, 20),
    ("C1", 3, 10),
]
_S1_BOTTOM = 65.0

# Body cross-section tables over w (mm). Cavity = inside of the trunk wall
# (thoracic + abdominal + pelvic cavities); the muscle and fat layers are
# added outside it, so organs keep their place when the patient is fatter.
_W = np.array([-60, -30, -10, 20, 60, 100, 140, 180, 230, 280, 330, 380, 430, 465, 490, 510, 525, 537, 546, 560, 700.0])
_CAV_A = np.array([0, 0, 35, 55, 75, 110, 130, 133, 133, 137, 140, 140, 136, 128, 116, 100, 80, 52, 0, 0, 0.0])
_CAV_ANT = np.array([0, 0, 40, 60, 75, 82, 88, 92, 98, 102, 100, 96, 90, 82, 72, 60, 46, 30, 0, 0, 0.0])
_CAV_POST = np.array([0, 0, 35, 45, 52, 55, 52, 55, 60, 68, 74, 77, 77, 75, 70, 62, 52, 36, 0, 0, 0.0])
_CAV_VC = np.array([5, 5, 5, 5, 4, 2, 0, 0, 0, 0, 2, 4, 4, 5, 5, 6, 6, 6, 6, 6, 6.0])
# muscle layer thickness outside the cavity (lateral, anterior, posterior)
_MUS_LAT = np.array([0, 0, 105, 95, 85, 45, 20, 15, 15, 18, 20, 20, 22, 28, 38, 55, 70, 85, 0, 0, 0.0])
_MUS_ANT = np.array([0, 0, 50, 38, 25, 16, 12, 11, 11, 12, 15, 18, 22, 24, 25, 28, 30, 31, 0, 0, 0.0])
_MUS_POST = np.array([0, 0, 65, 60, 55, 52, 48, 42, 40, 34, 30, 30, 30, 31, 32, 36, 40, 46, 0, 0, 0.0])
# subcutaneous fat thickness relative to the patient's base thickness
_FAT_REL = np.array([1.0, 1.0, 1.2, 1.3, 1.2, 1.1, 1.0, 1.05, 1.05, 0.9, 0.75, 0.7, 0.65, 0.62, 0.6, 0.55, 0.5, 0.45,
                     0.4, 0.35, 0.35])
# neck (w > 530): muscle cross-section half-axes and centre
_NECK_A, _NECK_ANT, _NECK_POST, _NECK_VC = 56.0, 50.0, 70.0, 4.0
# vertebral-body centre line (v) over w: lordosis, kyphosis, cervical lordosis
_SPINE_W = np.array([0, 30, 60, 90, 120, 150, 180, 215, 245, 275, 320, 370, 420, 470, 510, 540, 570, 650.0])
_SPINE_V = np.array([72, 62, 50, 38, 22, 12, 7, 7, 11, 17, 25, 30, 31, 28, 22, 14, 7, 6.0])


def _interp(w, table, scale_w=1.0):
    return np.interp(np.asarray(w, dtype=np.float64), _W * scale_w, table)


@dataclass
class Layout:
    """One patient's geometry, drawn from a seed (grid-independent).

    Attributes:
        phase: contrast phase, "non_contrast", "arterial" or "portal_venous".
        width, depth: cavity size factors (lateral, AP), ~1.
        fat: base subcutaneous fat thickness in mm.
        levels: vertebra name -> (w_bottom, w_top) of its body in mm.
        dome_right, dome_left: diaphragm dome apex heights (w, mm).
        scoliosis: (amplitude mm, phase) of a gentle lateral spine curve.
        rng: the generator every module draws its own parameters from, in a fixed order.
    """

    phase: str
    width: float
    depth: float
    fat: float
    levels: dict[str, tuple[float, float]]
    dome_right: float
    dome_left: float
    scoliosis: tuple[float, float]
    spine_scale: float
    rng: np.random.Generator = field(repr=False)

    @classmethod
    def draw(cls, rng: np.random.Generator, phase: str | None = None) -> "Layout":
        phases = ("non_contrast", "arterial", "portal_venous")
        drawn_phase = phases[int(rng.integers(3))]
        width = float(rng.uniform(0.92, 1.05))
        depth = float(rng.uniform(0.9, 1.08))
        fat = float(rng.uniform(6.0, 26.0))
        spine_scale = float(rng.uniform(0.9, 1.0))
        levels, w = {}, _S1_BOTTOM
        for name, disc, height in VERTEBRAE:
            w += disc * spine_scale
            h = height * spine_scale * float(rng.uniform(0.95, 1.05))
            levels[name] = (w, w + h)
            w += h
        dome_r = float(rng.uniform(335, 360)) * spine_scale
        dome_l = dome_r - float(rng.uniform(5, 20))
        scol = (float(rng.uniform(-4, 4)), float(rng.uniform(0, 2 * np.pi)))
        return cls(phase or drawn_phase, width, depth, fat, levels, dome_r, dome_l, scol, spine_scale, rng)

    # ------------------------------------------------------------------ profiles
    def cavity(self, w):
        """Cavity cross-section per w: (uc, vc, a, b_ant, b_post) arrays (mm)."""
        s = self.spine_scale
        a = _interp(w, _CAV_A, s) * self.width
        return (
            np.zeros_like(a),
            _interp(w, _CAV_VC, s),
            a,
            _interp(w, _CAV_ANT, s) * self.depth,
            _interp(w, _CAV_POST, s) * (0.5 + 0.5 * self.depth),
        )

    def muscle(self, w):
        """Outer surface of the trunk muscles (the fat/muscle boundary), as `cavity`."""
        s = self.spine_scale
        uc, vc, a, ba, bp = self.cavity(w)
        a = a + _interp(w, _MUS_LAT, s)
        ba = ba + _interp(w, _MUS_ANT, s)
        bp = bp + _interp(w, _MUS_POST, s)
        neck = np.clip((np.asarray(w) - 500 * s) / (25 * s), 0, 1)  # the neck rises out of the shoulders
        a = np.maximum(a, _NECK_A * neck * self.width)
        ba = np.maximum(ba, _NECK_ANT * neck)
        bp = np.maximum(bp, _NECK_POST * neck)
        vc = vc * (1 - neck) + _NECK_VC * neck
        return uc, vc, a, ba, bp

    def fat_thickness(self, w):
        """Subcutaneous fat thickness per w (mm), before its lateral/AP modulation."""
        return _interp(w, _FAT_REL, self.spine_scale) * self.fat

    def spine(self, w):
        """Vertebral-body centre (u, v) per w (mm)."""
        w = np.asarray(w, dtype=np.float64)
        amp, ph = self.scoliosis
        u = amp * np.sin(2 * np.pi * w / 500.0 + ph)
        v = np.interp(w, _SPINE_W * self.spine_scale, _SPINE_V) * (0.6 + 0.4 * self.depth)
        return u, v

    def level(self, name: str) -> float:
        """Mid-height w (mm) of a vertebral body."""
        lo, hi = self.levels[name]
        return 0.5 * (lo + hi)

    def dome(self, u, v):
        """Diaphragm height w (mm) at body position (u, v): two domes over a lower rim."""
        u = np.asarray(u, dtype=np.float32)
        v = np.asarray(v, dtype=np.float32)
        post = np.maximum(v - 20.0, 0.0) / 60.0
        ant = np.maximum(-v - 40.0, 0.0) / 60.0
        dv = ((v + 5.0) / 95.0) ** 2
        right = self.dome_right - 55.0 * ((u + 62.0) / 85.0) ** 2 - 35.0 * dv
        left = self.dome_left - 55.0 * ((u - 62.0) / 85.0) ** 2 - 35.0 * dv
        centre = self.dome_left - 22.0 - 25.0 * dv
        return np.maximum(np.maximum(right, left), centre) - 45.0 * post**2 - 15.0 * ant**2
