"""Training targets beyond "one labelled structure": unions of structures and sub-parts of one; and the
mask channels a sample may start from (a zoom-out step, a refine step, a leak into a neighbour, part of the
target at a face as an under-segmenting neighbour carries it into a grown patch: `partial_slab`).

An interactive model should learn "the region under the click, bounded by its edges", not only the
structures of one label map. Both kinds are chosen so that the image or the prompt says where the
target ends (a target without either only teaches the model to guess):

* unions (`UNION_GROUPS`): structures that meet along a boundary and form a whole a user asks for
  (two or three neighbouring vertebrae, the ribs of one side, the bony pelvis, the lobes of a lung,
  the aorto-iliac or caval-iliac tree, the gluteal muscles of one side);
* sub-parts (`subpart`): one connected piece of a structure that lies in several pieces in the
  patch (image support: the gap between the pieces), or one side of a plane cut across an elongated
  structure (a vessel, the bowel, a muscle). A cut has no image edge, so it is taught as an edit:
  the mask channel starts with the whole structure and the first click is the negative click on the
  part to drop, which is how a user asks for a segment of a tube; the click, not the image, sets
  the extent.

Contents targets (`contents_index`) are structures holding something darker than their bulk (gas in a stomach
or bowel loop, fatty marrow in a humerus or femur), their patch centred on it and their first click there
(`contents_in_patch`, against the whole structure's median): users click there, and a model that learned only
deepest-point clicks segments the bubble (`clicks.contents_click` is the same click for evaluation).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..anatomy import TS_V2_MAX_ID
from ..clicks import darker_contents, deepest_point
from ..patches import PATCH

SLAB_MM = (20.0, 90.0)  # thickness range of a scan-slab sample (both real CTs here are 40 and 90 mm thick)

_V = list(range(26, 51))  # vertebrae S1 (26) ... C1 (50), neighbours are adjacent ids

#: unions of structures drawn as one target (ontology ids); a group is used when at least two of its
#: members are in the patch
UNION_GROUPS: tuple[tuple[int, ...], ...] = (
    *(tuple(_V[i:i + 2]) for i in range(len(_V) - 1)),  # a vertebra and its neighbour
    *(tuple(_V[i:i + 3]) for i in range(0, len(_V) - 2, 2)),  # three neighbouring vertebrae
    tuple(range(92, 104)),  # the ribs of the left side
    tuple(range(104, 116)),  # the ribs of the right side
    (25, 77, 78),  # bony pelvis: sacrum and both hips
    (10, 11),  # left lung from its lobes (TotalSegmentator's lobes)
    (12, 13, 14),  # right lung from its lobes
    (52, 65, 66),  # aorta and common iliac arteries
    (63, 67, 68),  # inferior vena cava and iliac veins
    (80, 82, 84),  # gluteal muscles, left
    (81, 83, 85),  # gluteal muscles, right
)


#: structures whose darker contents are lesions of their own (TotalSegmentator labels kidney cysts apart; the
#: lesion samples teach a click on a liver or kidney lesion to give the lesion): never contents targets
NO_CONTENTS = (2, 3, 5)


def contents_index(vol, min_voxels: int = 4) -> dict:
    """``{label: (points, median)}`` of the TotalSegmentator structures of ``vol`` (a `pool.Volume`) that hold
    darker contents (`clicks.darker_contents`, on the 3 mm grid: at least ``min_voxels`` there): their contents'
    points (1.5 mm grid indices) and the structure's median; indexed on first use and cached on ``vol``."""
    if getattr(vol, "contents", None) is None:
        vol.contents = {}
        labels, image = vol.labels[::2, ::2, ::2], vol.image[::2, ::2, ::2]
        for label, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is None or label not in vol.points or label > TS_V2_MAX_ID or label in NO_CONTENTS:
                continue
            g = labels[box] == label
            median = float(np.median(image[box][g]))
            core = darker_contents(g, image[box], median=median)
            if core is not None and np.count_nonzero(core) >= min_voxels:
                vol.contents[label] = ((np.argwhere(core) + [s.start for s in box]) * 2, median)
    return vol.contents


#: the painting id of a contents sample's contents (ontology ids are 1..137, lesions' 201-209): domain
#: randomisation gives them an intensity of their own, as it gives lesions
CONTENTS_ID = 255


