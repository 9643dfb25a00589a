"""How a click reaches beyond one 64³ patch: zoom-out then refine, or cross-patch growth.

Functions of a :class:`~ctsam3d_nb.predictor.Predictor` (``pred``), called from its click path;
they run the model through ``pred.net`` (:class:`~ctsam3d_nb.patch_model.PatchModel`) and write
probabilities into the object's :class:`~ctsam3d_nb.patches.LevelMasks`.
"""
from __future__ import annotations

import time
from collections import deque

import numpy as np
from scipy import ndimage

from . import patches as P
from .clicks import deepest_point
from .modeling.cpp import heatmap_to_clicks
from .predictor_state import ObjectState

__all__ = ["zoom", "grow", "retract", "surface_tiles", "keep_connected"]


def zoom(pred, obj: ObjectState, g, prob, timing):
    """Zoom out while the mask touches the patch faces, then refine the coarse mask's surface.

    Returns the level factor the object was found at and the one it was refined at (None if
    nothing was refined)."""
    s, thr = pred.settings, pred.threshold
    found = 1
    for f in s.levels[1:]:
        if not P.neighbour_faces(prob.astype(np.float32), thr):
            break  # the object fits in the field of this level
        origin = P.origin_for(np.asarray(g) / f)
        t = time.perf_counter()
        coarse = pred.net.decode(origin, pred._prompt(obj, origin, factor=f), f)
        timing["decode"] += time.perf_counter() - t
        if s.zoom_min_agreement > 0 and not _agrees(pred, obj, f, origin, coarse, found):
            break  # the coarse view contradicts the finer mask (a leak, or another structure): keep the finer
        obj.masks.level(f).probs[origin] = prob = coarse
        found = f
    if found == 1:
        return 1, 1
    t = time.perf_counter()
    finer = [f for f in s.levels if f < found]
    for f in finer:  # the finest level whose surface patches fit the budget ...
        tiles = surface_tiles(pred, obj, f)
        if len(tiles) <= s.refine_budget:
            break
    else:  # ... or the budget's worth of the surface nearest the click, on the level below the found one
        f = finer[-1]
        tiles = surface_tiles(pred, obj, f)
        if not tiles or not s.refine_budget:
            return found, None
        centre = np.asarray(g) / f - (P.PATCH - 1) / 2
        tiles = sorted(tiles, key=lambda o: float(np.sum((np.asarray(o) - centre) ** 2)))[: s.refine_budget]
    if tiles:
        items = [(f, o, pred._prompt(obj, o, factor=f)) for o in tiles]  # all priors before any update
        timing["refine_select"] = time.perf_counter() - t
        t = time.perf_counter()
        for (_, o, _), prob in zip(items, pred.net.decode_many(items)):
            obj.masks.level(f).probs[o] = prob
        timing["decode"] += time.perf_counter() - t
    return found, f

