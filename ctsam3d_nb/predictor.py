"""The interactive 3D predictor: clicks in, 3D masks out.

    pred = Predictor(model)
    pred.set_volume(ct)                              # CTVolume from load_ct
    mask = pred.click((z, y, x), positive=True)      # bool mask of ct.shape
    pred.undo(); pred.redo(); pred.reset()
    pred.new_object("liver"); pred.label_map

Clicks are voxel indices ``(z, y, x)`` of the loaded CT. Internally the CT is
resampled once to the 1.5 mm model grid; each click is handled on 64³ patches of
that grid. Encoder features are cached per patch, so a click inside an already
encoded patch only re-runs the decoder. After a positive click the cross-patch
prompt net grows the mask into neighbouring patches, breadth-first, within a
budget; every patch's probabilities are kept and blended, so a click elsewhere
never loses earlier work.
"""
from __future__ import annotations

import time
from collections import OrderedDict, deque

import numpy as np
import torch
from scipy import ndimage

from . import patches as P
from .clicks import deepest_point
from .grid import ModelGrid
from .modeling.cpp import heatmap_to_clicks
from .modeling.prompt import build_prompt_map
from .predictor_state import ObjectState, SessionLog, check_click, to_ct_mask
from .volume import CTVolume

__all__ = ["Predictor"]


