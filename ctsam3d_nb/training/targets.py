"""Training targets beyond "one labelled structure": unions of structures and sub-parts of one.

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
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

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