def paint_contents(labels: np.ndarray, dark: np.ndarray | None) -> np.ndarray:
    """``labels`` with the contents ``dark`` (or nothing, None) relabelled `CONTENTS_ID`, for intensity painting."""
    return labels if dark is None else np.where(dark, CONTENTS_ID, labels)


def contents_in_patch(target: np.ndarray, image: np.ndarray, median: float, rng, min_contrast: float = 0.4,
                      min_voxels: int = 27):
    """A contents sample's contents in its patch (``image`` before any intensity change), measured against the
    whole structure's ``median`` (a patch of a stomach may hold mostly its gas): ``(mask, click)``, the click a
    random voxel of them at least half as deep as their deepest (`clicks.deepest_point`) one voxel in from their
    edge, or None when fewer than ``min_voxels`` are left there."""
    dark = darker_contents(target, image, min_contrast, erode=False, median=median)  # median > 0: the index's
    core = ndimage.binary_erosion(dark)
    return dark, (deepest_point(core, rng=rng) if np.count_nonzero(core) >= min_voxels else None)


def slab_keep(target: np.ndarray, scale: float, rng, min_voxels: int, through: int | None = None):
    """A (64, 1, 1) bool mask of the patch's z slices a scan of limited coverage holds: `SLAB_MM` thick,
    through a random voxel of the target (or slice ``through``: a contents sample's click); None when it would
    keep the whole patch or too little target."""
    thick = int(round(rng.uniform(*SLAB_MM) / (1.5 * scale)))
    if thick >= PATCH:
        return None
    z = np.flatnonzero(target.any(axis=(1, 2)))
    lo = int(z[rng.integers(len(z))] if through is None else through) - int(rng.integers(thick))
    keep = np.zeros((PATCH, 1, 1), bool)
    keep[max(lo, 0):max(lo + thick, 1)] = True
    return keep if (target & keep).sum() >= min_voxels else None


def pick_union(present, rng) -> tuple[int, ...] | None:
    """A union group (the members in ``present``, a set of ids of the volume) with >= 2 members, or None."""
    groups = [tuple(i for i in g if i in present) for g in UNION_GROUPS]
    groups = [g for g in groups if len(g) >= 2]
    if not groups:
        return None
    return groups[rng.integers(len(groups))]


def _components(target, min_voxels):
    """The 26-connected components of ``target``: labels, and the ids and sizes of those >= ``min_voxels``."""
    lab, n = ndimage.label(target, np.ones((3, 3, 3)))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    big = np.flatnonzero(sizes >= min_voxels)
    return lab, [int(i) + 1 for i in big], sizes[big].astype(float)


def _elongated_cut(target, rng, min_voxels, min_elongation=2.5):
    """One side of a plane across the long axis of ``target``, or None if it is not elongated."""
    pts = np.argwhere(target)
    if len(pts) > 3000:
        pts = pts[rng.choice(len(pts), 3000, replace=False)]
    pts = pts - pts.mean(0)
    vals, vecs = np.linalg.eigh(np.cov(pts.T))
    if vals[1] <= 0 or np.sqrt(vals[2] / vals[1]) < min_elongation:
        return None
    axis = vecs[:, 2]
    proj = np.tensordot(np.indices(target.shape).astype(np.float32), axis.astype(np.float32), axes=(0, 0))
    cut = np.quantile(proj[target], rng.uniform(0.3, 0.7))
    side = proj < cut if rng.random() < 0.5 else proj >= cut
    part = target & side
    if min(part.sum(), (target & ~side).sum()) < max(min_voxels, 0.15 * target.sum()):
        return None
    return part


def subpart(target: np.ndarray, rng, min_voxels: int = 30):
    """A sub-part of the structure ``target`` (bool ``(z, y, x)`` patch) and how to start from it.

    Returns ``(part, prior, first)`` as in `~ctsam3d_nb.training.data.Sample`: a connected piece
    (``prior`` None, ``first`` "target": click the piece) or a plane cut of an elongated structure
    (``prior`` = the whole structure, ``first`` "error": the negative click on the dropped part);
    None when the structure offers neither.
    """
    lab, pieces, sizes = _components(target, min_voxels)
    cut = None
    if len(pieces) < 2 or rng.random() < 0.5:
        cut = _elongated_cut(target, rng, min_voxels)
    if cut is not None:
        return cut, target.astype(np.float32), "error"
    if len(pieces) >= 2:
        pick = pieces[rng.choice(len(pieces), p=sizes / sizes.sum())]
        return lab == pick, None, "target"
    return None