def _agrees(pred, obj: ObjectState, factor: int, origin, coarse, finer: int) -> bool:
    """Does a coarse patch's mask continue the object's mask so far (on level ``finer``) where both see?"""
    lo = np.asarray(origin)
    now = obj.masks.view(factor, lo, lo + P.PATCH) > pred.threshold  # the finer mask, seen on this level
    bb = obj.masks.level(finer).bbox()
    if bb is None or not now.any():
        return True
    a = np.maximum(np.asarray(bb[0]) * finer // factor - lo, 0)
    b = np.minimum(-(-np.asarray(bb[1]) * finer // factor) - lo, P.PATCH)
    box = tuple(slice(int(x), int(y)) for x, y in zip(a, b))
    new, old = coarse[box] > pred.threshold, now[box]
    return 2 * np.count_nonzero(new & old) >= pred.settings.zoom_min_agreement * (
        np.count_nonzero(new) + np.count_nonzero(old))

def surface_tiles(pred, obj: ObjectState, factor: int):
    """Tiles of level ``factor`` (see `patches.tile_origins`) holding the surface of the object's mask."""
    bb = obj.masks.bbox(pred.threshold)
    if bb is None:
        return []
    lo = np.asarray(bb[0]) // factor
    hi = -(-np.asarray(bb[1]) // factor)
    m = obj.masks.view(factor, lo, hi) > pred.threshold
    surface = m & ~ndimage.binary_erosion(m)
    return P.tile_origins(np.argwhere(surface) + lo)

def grow(pred, obj: ObjectState, seeds, timing):
    """Cross-patch growth: seed neighbours the mask touches with the CPP heatmap, breadth-first."""
    queue = deque(seeds)
    budget = pred.settings.growth_budget
    while queue and len(obj.masks.probs) < budget:
        u = queue.popleft()
        prob_u = obj.masks.probs[u].astype(np.float32)
        for axis, direction in P.neighbour_faces(prob_u, pred.threshold):
            if len(obj.masks.probs) >= budget:
                break
            v = list(u)
            v[axis] += direction * P.STRIDE
            v = tuple(v)
            if v in obj.masks.probs or not _inside_grid(pred, v):
                continue
            heat = peaks = None
            if pred.settings.cpp_heatmaps:
                t = time.perf_counter()
                heat = pred.net.cpp(u, prob_u, v)
                timing["cpp"] += time.perf_counter() - t
                if pred.settings.cpp_peak_threshold is not None:
                    peaks = heatmap_to_clicks(heat, threshold=pred.settings.cpp_peak_threshold, max_clicks=3)
                    if len(peaks) == 0:
                        continue  # the CPP net sees no continuation in this neighbour
                    heat = None  # the peaks become clicks instead of the raw map
            t = time.perf_counter()
            prompt = pred._prompt(obj, v, positive_map=heat, seed_from_prior=pred.settings.growth_seed,
                                  extra_positive=peaks)
            prob_v = pred.net.decode(v, prompt)
            timing["decode"] += time.perf_counter() - t
            if pred.settings.growth_guard:
                prob_v = _continuation(pred, prob_v, obj.masks.patch_prior(v), axis, direction)
            if prob_v is None or np.count_nonzero(prob_v > pred.threshold) < 8:
                continue  # nothing of the object there: do not keep an empty patch
            obj.masks.probs[v] = prob_v
            queue.append(v)

def retract(pred, obj: ObjectState, removed: dict, timing, min_voxels: int = 200):
    """Follow a negative click's removal into the patches beside it, breadth-first.

    ``removed`` maps each level-1 patch the click re-decoded to the voxels it dropped there. A patch
    overlapping such a region (``min_voxels`` or more of its own mask) is re-decoded with a negative point at
    the deepest voxel of that overlap, as if the user had clicked the leak there too; what it drops in turn is
    followed on, up to ``settings.retract_budget`` patches. A leak grown over many patches (the IVC into the
    right atrium) thus goes with one click; a trim of the boundary (a few voxels deep) goes no further."""
    thr, budget = pred.threshold, pred.settings.retract_budget
    probs = obj.masks.level(1).probs
    queue, done = deque(removed.items()), set(removed)
    while queue and budget > 0:
        u, gone = queue.popleft()
        if np.count_nonzero(gone) < min_voxels:
            continue
        for v in [o for o in probs if o not in done]:
            ov = P._overlap(tuple(np.subtract(u, v)), P.PATCH, (P.PATCH,) * 3)  # (in v, in u), None if apart
            if ov is None:
                continue
            hit = np.zeros((P.PATCH,) * 3, bool)
            hit[ov[0]] = gone[ov[1]] & (probs[v][ov[0]] > thr)
            if np.count_nonzero(hit) < min_voxels:
                continue
            t = time.perf_counter()
            prob_v = pred.net.decode(v, pred._prompt(obj, v, extra_negative=[deepest_point(hit)]))
            timing["decode"] += time.perf_counter() - t
            done.add(v)
            queue.append((v, (probs[v] > thr) & (prob_v <= thr)))
            probs[v] = prob_v
            budget -= 1
            if budget <= 0:
                break


def _continuation(pred, prob_v, prior_v, axis, direction):
    """``prob_v`` cut to what continues the carried mask through the overlap, or None if it does not."""
    slab = [slice(None)] * 3
    slab[axis] = slice(0, P.PATCH - P.STRIDE) if direction > 0 else slice(P.STRIDE, None)
    slab = tuple(slab)
    new, carried = prob_v > pred.threshold, prior_v > pred.threshold
    a, b = new[slab], carried[slab]
    if 2 * np.count_nonzero(a & b) < pred.settings.growth_min_agreement * (np.count_nonzero(a) + np.count_nonzero(b)):
        return None  # the neighbour's mask does not continue what is already segmented
    parts, _ = ndimage.label(new)
    touching = np.unique(parts[slab][a & b])
    keep = np.isin(parts, touching[touching > 0])
    return np.where(keep | ~new, prob_v, 0).astype(prob_v.dtype)

def _inside_grid(pred, origin) -> bool:
    o = np.asarray(origin)
    return bool(np.all(o + P.PATCH > 0) and np.all(o < np.asarray(pred.grid.shape)))


def keep_connected(pred, obj: ObjectState, reach: int = 2, box=None) -> int:
    """Drop the parts of the object's mask that no positive click touches (26-connected; a click up to
    ``reach`` voxels off a part anchors it). A negative click that cuts a leak off also removes what
    leaked beyond the cut, in every patch and on every zoom level. Returns the voxels dropped (level 1).
    ``box``: ``obj.masks.mask_box(pred.threshold)`` when the caller has it; its probabilities are set to 0 where
    parts are dropped, which is what blending the patches again gives while the object has level-1 patches only.

    Nothing is dropped while no positive click lies on the mask (there is nothing to anchor to)."""
    thr = pred.threshold
    pos = np.asarray([c.grid_zyx for c in obj.clicks if c.positive], float).reshape(-1, 3)
    if not len(pos):
        return 0
    box = obj.masks.mask_box(thr) if box is None else box
    if box is None:
        return 0
    lo, _, probs = box
    inside = probs > thr
    crop = []  # label only the mask's own box, not the patches' (often half the voxels)
    for axis in range(3):
        hit = np.flatnonzero(inside.any(axis=tuple(a for a in range(3) if a != axis)))
        if not len(hit):
            return 0
        crop.append(slice(hit[0], hit[-1] + 1))
    crop = tuple(crop)
    lo = np.asarray(lo, int) + [c.start for c in crop]
    parts, n = ndimage.label(inside[crop], structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return 0
    keep = set()
    for c in np.rint(pos).astype(int) - lo:
        a, b = np.maximum(c - reach, 0), np.minimum(c + reach + 1, parts.shape)
        if np.all(b > a):
            keep.update(np.unique(parts[tuple(slice(x, y) for x, y in zip(a, b))]).tolist())
    keep.discard(0)
    if not keep:
        return 0
    drop = (parts > 0) & ~np.isin(parts, sorted(keep))
    if not drop.any():
        return 0
    probs[crop][drop] = 0
    for f, level in obj.masks.levels.items():
        for origin, p in list(level.probs.items()):
            # level-f voxel origin + i sits on level-1 voxel f (origin + i)
            idx = [(np.asarray(o) + np.arange(P.PATCH)) * f - a for o, a in zip(origin, lo)]
            ok = [(i >= 0) & (i < s) for i, s in zip(idx, drop.shape)]
            if not all(k.any() for k in ok):
                continue
            sub = drop[np.ix_(*(i[k] for i, k in zip(idx, ok)))]
            if not sub.any():
                continue
            box = np.ix_(*(np.flatnonzero(k) for k in ok))
            new = p.copy()  # arrays are replaced, never changed in place (undo snapshots share them)
            new[box] = np.where(sub, 0, new[box])
            level.probs[origin] = new
    return int(np.count_nonzero(drop))
