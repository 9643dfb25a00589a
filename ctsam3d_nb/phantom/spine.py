"""Spine: vertebrae (body + neural arch + processes), discs, canal, spinal cord, sacrum."""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .canvas import Canvas
from .intensities import T
from .layout import VERTEBRAE, Layout
from .shapes import spline_path, swept_ellipse, tube

__all__ = ["Vertebra", "paint_bone", "paint_sacrum", "paint_spine", "vertebrae_geometry"]

# per region, by vertebra index 0 (S1) .. 24 (C1):
# body half-width, body half-depth, canal radius, arch thickness, spinous length,
# spinous drop (mm down at its tip), transverse-process reach from the midline
_KEY_IDX = [0, 1, 5, 6, 12, 17, 18, 22, 24]
_KEY = np.array([
    # Rx   Ry   rc   arch  sp_len drop  tp
    [26, 18, 9.0, 7.0, 22, 4, 40],  # S1
    [25, 17.5, 9.5, 7.0, 30, 6, 46],  # L5
    [22, 16, 9.0, 6.5, 30, 6, 42],  # L1
    [20, 15.5, 8.0, 6.0, 32, 8, 36],  # T12
    [16, 13.5, 7.5, 5.5, 34, 10, 33],  # T6
    [14, 11.5, 7.5, 5.0, 32, 8, 34],  # T1
    [12, 9.0, 8.0, 4.5, 30, 5, 27],  # C7
    [10, 8.0, 8.5, 4.0, 20, 3, 24],  # C3
    [9, 7.0, 9.0, 4.0, 12, 2, 30],  # C1
], dtype=np.float64)


class Vertebra:
    """One vertebra's frame and size (body mm). ``axes`` rows: lateral, AP, axial unit vectors."""

    def __init__(self, name, idx, centre, axes, height, dims):
        self.name, self.idx = name, idx
        self.centre, self.axes, self.height = np.asarray(centre), np.asarray(axes), float(height)
        self.rx, self.ry, self.rc, self.arch, self.sp_len, self.sp_drop, self.tp = dims

    @property
    def canal_y(self) -> float:
        """Distance (mm) from the body centre to the canal centre, along the AP axis."""
        return 0.8 * self.ry + self.rc

    def to_body(self, local) -> np.ndarray:
        """Local (x lateral, y posterior, z superior) mm -> body (u, v, w) mm."""
        return self.centre + np.asarray(local, dtype=np.float64) @ self.axes


def vertebrae_geometry(lay: Layout) -> list[Vertebra]:
    """Frames of S1..C1 from the layout's levels and spine curve (caudal to cranial)."""
    out = []
    for i, (name, _, _) in enumerate(VERTEBRAE):
        lo, hi = lay.levels[name]
        w = 0.5 * (lo + hi)
        u, v = lay.spine(np.array([w - 5, w, w + 5]))
        tangent = np.array([u[2] - u[0], v[2] - v[0], 10.0])
        ez = tangent / np.linalg.norm(tangent)
        ey = np.array([0.0, 1.0, 0.0]) - ez * ez[1]
        ey /= np.linalg.norm(ey)
        ex = np.cross(ey, ez)
        dims = [np.interp(i, _KEY_IDX, _KEY[:, c]) * (0.9 + 0.1 * lay.spine_scale) for c in range(7)]
        out.append(Vertebra(name, i, (u[1], v[1], w), np.stack([ex, ey, ez]), hi - lo, dims))
    return out


def paint_bone(cv: Canvas, box, mask: np.ndarray, name: str, marrow: int = T.CANCELLOUS, only=None):
    """Paint a bone: cancellous (or marrow) core with a one-voxel cortical shell (``only``: as `Canvas.paint`)."""
    if box is None or not mask.any():
        return
    cv.paint(box, mask, name, marrow, only=only)
    if only is not None:
        mask = mask & (cv.label[box] == cv.label_id(name))
    shell = mask & ~ndi.binary_erosion(mask)
    cv.set_tissue(box, shell, T.CORTICAL)


def _local(cv: Canvas, vt: Vertebra, lo_local, hi_local):
    """Box around a vertebra and the local coordinates (x, y, z) of its voxels."""
    corners = np.array([[x, y, z] for x in (lo_local[0], hi_local[0]) for y in (lo_local[1], hi_local[1])
                        for z in (lo_local[2], hi_local[2])])
    pts = vt.to_body(corners)
    box = cv.grid.box(pts.min(0), pts.max(0))
    if box is None:
        return None, None
    w, v, u = cv.grid.axes(box)
    d = (u - vt.centre[0], v - vt.centre[1], w - vt.centre[2])
    xyz = [sum(d[k] * np.float32(vt.axes[r, k]) for k in range(3)) for r in range(3)]
    return box, xyz


