"""Tissue classes, their Hounsfield units per contrast phase, and the scanner model.

The phantom paints a *tissue* map beside the label map: a label says which
structure a voxel belongs to, a tissue says what it looks like (a kidney has
cortex and medulla, a vertebra cortical shell and cancellous core, the stomach
air and fluid). `render_ct` turns the tissue map into HU: table value + the
painted offsets (organ texture), then scanner noise and a reconstruction-kernel blur.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["T", "PHASES", "hu_table", "hu_ranges", "render_ct", "texture_amp"]

PHASES = ("non_contrast", "arterial", "portal_venous")


class T:
    """Tissue codes (uint8) of the tissue map."""

    AIR = 0
    TABLE = 1
    TABLE_CORE = 2
    FAT = 3
    VISCERAL_FAT = 4
    MUSCLE = 5
    SOFT = 6
    LUNG = 7
    LUNG_VESSEL = 8
    GAS = 9
    AIRWAY_WALL = 10
    ARTERY = 11
    VEIN = 12
    VEIN_UPPER = 13  # SVC, brachiocephalic: where the arm injection arrives first
    RIGHT_HEART = 14  # RA, RV, pulmonary trunk
    PORTAL = 15
    HEPATIC_VEIN = 16
    MYOCARDIUM = 17
    LIVER = 18
    SPLEEN = 19
    KIDNEY_CORTEX = 20
    KIDNEY_MEDULLA = 21
    PANCREAS = 22
    BILE = 23
    URINE = 24
    BOWEL_WALL = 25
    GI_FLUID = 26
    STOOL = 27
    CORTICAL = 28
    CANCELLOUS = 29
    MARROW = 30
    DISC = 31
    CARTILAGE = 32
    CSF = 33
    CORD = 34
    IVC_UPPER = 35  # supra-renal IVC: renal return enhances it earlier
    N = 36


# tissue: (non-contrast low, high, arterial enhancement, portal-venous enhancement, texture amplitude), HU.
# Non-contrast values are drawn per patient between low and high; the ranges cover the real scans in
# ../shared/data/real_ct and the usual literature values (docs/synthetic_data.md): e.g. back muscle
# 26 HU and a fatty pancreas at 0 HU in the real non-contrast scan, lean muscle 50-60 HU elsewhere.
# Enhancement is scaled per patient (contrast dose, timing) and per tissue (`hu_table`).
_TABLE = {
    T.AIR: (-1000, -1000, 0, 0, 0),
    T.TABLE: (250, 250, 0, 0, 0),
    T.TABLE_CORE: (-550, -550, 0, 0, 0),
    T.FAT: (-115, -92, 0, 0, 10),
    T.VISCERAL_FAT: (-108, -85, 0, 0, 14),
    T.MUSCLE: (20, 52, 5, 12, 8),  # low end: fatty infiltration (real back muscle 26 HU)
    T.SOFT: (25, 45, 10, 20, 10),
    T.LUNG: (-885, -790, 5, 5, 35),
    T.LUNG_VESSEL: (35, 45, 220, 110, 10),
    T.GAS: (-995, -985, 0, 0, 5),
    T.AIRWAY_WALL: (35, 45, 20, 20, 5),
    T.ARTERY: (35, 48, 290, 125, 6),
    T.VEIN: (35, 45, 35, 85, 6),
    T.VEIN_UPPER: (38, 46, 380, 130, 25),
    T.RIGHT_HEART: (38, 46, 240, 120, 12),
    T.PORTAL: (38, 46, 65, 115, 6),
    T.HEPATIC_VEIN: (33, 43, 17, 100, 5),
    T.MYOCARDIUM: (40, 50, 80, 65, 6),
    T.LIVER: (42, 65, 20, 50, 7),
    T.SPLEEN: (36, 52, 75, 60, 8),
    T.KIDNEY_CORTEX: (26, 40, 160, 140, 8),
    T.KIDNEY_MEDULLA: (22, 36, 40, 120, 8),
    T.PANCREAS: (0, 48, 70, 45, 14),
    T.BILE: (0, 15, 0, 2, 3),
    T.URINE: (0, 12, 0, 6, 3),
    T.BOWEL_WALL: (30, 45, 50, 60, 8),
    T.GI_FLUID: (5, 25, 0, 3, 10),
    T.STOOL: (-60, -60, 0, 0, 110),
    # one-voxel shell: a thin cortex seen through partial volume (real vertebrae 130-170 HU on average);
    # drawn with the cancellous value from one bone density per patient
    T.CORTICAL: (450, 850, 0, 0, 80),
    T.CANCELLOUS: (70, 210, 0, 5, 45),
    T.MARROW: (-30, 0, 5, 10, 25),
    T.DISC: (75, 95, 0, 5, 8),
    T.CARTILAGE: (100, 135, 5, 10, 15),
    T.CSF: (5, 15, 0, 0, 3),
    T.CORD: (25, 38, 3, 5, 3),
    T.IVC_UPPER: (38, 46, 90, 95, 20),
}
_BONE = (T.CORTICAL, T.CANCELLOUS)
CONTRAST_DOSE = (0.6, 1.2)  # per-patient factor on every enhancement (dose, injection rate, timing)
ORGAN_JITTER = 0.15  # per-tissue factor 1 ± this on top (individual perfusion)


def texture_amp(tissue: int) -> float:
    """Typical std (HU) of the low-frequency texture of a tissue."""
    return float(_TABLE[tissue][4])


def hu_ranges(phase: str) -> dict[int, tuple[float, float]]:
    """Lowest and highest mean HU `hu_table` can give each tissue in ``phase`` (for tests and docs)."""
    col = PHASES.index(phase)
    out = {}
    for t, (lo, hi, art, pv, _) in _TABLE.items():
        enh = (0.0, art, pv)[col]
        out[t] = (lo + enh * CONTRAST_DOSE[0] * (1 - ORGAN_JITTER), hi + enh * CONTRAST_DOSE[1] * (1 + ORGAN_JITTER))
    return out


def hu_table(phase: str, rng: np.random.Generator) -> np.ndarray:
    """Mean-HU lookup table (float32, indexed by tissue code) for one patient.

    Each tissue's non-contrast value is drawn from its range; the phase's enhancement is scaled by
    one contrast-dose factor per patient (`CONTRAST_DOSE`) and a per-tissue factor (1 ± `ORGAN_JITTER`),
    so organ contrasts differ between phantoms as between patients. Bone uses one density draw for the
    cortical and cancellous values together.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    col = PHASES.index(phase)
    mean = np.zeros(256, np.float32)
    dose = float(rng.uniform(*CONTRAST_DOSE))
    density = float(rng.uniform())
    for t, (lo, hi, art, pv, _) in _TABLE.items():
        u = density if t in _BONE else float(rng.uniform())
        enh = (0.0, art, pv)[col] * dose * float(rng.uniform(1 - ORGAN_JITTER, 1 + ORGAN_JITTER))
        mean[t] = lo + (hi - lo) * u + enh
    return mean