def zoom_prior(target: np.ndarray, rng):
    """A zoom-out step's mask channel: the finer level (half this voxel size in the predictor) found the part
    of the target inside its field, the central half of the patch here (26..43 of 64 voxels, for robustness);
    None when the target lies inside that field (it needed no zoom-out) or barely reaches it."""
    size = target.shape[0]
    side = int(round(size / rng.uniform(1.5, 2.5)))
    lo = (size - side) // 2
    prior = np.zeros_like(target)
    box = (slice(lo, lo + side),) * 3
    prior[box] = target[box]
    return prior.astype(np.float32) if 8 <= prior.sum() < target.sum() else None


def coarse_prior(target: np.ndarray, rng) -> np.ndarray:
    """A refine step's mask channel: the target as a level 2-4x coarser sees it, blurred back up and
    shifted a little (float32)."""
    k = int(rng.choice([2, 4]))
    coarse = ndimage.zoom(target.astype(np.float32), 1 / k, order=1)
    up = ndimage.zoom(coarse, np.asarray(target.shape) / np.asarray(coarse.shape), order=1)
    up = ndimage.shift(up, rng.uniform(-1, 1, 3) * k / 2, order=1, mode="constant")
    return np.clip(up, 0, 1).astype(np.float32)


def leak_prior(target: np.ndarray, labels: np.ndarray, rng, min_voxels: int = 30, max_ratio: float = 3.0):
    """The mask channel of a model that leaked from ``target`` into a structure touching it, or None.

    A promptable model's commonest error is to run on into a neighbour of similar intensity (the IVC into the
    right atrium, a vertebra into the next, the stomach into the spleen). The user's fix is a negative click in
    the neighbour, which must drop all of it, not a blob around the click; grown over many patches, most of
    the leak lies far from any click. Returned: ``target`` plus `neighbour_leak` as float32; the first click
    goes to the largest error (`~ctsam3d_nb.training.data.Sample` ``first="error"``): the negative click.
    """
    leak = neighbour_leak(target, labels, rng, min_voxels, max_ratio)
    return None if leak is None else (target | leak).astype(np.float32)


def neighbour_leak(target: np.ndarray, labels: np.ndarray, rng, min_voxels: int = 30, max_ratio: float = 3.0):
    """Where a mask leaking from ``target`` runs on (bool), or None: one structure touching it (``labels`` id > 0,
    drawn by contact area), whole or, half of the time or when it is more than ``max_ratio`` times the target,
    only within 6-24 voxels of the target (a leak on its way in); None when no neighbour gives ``min_voxels``
    (and 5 % of the target)."""
    ring = ndimage.binary_dilation(target, iterations=2) & ~target
    ids, contact = np.unique(labels[ring], return_counts=True)
    contact, ids = contact[ids > 0], ids[ids > 0]
    if not len(ids):
        return None
    leak = (labels == ids[rng.choice(len(ids), p=contact / contact.sum())]) & ~target
    n = int(target.sum())
    if rng.random() < 0.5 or leak.sum() > max_ratio * n:
        leak &= ndimage.distance_transform_edt(~target) <= rng.uniform(6, 24)
    if leak.sum() < max(min_voxels, 0.05 * n):
        return None
    return leak


def partial_slab(slab: np.ndarray, rng, keep=(0.2, 0.9)) -> np.ndarray:
    """Part of a target's face slab, as an under-segmenting neighbour carries it into a grown patch: the target's
    voxels within a ball around one of them, holding a ``keep`` share (drawn uniformly) of them."""
    pts = np.argwhere(slab)
    if len(pts) < 2:
        return slab
    dist = np.sum((pts - pts[rng.integers(len(pts))]) ** 2, axis=1)
    kept = pts[dist <= np.quantile(dist, rng.uniform(*keep))]
    out = np.zeros_like(slab, dtype=bool)
    out[tuple(kept.T)] = True
    return out
