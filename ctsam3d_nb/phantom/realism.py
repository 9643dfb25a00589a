"""Image statistics that compare phantoms with real CT: the measurements behind docs/synthetic_data.md.

Every function takes HU and label arrays ``(z, y, x)`` on an isotropic grid (1.5 mm in practice:
resample real scans with `ctsam3d_nb.grid.ModelGrid`) and a structure *group* from `GROUPS`, which
names the label ids of that structure in real TotalSegmentator v2 maps and in phantom maps (they
differ only for the lungs: real maps hold lobes, the phantom a left and a right lung).

Example:
    >>> import numpy as np
    >>> hu = np.full((20, 20, 20), 50.0, np.float32); lab = np.zeros(hu.shape, np.uint8); lab[4:16, 4:16, 4:16] = 5
    >>> round(hu_stats(hu, lab, GROUPS["liver"].real)["mean"], 1)
    50.0
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..masks import bounding_box

__all__ = ["Group", "GROUPS", "interior", "hu_stats", "noise_stats", "noise_power_spectrum", "edge_profile",
           "rise_distance_mm", "ring_median"]


@dataclass(frozen=True)
class Group:
    """A structure measured in both kinds of scan: label ids in real maps and in phantom maps."""

    real: tuple[int, ...]
    phantom: tuple[int, ...]

    def ids(self, kind: str) -> tuple[int, ...]:
        """``kind``: "real" or "phantom"."""
        return self.real if kind == "real" else self.phantom


def _g(*ids, phantom=None) -> Group:
    return Group(tuple(ids), tuple(ids) if phantom is None else tuple(phantom))


_VERTEBRAE = tuple(range(26, 51))
_RIBS = tuple(range(92, 116))
#: structures present in both the real label maps and the phantom (ids: TotalSegmentator v2)
GROUPS: dict[str, Group] = {
    "liver": _g(5),
    "spleen": _g(1),
    "kidneys": _g(2, 3),
    "gallbladder": _g(4),
    "pancreas": _g(7),
    "stomach": _g(6),
    "small_bowel": _g(18),
    "colon": _g(20),
    "aorta": _g(52),
    "inferior_vena_cava": _g(63),
    "portal_vein": _g(64),
    "vertebrae": _g(*_VERTEBRAE),
    "ribs": _g(*_RIBS),
    "costal_cartilages": _g(117),
    "spinal_cord": _g(79),
    "autochthon": _g(86, 87),
    "iliopsoas": _g(88, 89),
    "lung": _g(10, 11, 12, 13, 14, phantom=(122, 123)),
}


def interior(labels: np.ndarray, ids, erode: int = 2, min_voxels: int = 50) -> np.ndarray:
    """Voxels of ``ids`` at least ``erode`` voxels from the structure's surface (partial volume left out);
    the whole structure when the eroded one has fewer than ``min_voxels`` voxels."""
    m = np.isin(labels, ids)
    if erode <= 0 or not m.any():
        return m
    box = bounding_box(m, 1)
    e = np.zeros_like(m)
    e[box] = ndi.binary_erosion(m[box], iterations=erode)
    return e if e.sum() >= min_voxels else m


def hu_stats(hu: np.ndarray, labels: np.ndarray, ids, erode: int = 2) -> dict[str, float]:
    """Mean, std and 5/25/50/75/95th percentiles of HU inside ``ids`` (eroded); NaNs when absent."""
    v = hu[interior(labels, ids, erode)]
    keys = ("mean", "std", "p5", "p25", "p50", "p75", "p95", "n")
    if v.size == 0:
        return dict.fromkeys(keys, float("nan"))
    p = np.percentile(v, [5, 25, 50, 75, 95])
    return dict(zip(keys, (float(v.mean()), float(v.std()), *map(float, p), float(v.size))))


def noise_stats(hu: np.ndarray, labels: np.ndarray, ids, sigma_vox: float = 2.0, erode: int = 3) -> dict[str, float]:
    """Fine-grain texture/noise inside a homogeneous structure.

    The residual ``hu - gaussian(hu, sigma_vox)`` keeps what varies faster than ~``sigma_vox`` voxels
    (scanner noise, fine texture). Returns its std (HU) and its correlation with the neighbour one
    voxel away along x, y and z (averaged): ~0 for white noise, towards 1 for blotchy, correlated noise.
    """
    m = interior(labels, ids, erode, min_voxels=200)
    if m.sum() < 200:
        return {"hp_std": float("nan"), "acf1": float("nan")}
    a = hu.astype(np.float32)
    r = a - ndi.gaussian_filter(a, sigma_vox)
    acf = []
    for ax in range(3):
        lo = [slice(None)] * 3
        hi = [slice(None)] * 3
        lo[ax], hi[ax] = slice(0, -1), slice(1, None)
        both = m[tuple(lo)] & m[tuple(hi)]
        x, y = r[tuple(lo)][both], r[tuple(hi)][both]
        acf.append(float(np.corrcoef(x, y)[0, 1]))
    return {"hp_std": float(r[m].std()), "acf1": float(np.mean(acf))}


def noise_power_spectrum(hu: np.ndarray, labels: np.ndarray, ids, spacing_mm: float, patch: int = 16,
                         erode: int = 2, max_patches: int = 400) -> tuple[np.ndarray, np.ndarray] | None:
    """Radially averaged 2D (axial) power spectrum of organ interiors.

    Square ``patch`` x ``patch`` axial patches lying wholly inside the eroded structure are
    detrended (a plane fit removes the organ's slow gradient), Hann-windowed and Fourier transformed.

    Returns:
        ``(freq, power)``: bin centres in cycles/mm and the mean power (HU² mm²) per bin, or None
        when no patch fits.
    """
    m = interior(labels, ids, erode, min_voxels=1)
    inside = ndi.uniform_filter(m.astype(np.float32), size=(1, patch, patch)) > 0.999
    corners = np.argwhere(inside[:, patch // 2 : -patch // 2 + 1 or None, patch // 2 : -patch // 2 + 1 or None])
    if len(corners) == 0:
        return None
    step = max(1, len(corners) // max_patches)
    win = np.outer(np.hanning(patch), np.hanning(patch)).astype(np.float32)
    yy, xx = np.mgrid[:patch, :patch].astype(np.float32)
    design = np.stack([np.ones(patch * patch, np.float32), yy.ravel(), xx.ravel()], 1)
    acc = np.zeros((patch, patch))
    used = 0
    # greedy non-overlap along the sampled list keeps patches from repeating the same voxels
    taken = np.zeros(m.shape, bool)
    for z, y, x in corners[::step]:
        if taken[z, y + patch // 2, x + patch // 2]:
            continue
        p = hu[z, y : y + patch, x : x + patch].astype(np.float32)
        coef, *_ = np.linalg.lstsq(design, p.ravel(), rcond=None)
        p = p - (design @ coef).reshape(patch, patch)
        acc += np.abs(np.fft.fft2(p * win)) ** 2
        taken[z, y : y + patch, x : x + patch] = True
        used += 1
    nps = np.fft.fftshift(acc / used) * spacing_mm**2 / float((win**2).sum())
    f = np.fft.fftshift(np.fft.fftfreq(patch, spacing_mm))
    fr = np.hypot(*np.meshgrid(f, f, indexing="ij"))
    edges = np.linspace(0, 0.5 / spacing_mm, patch // 2 + 1)
    which = np.digitize(fr.ravel(), edges) - 1
    ok = (which >= 0) & (which < len(edges) - 1)
    power = np.bincount(which[ok], nps.ravel()[ok], len(edges) - 1) / np.maximum(
        np.bincount(which[ok], minlength=len(edges) - 1), 1)
    return 0.5 * (edges[1:] + edges[:-1]), power


def edge_profile(hu: np.ndarray, mask: np.ndarray, spacing_mm: float, reach_mm: float = 9.0,
                 bin_mm: float = 0.75) -> tuple[np.ndarray, np.ndarray]:
    """Mean HU against signed distance to the surface of ``mask`` (negative inside): an edge-spread
    function averaged over the whole surface. Returns ``(distance_mm, mean_hu)`` per bin (NaN if empty)."""
    box = bounding_box(mask, int(np.ceil(reach_mm / spacing_mm)) + 1)
    hu, mask = hu[box], mask[box]
    d_out = ndi.distance_transform_edt(~mask) * spacing_mm
    d_in = ndi.distance_transform_edt(mask) * spacing_mm
    # voxel centres sit half a voxel from the surface between them
    d = np.where(mask, -(d_in - 0.5 * spacing_mm), d_out - 0.5 * spacing_mm)
    near = np.abs(d) <= reach_mm
    edges = np.arange(-reach_mm, reach_mm + bin_mm, bin_mm)
    which = np.digitize(d[near], edges) - 1
    n = np.bincount(which, minlength=len(edges) - 1)[: len(edges) - 1]
    s = np.bincount(which, hu[near].astype(np.float64), minlength=len(edges) - 1)[: len(edges) - 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * (edges[1:] + edges[:-1]), s / n


def rise_distance_mm(dist: np.ndarray, prof: np.ndarray, plateau_mm: float = 4.5) -> float:
    """10-90 % rise distance (mm) of an edge profile from `edge_profile`.

    The plateaus are the profile's medians beyond ``plateau_mm`` on either side; the 10 % and 90 %
    crossings are found by linear interpolation walking outwards from the surface.
    """
    ok = np.isfinite(prof)
    dist, prof = dist[ok], prof[ok]
    lo, hi = np.median(prof[dist <= -plateau_mm]), np.median(prof[dist >= plateau_mm])
    if not np.isfinite(lo - hi) or abs(hi - lo) < 1e-6:
        return float("nan")
    t = (prof - lo) / (hi - lo)  # 0 inside -> 1 outside
    t = np.maximum.accumulate(np.clip(t, 0, 1))  # monotone: small wiggles cannot create crossings

    def cross(level):
        return float(np.interp(level, t + np.arange(len(t)) * 1e-9, dist))

    return cross(0.9) - cross(0.1)


def ring_median(hu: np.ndarray, labels: np.ndarray, ids, inner_vox: int = 2, outer_vox: int = 4,
                exclude=()) -> float:
    """Median HU in a shell ``inner_vox``..``outer_vox`` voxels outside ``ids`` (the structure's
    surroundings), leaving out voxels of ``exclude`` ids (e.g. neighbouring bone)."""
    m = np.isin(labels, ids)
    if not m.any():
        return float("nan")
    box = bounding_box(m, outer_vox + 1)
    hu, labels, m = hu[box], labels[box], m[box]
    shell = ndi.binary_dilation(m, iterations=outer_vox) & ~ndi.binary_dilation(m, iterations=inner_vox)
    if len(exclude):
        shell &= ~np.isin(labels, exclude)
    return float(np.median(hu[shell])) if shell.any() else float("nan")
