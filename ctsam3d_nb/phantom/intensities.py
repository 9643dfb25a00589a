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

__all__ = ["T", "PHASES", "hu_table", "render_ct", "texture_amp"]

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


# tissue: (non_contrast, arterial, portal_venous, texture amplitude HU)
_TABLE = {
    T.AIR: (-1000, -1000, -1000, 0),
    T.TABLE: (250, 250, 250, 0),
    T.TABLE_CORE: (-550, -550, -550, 0),
    T.FAT: (-105, -105, -105, 10),
    T.VISCERAL_FAT: (-95, -95, -95, 14),
    T.MUSCLE: (50, 55, 62, 8),
    T.SOFT: (35, 45, 55, 10),
    T.LUNG: (-860, -855, -855, 35),
    T.LUNG_VESSEL: (40, 260, 150, 10),
    T.GAS: (-990, -990, -990, 5),
    T.AIRWAY_WALL: (40, 60, 60, 5),
    T.ARTERY: (42, 330, 165, 6),
    T.VEIN: (40, 75, 160, 6),
    T.VEIN_UPPER: (42, 420, 170, 25),
    T.RIGHT_HEART: (42, 280, 160, 12),
    T.PORTAL: (42, 110, 185, 6),
    T.HEPATIC_VEIN: (38, 55, 165, 5),
    T.MYOCARDIUM: (45, 125, 110, 6),
    T.LIVER: (58, 78, 112, 7),
    T.SPLEEN: (48, 125, 122, 8),
    T.KIDNEY_CORTEX: (32, 195, 175, 8),
    T.KIDNEY_MEDULLA: (28, 70, 150, 8),
    T.PANCREAS: (42, 115, 95, 14),
    T.BILE: (8, 8, 10, 3),
    T.URINE: (6, 6, 12, 3),
    T.BOWEL_WALL: (38, 90, 100, 8),
    T.GI_FLUID: (15, 15, 18, 10),
    T.STOOL: (-60, -60, -60, 110),
    T.CORTICAL: (900, 900, 900, 80),
    T.CANCELLOUS: (240, 245, 250, 45),
    T.MARROW: (-20, -15, -10, 25),
    T.DISC: (85, 85, 90, 8),
    T.CARTILAGE: (120, 125, 130, 15),
    T.CSF: (12, 12, 12, 3),
    T.CORD: (35, 38, 40, 3),
    T.IVC_UPPER: (40, 130, 160, 20),
}


def texture_amp(tissue: int) -> float:
    """Typical std (HU) of the low-frequency texture of a tissue."""
    return float(_TABLE[tissue][3])


def hu_table(phase: str, rng: np.random.Generator) -> np.ndarray:
    """Mean-HU lookup table (float32, indexed by tissue code) for one patient.

    Means are jittered per patient (±5 % of the contrast enhancement, bone density
    ±15 %) so that no two phantoms have identical intensities.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    col = PHASES.index(phase)
    mean = np.zeros(256, np.float32)
    bone = float(rng.uniform(0.85, 1.15))
    for t, row in _TABLE.items():
        base, value = row[0], row[col]
        jitter = float(rng.uniform(0.9, 1.1))
        mean[t] = base + (value - base) * jitter
    mean[T.CANCELLOUS] *= bone
    mean[T.CORTICAL] = 700 + (mean[T.CORTICAL] - 700) * bone
    return mean


def render_ct(
    tissue: np.ndarray,
    offset: np.ndarray,
    mean: np.ndarray,
    rng: np.random.Generator,
    noise_hu: float,
    blur_vox: float,
    chunk: int = 16,
) -> np.ndarray:
    """Tissue map (z, y, x) uint8 -> int16 HU.

    Args:
        offset: float32 (z, y, x) HU added to the table value (organ texture,
            lung density gradient, bowel content); used as the work buffer.
        noise_hu: standard deviation of the final image noise in HU.
        blur_vox: Gaussian reconstruction-kernel sigma in voxels. White noise is
            added *before* the blur (scaled to end at ``noise_hu``) so the noise
            has the fine-grained correlated look of filtered back-projection.
        chunk: slices per block; blocks of a few MB keep the work in cache.
    """
    nz = tissue.shape[0]
    hu = offset
    # std of white noise after a 3D Gaussian blur drops by (2 sqrt(pi) sigma)^(3/2)
    gain = np.float32(noise_hu * (2.0 * np.sqrt(np.pi) * max(blur_vox, 0.3)) ** 1.5)
    for z0 in range(0, nz, chunk):
        blk = hu[z0 : z0 + chunk]
        blk += mean[tissue[z0 : z0 + chunk]]
        noise = rng.standard_normal(blk.shape, dtype=np.float32)
        noise *= gain
        blk += noise
    out = np.empty(tissue.shape, np.int16)
    halo = 3
    tail = None  # unblurred last slices of the previous block
    for z0 in range(0, nz, chunk):
        z1 = min(z0 + chunk, nz)
        ahead = hu[z0 : min(z1 + halo, nz)]
        block = ahead.copy() if tail is None else np.concatenate([tail, ahead])
        lead = 0 if tail is None else len(tail)
        tail = hu[max(z1 - halo, z0) : z1].copy()
        ndi.gaussian_filter(block, blur_vox, output=block, truncate=2.5)
        np.clip(block[lead : lead + z1 - z0], -1024, 3071, out=block[lead : lead + z1 - z0])
        out[z0:z1] = block[lead : lead + z1 - z0]
    return out