def _capsule(x, y, z, a, b, r):
    """Boolean capsule between local points a and b, radius r."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    d = b - a
    t = np.clip(((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / float(d @ d), 0, 1)
    return (x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (z - a[2] - t * d[2]) ** 2 < r * r


def _vertebra_mask(vt: Vertebra, x, y, z):
    h2 = vt.height / 2
    waist = 1.0 - 0.07 * (1.0 - (z / h2) ** 2)
    body = ((x / (vt.rx * waist)) ** 2 + (y / (vt.ry * waist)) ** 2 < 1) & (y < 0.8 * vt.ry) & (np.abs(z) < h2)
    if vt.name == "C1":
        body = ((x / vt.rx) ** 2 + ((y + 0.6 * vt.ry) / (0.35 * vt.ry)) ** 2 < 1) & (np.abs(z) < h2)
    yc, rc, t = vt.canal_y, vt.rc, vt.arch
    rr = x**2 + (y - yc) ** 2
    arch_h = 0.38 * vt.height
    ring = (rr > rc**2) & (rr < (rc + t) ** 2) & (y > 0.55 * vt.ry) & (np.abs(z - 0.05 * vt.height) < arch_h)
    m = body | ring
    back = yc + rc + 0.6 * t
    r_sp = 0.45 * t + 1.5
    m |= _capsule(x, y, z, (0, back, 0), (0, back + vt.sp_len, -vt.sp_drop), r_sp)
    r_tp = 0.35 * t + 2.0
    tp_y = yc - 0.3 * rc if vt.idx >= 18 else yc + 0.2 * rc  # cervical TPs sit forward
    if vt.name == "S1":  # sacral alae: broad wings out to the sacroiliac joints
        r_tp, tp_y = 9.0, 0.3 * vt.ry
    for s in (-1, 1):
        start = (s * (rc + 0.5 * t), yc, 0.05 * vt.height)
        end = (s * vt.tp, tp_y + (8.0 if 6 <= vt.idx < 18 else 0.0), 0.05 * vt.height)
        m |= _capsule(x, y, z, start, end, r_tp)
    if vt.name == "C2":  # the dens reaches up into the ring of C1
        m |= _capsule(x, y, z, (0, 0, 0), (0, -0.2 * vt.ry, h2 + 12), 5.0)
    return m


def paint_spine(cv: Canvas, lay: Layout) -> list[Vertebra]:
    """Paint discs, spinal canal, vertebrae S1..C1 (each its own label) and the cord."""
    verts = vertebrae_geometry(lay)
    # discs: a cylinder over each body extended half a disc up and down
    for vt in verts[1:]:
        box, xyz = _local(cv, vt, (-vt.rx, -vt.ry, -vt.height), (vt.rx, vt.ry, vt.height))
        if box is None:
            continue
        x, y, z = xyz
        reach = vt.height / 2 + 6.0
        disc = ((x / vt.rx) ** 2 + (y / vt.ry) ** 2 < 0.95) & (y < 0.8 * vt.ry) & (np.abs(z) < reach)
        cv.paint(box, disc, "body", T.DISC)
    # canal (CSF) along the canal centres
    canal = np.array([vt.to_body((0, vt.canal_y, 0)) for vt in verts])
    radii = np.array([vt.rc for vt in verts])
    pts, rad = spline_path(canal, radii, step=4.0)
    res = tube(cv.grid, pts, rad)
    if res is not None:
        cv.paint(res[0], res[1] < 1, "body", T.CSF)
    for vt in verts:
        lo = (-vt.tp - 8, -vt.ry - 2, -vt.height / 2 - vt.sp_drop - 8)
        hi = (vt.tp + 8, vt.canal_y + vt.rc + vt.arch + vt.sp_len + 8, vt.height / 2 + (14 if vt.name == "C2" else 4))
        box, xyz = _local(cv, vt, lo, hi)
        if box is None:
            continue
        x, y, z = xyz
        paint_bone(cv, box, _vertebra_mask(vt, x, y, z), f"vertebrae_{vt.name}")
    # spinal cord: from the top down to the conus at L1/L2, only inside the canal
    conus = lay.levels["L1"][0]
    keep = pts[:, 2] > conus
    if keep.sum() >= 2:
        r = np.interp(pts[keep, 2], [conus, conus + 40, 500, 560], [1.5, 4.5, 4.5, 6.0])
        res = tube(cv.grid, pts[keep], r)
        if res is not None:
            cv.paint(res[0], res[1] < 1, "spinal_cord", T.CORD, only=["body"])
    return verts


def paint_sacrum(cv: Canvas, lay: Layout, s1: Vertebra):
    """Sacrum below S1: a curved plate tapering to the coccyx, with alae at S1."""
    g = cv.grid
    top = s1.centre[2] - s1.height / 2 - 1.0
    bottom = top - 70.0 * lay.spine_scale
    box = g.box((-60, -20, bottom), (60, 120, top))
    if box is None:
        return
    w = g.w[box[0]].astype(np.float64)
    t = (top - w) / (top - bottom)  # 0 at S1, 1 at the tip
    _, vs = lay.spine(w)
    vc = vs + 10 * t
    half_w = 48 * (1 - t) ** 0.8 + 8
    thick = 16 * (1 - t) + 5
    f = swept_ellipse(g, box, np.zeros_like(w), vc, half_w, thick, thick, 2.4)
    paint_bone(cv, box, f < 1, "sacrum")