def render_ct(
    tissue: np.ndarray,
    offset: np.ndarray,
    mean: np.ndarray,
    rng: np.random.Generator,
    noise_hu: float,
    blur_vox,
    chunk: int = 16,
) -> np.ndarray:
    """Tissue map (z, y, x) uint8 -> int16 HU.

    Args:
        offset: float32 (z, y, x) HU added to the table value (organ texture,
            lung density gradient, bowel content); used as the work buffer.
        noise_hu: standard deviation of the final image noise in HU.
        blur_vox: Gaussian reconstruction-kernel sigma in voxels, one value or
            ``(z, y, x)`` (a thicker slice blurs more along z). White noise is
            added *before* the blur (scaled to end at ``noise_hu``) so the noise
            has the fine-grained correlated look of filtered back-projection, and
            edges get the same partial-volume ramp as in a scan.
        chunk: slices per block; blocks of a few MB keep the work in cache.
    """
    nz = tissue.shape[0]
    sig = np.broadcast_to(np.asarray(blur_vox, np.float64), (3,))
    hu = offset
    # std of white noise after a Gaussian blur drops by (2 sqrt(pi) sigma)^(1/2) per axis
    gain = np.float32(noise_hu * np.prod(np.sqrt(2.0 * np.sqrt(np.pi) * np.maximum(sig, 0.3))))
    for z0 in range(0, nz, chunk):
        blk = hu[z0 : z0 + chunk]
        blk += mean[tissue[z0 : z0 + chunk]]
        noise = rng.standard_normal(blk.shape, dtype=np.float32)
        noise *= gain
        blk += noise
    out = np.empty(tissue.shape, np.int16)
    truncate = 2.5
    halo = int(np.ceil(truncate * sig[0])) + 1  # the z kernel's reach into the neighbouring blocks
    tail = None  # unblurred last slices of the previous block
    for z0 in range(0, nz, chunk):
        z1 = min(z0 + chunk, nz)
        ahead = hu[z0 : min(z1 + halo, nz)]
        block = ahead.copy() if tail is None else np.concatenate([tail, ahead])
        lead = 0 if tail is None else len(tail)
        tail = hu[max(z1 - halo, z0) : z1].copy()
        ndi.gaussian_filter(block, tuple(sig), output=block, truncate=truncate)
        np.clip(block[lead : lead + z1 - z0], -1024, 3071, out=block[lead : lead + z1 - z0])
        out[z0:z1] = block[lead : lead + z1 - z0]
    return out
