"""`make_phantom`: rasterise one random patient on a grid and simulate its CT."""
from __future__ import annotations

import numpy as np

from ..volume import CTVolume
from . import arms as arm_module
from . import bowel, chest, muscles, organs, pelvis, ribcage, shoulder, spine, trunk, vessels
from .canvas import Canvas
from .frame import BodyGrid
from .intensities import PHASES, hu_table, render_ct
from .labels import PHANTOM_LABELS
from .layout import FULL_RANGE_W, Layout

__all__ = ["make_phantom"]

_REFERENCE_FOV_MM = 384.0  # an adult trunk (~340 mm wide) fills a 384 mm field of view
_ID_TO_NAME = {i: n for n, i in PHANTOM_LABELS.items()}
# labels that may legitimately lie in several pieces (or are too large to check cheaply)
_MULTI_PIECE = ("body", "subcutaneous_fat", "skeletal_muscle", "torso_fat", "costal_cartilages", "small_bowel", "colon")


def _check_args(seed, shape, spacing, phase, scale, arms):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes (z, y, x), each >= 8, got {shape}")
    spacing = tuple(float(s) for s in spacing)
    if len(spacing) != 3 or not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"spacing must be three positive mm values (z, y, x), got {spacing}")
    if phase is not None and phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES} or None (random), got {phase!r}")
    if scale is not None and not (0.2 <= float(scale) <= 2.0):
        raise ValueError(f"scale must be between 0.2 and 2.0 (1.0 = adult size) or None, got {scale!r}")
    if arms not in (None, True, False):
        raise ValueError(f"arms must be True (arms down beside the trunk), False or None (when the field of view "
                         f"is at least {arm_module.ARMS_FOV_MM:g} mm wide), got {arms!r}")
    return int(seed), shape, spacing