def _resolve_device(device) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Predictor:
    """Interactive click-to-3D-mask session over one CT.

    Args:
        model: a ``CTSAM3D`` (from ``load_model`` or ``build_model``).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", or a torch.device.
        growth_budget: most patches one object may span through cross-patch growth.
        threshold: probability above which a voxel is in the mask.
        cache_patches: encoder features kept (least recently used are dropped).
        autosave: a folder; the session log is written there after every action.
        cpp_heatmaps: every grown patch is seeded with the neighbour's mask in the overlap (the
            prompt's mask channel) and a click at its deepest point. True: the CPP net's heatmap
            is added too (raw, or only its peaks, see ``cpp_peak_threshold``). Off by default:
            with the shipped weights the heatmap does not improve on the overlap seed (model card).
        cpp_peak_threshold: None: the raw heatmap is added to the neighbour's positive prompt
            channel (the release's way). A value in (0, 1]: only the heatmap's peaks above it
            become positive clicks, and a neighbour without such a peak is not grown.
        growth_guard: keep a grown neighbour only if its mask continues what is already
            segmented: its mask must agree with the carried mask in the shared overlap
            (Dice >= ``growth_min_agreement``), and only its parts connected to that overlap
            are kept. Stops a faint heatmap or a leak from spreading through the budget.
        growth_min_agreement: the overlap Dice a grown neighbour needs (with ``growth_guard``).
    """

    def __init__(self, model, device="auto", growth_budget: int = 27, threshold: float = 0.5,
                 cache_patches: int = 64, autosave=None, cpp_heatmaps: bool = False,
                 cpp_peak_threshold: float | None = None, growth_guard: bool = False,
                 growth_min_agreement: float = 0.5):
        self.device = _resolve_device(device)
        self.model = model.to(self.device).eval()
        self.growth_budget = int(growth_budget)
        self.threshold = float(threshold)
        self.cache_patches = int(cache_patches)
        self.autosave = autosave
        self.cpp_heatmaps = bool(cpp_heatmaps)
        if cpp_peak_threshold is not None and not 0 < float(cpp_peak_threshold) <= 1:
            raise ValueError(f"cpp_peak_threshold must be None or in (0, 1], got {cpp_peak_threshold!r}")
        self.cpp_peak_threshold = None if cpp_peak_threshold is None else float(cpp_peak_threshold)
        if self.cpp_peak_threshold is not None and not cpp_heatmaps:
            raise ValueError("cpp_peak_threshold picks peaks of the CPP heatmaps: pass cpp_heatmaps=True with it")
        if not 0 <= float(growth_min_agreement) <= 1:
            raise ValueError(f"growth_min_agreement must be in [0, 1], got {growth_min_agreement!r}")
        self.growth_guard = bool(growth_guard)
        self.growth_min_agreement = float(growth_min_agreement)
        self.ct: CTVolume | None = None
        self.stats = {"encoder_calls": 0, "decoder_calls": 0, "cpp_calls": 0}
        self.last_timing: dict[str, float] = {}
        self._reset_state()

    # ------------------------------------------------------------------ set-up
    def _reset_state(self):
        self.objects: list[ObjectState] = []
        self.current = -1
        self._undo: list = []
        self._redo: list = []
        self._features: OrderedDict = OrderedDict()
        self._mask_cache: dict[int, np.ndarray] = {}
        self.log = SessionLog(self)

    def set_volume(self, ct: CTVolume) -> "Predictor":
        """Resample ``ct`` to the model grid once; clears all objects and caches."""
        if not isinstance(ct, CTVolume):
            raise TypeError(f"set_volume needs a CTVolume (from load_ct), got {type(ct).__name__}")
        t0 = time.perf_counter()
        self.ct = ct
        self.grid = ModelGrid.covering(ct)
        self._image = self.grid.resample_ct(ct)  # float32 in [0, 1]; the only full copy we keep
        self._reset_state()
        self.last_timing = {"set_volume": time.perf_counter() - t0}
        return self

    def _require_volume(self):
        if self.ct is None:
            raise RuntimeError("no volume set: call predictor.set_volume(load_ct(path)) first")

    # ------------------------------------------------------------------ objects
    @property
    def object(self) -> ObjectState:
        """The object that clicks go to (created on the first click if none)."""
        self._require_volume()
        if self.current < 0:
            self._new_object_nolog("object 1", None)
        return self.objects[self.current]

    def _new_object_nolog(self, name, label_id):
        self.objects.append(ObjectState.create(name, label_id, self.grid.shape, self.objects))
        self.current = len(self.objects) - 1

    def new_object(self, name: str, label_id: int | None = None) -> ObjectState:
        """Start a new object; clicks go to it from now on.

        ``name`` is an ontology name (e.g. "liver": its id and colour are used) or any
        name together with a custom ``label_id``.
        """
        self._require_volume()
        self._push_undo()
        self._new_object_nolog(name, label_id)
        self.log.add({"op": "new_object", "name": name, "label_id": label_id})
        return self.objects[self.current]

    def select_object(self, which) -> ObjectState:
        """Make an existing object current, by index or name."""
        idx = which if isinstance(which, int) else next(
            (i for i, o in enumerate(self.objects) if o.name == which), None)
        if idx is None or not 0 <= idx < len(self.objects):
            raise KeyError(f"no object {which!r}; objects: {[o.name for o in self.objects]}")
        self.current = idx
        self.log.add({"op": "select", "index": idx})
        return self.objects[idx]

    # ------------------------------------------------------------------ model calls
    def _patch_tensor(self, arr: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None].to(self.device)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    def _encode(self, origin):
        feats = self._features.get(origin)
        if feats is not None:
            self._features.move_to_end(origin)
            return feats
        with torch.inference_mode(), self._autocast():
            feats = self.model.encode(self._patch_tensor(P.crop(self._image, origin)))
        self.stats["encoder_calls"] += 1
        self._features[origin] = feats
        while len(self._features) > self.cache_patches:
            self._features.popitem(last=False)
        return feats

    def _decode(self, origin, prompt: torch.Tensor) -> np.ndarray:
        feats = self._encode(origin)
        with torch.inference_mode(), self._autocast():
            logits = self.model.decode(feats, prompt[None].to(self.device))
        self.stats["decoder_calls"] += 1
        return torch.sigmoid(logits.float())[0, 0].cpu().numpy().astype(np.float16)

    def _prompt(self, obj: ObjectState, origin, positive_map=None, seed_from_prior=False,
                extra_positive=None) -> torch.Tensor:
        pts, labels = obj.clicks_in(origin)
        if extra_positive is not None and len(extra_positive):  # patch-local points, e.g. CPP peaks
            pts = np.concatenate([pts, np.asarray(extra_positive, float).reshape(-1, 3)])
            labels = np.concatenate([labels, np.ones(len(extra_positive))])
        prior = obj.masks.patch_prior(origin)
        if seed_from_prior and (prior > self.threshold).any():
            # a grown patch also gets a click at the deepest point of what the neighbour already
            # segmented in the overlap: a sure positive, like the seeded rounds in training
            seed = deepest_point(prior > self.threshold)
            pts = np.concatenate([pts, np.asarray([seed], float)])
            labels = np.concatenate([labels, [1]])
        prompt = build_prompt_map(prior, pts, labels, size=P.PATCH)
        if positive_map is not None:
            prompt[1] = torch.maximum(prompt[1], positive_map)
        return prompt

    # ------------------------------------------------------------------ clicks
    def click(self, zyx, positive: bool = True) -> np.ndarray:
        """Add a click at CT voxel ``(z, y, x)``; returns the current object's mask (bool, ``ct.shape``)."""
        self._require_volume()
        zyx = check_click(zyx, self.ct.shape)
        t0 = time.perf_counter()
        obj = self.object
        self._push_undo()
        g = tuple(float(v) for v in self.grid.from_ct_index(self.ct, zyx))
        obj.add_click(zyx, g, bool(positive))
        self.log.add({"op": "click", "zyx": list(zyx), "positive": bool(positive)})
        enc0 = self.stats["encoder_calls"]
        timing = {"encode": 0.0, "decode": 0.0, "cpp": 0.0}

        # patches to re-decode: every patch of this object holding the click, plus the one
        # centred nearest to it (or a new one centred on it if none holds it well inside)
        holding = [o for o in obj.masks.probs if P.contains(o, g)]
        inner = [o for o in self._features if P.contains(o, g, margin=P.PATCH // 8)]
        inner += [o for o in holding if P.contains(o, g, margin=P.PATCH // 8)]
        centre = lambda o: np.sum((np.asarray(o) + P.PATCH / 2 - 0.5 - np.asarray(g)) ** 2)  # noqa: E731
        primary = min(inner, key=centre) if inner else P.origin_for(g)
        todo = list(dict.fromkeys([primary] + holding))
        for origin in todo:
            t = time.perf_counter()
            prob = self._decode(origin, self._prompt(obj, origin))
            timing["decode"] += time.perf_counter() - t
            obj.masks.probs[origin] = prob
        if positive:
            self._grow(obj, todo, timing)
        timing["encode_calls"] = self.stats["encoder_calls"] - enc0
        t = time.perf_counter()
        mask = self._current_mask(refresh=True)
        timing["to_ct"] = time.perf_counter() - t
        timing["total"] = time.perf_counter() - t0
        self.last_timing = timing
        self.log.autosave()
        return mask

    def _grow(self, obj: ObjectState, seeds, timing):
        """Cross-patch growth: seed neighbours the mask touches with the CPP heatmap, breadth-first."""
        queue = deque(seeds)
        while queue and len(obj.masks.probs) < self.growth_budget:
            u = queue.popleft()
            prob_u = obj.masks.probs[u].astype(np.float32)
            for axis, direction in P.neighbour_faces(prob_u, self.threshold):
                if len(obj.masks.probs) >= self.growth_budget:
                    break
                v = list(u)
                v[axis] += direction * P.STRIDE
                v = tuple(v)
                if v in obj.masks.probs or not self._inside_grid(v):
                    continue
                heat = peaks = None
                if self.cpp_heatmaps:
                    t = time.perf_counter()
                    with torch.inference_mode(), self._autocast():
                        heat = self.model.cpp(self._patch_tensor(P.crop(self._image, u)),
                                              self._patch_tensor(prob_u),
                                              self._patch_tensor(P.crop(self._image, v)))
                    heat = heat.float().clamp(0, 1)[0, 0].cpu()
                    self.stats["cpp_calls"] += 1
                    timing["cpp"] += time.perf_counter() - t
                    if self.cpp_peak_threshold is not None:
                        peaks = heatmap_to_clicks(heat, threshold=self.cpp_peak_threshold, max_clicks=3)
                        if len(peaks) == 0:
                            continue  # the CPP net sees no continuation in this neighbour
                        heat = None  # the peaks become clicks instead of the raw map
                t = time.perf_counter()
                prob_v = self._decode(v, self._prompt(obj, v, positive_map=heat, seed_from_prior=True,
                                                      extra_positive=peaks))
                timing["decode"] += time.perf_counter() - t
                if self.growth_guard:
                    prob_v = self._continuation(prob_v, obj.masks.patch_prior(v), axis, direction)
                if prob_v is None or np.count_nonzero(prob_v > self.threshold) < 8:
                    continue  # nothing of the object there: do not keep an empty patch
                obj.masks.probs[v] = prob_v
                queue.append(v)

    def _continuation(self, prob_v, prior_v, axis, direction):
        """``prob_v`` cut to what continues the carried mask through the overlap, or None if it does not."""
        slab = [slice(None)] * 3
        slab[axis] = slice(0, P.PATCH - P.STRIDE) if direction > 0 else slice(P.STRIDE, None)
        slab = tuple(slab)
        new, carried = prob_v > self.threshold, prior_v > self.threshold
        a, b = new[slab], carried[slab]
        if 2 * np.count_nonzero(a & b) < self.growth_min_agreement * (np.count_nonzero(a) + np.count_nonzero(b)):
            return None  # the neighbour's mask does not continue what is already segmented
        parts, _ = ndimage.label(new)
        touching = np.unique(parts[slab][a & b])
        keep = np.isin(parts, touching[touching > 0])
        return np.where(keep | ~new, prob_v, 0).astype(prob_v.dtype)

    def _inside_grid(self, origin) -> bool:
        o = np.asarray(origin)
        return bool(np.all(o + P.PATCH > 0) and np.all(o < np.asarray(self.grid.shape)))

    # ------------------------------------------------------------------ results
    def _current_mask(self, refresh=False) -> np.ndarray:
        obj = self.object
        key = id(obj.masks)
        if refresh or key not in self._mask_cache:
            self._mask_cache = {key: to_ct_mask(obj.masks, self.grid, self.ct, self.threshold)}
        return self._mask_cache[key]

    @property
    def mask(self) -> np.ndarray:
        """The current object's mask on the CT's grid: bool ``ct.shape`` (z, y, x)."""
        self._require_volume()
        return self._current_mask()

    @property
    def label_map(self) -> np.ndarray:
        """All objects in one label map on the CT's grid (uint16 ontology ids; highest probability wins)."""
        self._require_volume()
        from .predictor_state import to_ct_label_map

        return to_ct_label_map(self.objects, self.grid, self.ct, self.threshold)

    # ------------------------------------------------------------------ history
    def _snapshot(self):
        return ([o.snapshot() for o in self.objects], self.current)

    def _restore(self, snap):
        objs, cur = snap
        self.objects = [o.snapshot() for o in objs]
        self.current = cur
        self._mask_cache = {}

    def _push_undo(self):
        self._undo.append(self._snapshot())
        del self._undo[: -SessionLog.MAX_UNDO]
        self._redo.clear()

    def undo(self) -> bool:
        """Undo the last click / new object / reset. Returns False if there is nothing to undo."""
        if not self._undo:
            return False
        self._redo.append(self._snapshot())
        self._restore(self._undo.pop())
        self.log.add({"op": "undo"})
        self.log.autosave()
        return True

    def redo(self) -> bool:
        """Redo what :meth:`undo` took back. Returns False if there is nothing to redo."""
        if not self._redo:
            return False
        self._undo.append(self._snapshot())
        self._restore(self._redo.pop())
        self.log.add({"op": "redo"})
        self.log.autosave()
        return True

    def reset(self):
        """Clear the current object's clicks and mask (undoable)."""
        self._require_volume()
        if self.current < 0:
            return
        self._push_undo()
        self.objects[self.current] = self.objects[self.current].cleared()
        self._mask_cache = {}
        self.log.add({"op": "reset"})
        self.log.autosave()

    # ------------------------------------------------------------------ sessions
    @property
    def session(self) -> dict:
        """JSON-serialisable log of everything done since :meth:`set_volume`."""
        return self.log.to_dict()

    @classmethod
    def replay(cls, session: dict, ct: CTVolume, model=None, **kwargs) -> "Predictor":
        """Re-run a session log on ``ct``; gives bit-identical masks with the same model."""
        return SessionLog.replay(cls, session, ct, model, **kwargs)

    @classmethod
    def restore(cls, path, ct: CTVolume, model=None, **kwargs) -> "Predictor":
        """Bring back an autosaved session (a JSON file or the autosave folder) after a restart."""
        return SessionLog.restore(cls, path, ct, model, **kwargs)