def make_phantom(
    seed: int,
    shape=(400, 256, 256),
    spacing=(1.5, 1.5, 1.5),
    *,
    phase: str | None = None,
    scale: float | None = None,
    arms: bool | None = None,
) -> tuple[CTVolume, np.ndarray, dict[int, str]]:
    """A synthetic whole-body CT (neck to upper thighs) with its label map.

    The anatomy is drawn from ``seed`` (sizes, shapes, positions, contrast phase),
    then rasterised on the requested grid. With the default 384 mm field of view
    the patient is adult size; a smaller field of view shows a proportionally
    smaller patient (``scale`` = physical mm per body mm) and, when the grid is
    shorter than the 600 mm neck-to-thigh range, a window centred near T12/L1
    (about T4 to S1 for 384 body-mm).

    Args:
        seed: non-negative integer; the same seed and grid give bit-identical arrays.
        shape: array shape ``(z, y, x)``.
        spacing: voxel size in mm per array axis ``(z, y, x)``.
        phase: "non_contrast", "arterial" or "portal_venous"; None draws one from the seed.
        scale: physical mm per body mm; None fits the body to the field of view (at most 1).
        arms: True paints the arms hanging beside the trunk (humeri, forearm bones, arm muscle and fat;
            `phantom.arms`), as in whole-body scans; False leaves them out (raised out of the field, as in
            most abdominal scans); None paints them when the left-right field of view is at least
            480 mm (``shape[2] * spacing[2]``), so a wide grid such as ``(400, 256, 352)`` at 1.5 mm shows
            them and the default 384-mm one does not. The rest of the phantom is the same either way, but for a
            few voxels of the shoulder blade where the humeral head meets it.

    Returns:
        ``(ct, labels, names)``: the CT (int16 HU, identity direction = LPS, origin
        at the corner so the grid is centred on the body), the uint8 label map
        ``(z, y, x)`` on the same grid (ids of `PHANTOM_LABELS`, 0 = outside the
        body), and ``{id: name}`` for exactly the ids present in ``labels``.

    Example:
        >>> ct, labels, names = make_phantom(0, shape=(64, 64, 64), spacing=(4.0, 4.0, 4.0))
        >>> ct.shape == labels.shape, names[5]
        (True, 'liver')
    """
    seed, shape, spacing = _check_args(seed, shape, spacing, phase, scale, arms)
    rng = np.random.default_rng(seed)
    lay = Layout.draw(rng, phase)
    scanner = np.random.default_rng([seed, 1])
    # scanner: noise and kernel sharpness span the real scans (docs/synthetic_data.md); slices are
    # thicker than the in-plane pixel in most scans, so z blurs up to 1.6x more
    noise_hu, blur_xy = float(scanner.uniform(5, 14)), float(scanner.uniform(0.5, 1.2))
    blur_vox = (blur_xy * float(scanner.uniform(1.0, 1.6)), blur_xy, blur_xy)
    centre_uvw = (rng.uniform(-6, 6), rng.uniform(-8, 8), 0.5 * sum(FULL_RANGE_W) + rng.uniform(-10, 10))
    if scale is None:
        fov_yx = min(shape[1] * spacing[1], shape[2] * spacing[2])
        scale = min(1.0, fov_yx / _REFERENCE_FOV_MM)
    grid = BodyGrid.centred(shape, spacing, float(scale), centre_uvw)
    cv = Canvas(grid, np.random.default_rng([seed, 2]))

    # Painting order is priority: each structure overwrites what it overlaps, so
    # the label map holds exactly one structure per voxel. Body wall and lungs
    # first, then muscles, gut, solid organs, heart, tubes, and bones last.
    cavity = trunk.paint_body(cv, lay)
    if arms or (arms is None and shape[2] * spacing[2] >= arm_module.ARMS_FOV_MM):
        arms = True  # their own stream: every other draw of this seed stays as it was
        arm_module.paint_arms(cv, lay, np.random.default_rng([seed, 3]))
    trunk.paint_table(cv, lay)
    trunk.paint_lungs(cv, lay, cavity)
    heads, r_head = pelvis.femur_heads(lay)
    marks = chest.heart_landmarks(lay)
    muscles.paint_back_muscles(cv, lay)
    muscles.paint_iliopsoas(cv, lay, heads)
    bowel.paint_bowel(cv, lay, np.random.default_rng([seed, 6]))  # own stream: the stomach's state
    marks.update(organs.paint_solid_organs(cv, lay, cavity))
    del cavity
    chest.paint_mediastinal_fat(cv, lay, marks)
    chest.paint_heart(cv, lay, marks)
    chest.paint_lung_trees(cv, lay, marks)
    tubes = chest.airway_tubes(lay) + vessels.veins(lay, marks, heads) + vessels.arteries(lay, marks, heads)
    vessels.paint_tubes(cv, tubes)
    verts = spine.paint_spine(cv, lay)
    spine.paint_sacrum(cv, lay, verts[0])
    shoulder.paint_scapulae(cv, lay, np.random.default_rng([seed, 5]))  # own stream, as the arms'
    ribcage.paint_ribcage(cv, lay, verts)
    pelvis.paint_hips(cv, lay, heads, r_head)
    pelvis.paint_femurs(cv, lay, heads, r_head)

    present = cv.absorb_fragments(skip=[PHANTOM_LABELS[n] for n in _MULTI_PIECE])
    mean = hu_table(lay.phase, scanner)
    hu = render_ct(cv.tissue, cv.offset, mean, scanner, noise_hu, blur_vox)
    # like a scanner: nothing is reconstructed outside the circular field of view
    ny, nx = shape[1:]
    yy = (np.arange(ny) - (ny - 1) / 2.0)[:, None] * spacing[1]
    xx = (np.arange(nx) - (nx - 1) / 2.0)[None, :] * spacing[2]
    # (with the arms in view, a field as wide as the grid: the scan was planned to hold them)
    radius = 0.5 * (max if arms else min)(ny * spacing[1], nx * spacing[2])
    outside = yy**2 + xx**2 > radius**2
    hu[:, outside] = -1024
    # ... nor labelled there (an arm cut by the field's edge, the skin fat of a wide trunk): a label on air would
    # teach the model a structure the image does not show
    cut = np.unique(cv.label[:, outside])
    cv.label[:, outside] = 0
    present = [i for i in present if i not in cut or (cv.label == i).any()]
    origin = tuple(-(n - 1) / 2.0 * s for n, s in zip(shape[::-1], spacing[::-1]))
    ct = CTVolume.from_array(hu, spacing=spacing, origin=origin)
    names = {i: _ID_TO_NAME[i] for i in present}
    return ct, cv.label, names
