"""The interactive 3D predictor: clicks in, 3D masks out.

    pred = Predictor(model)                          # or Predictor(model, ClickSettings(mode="grow"))
    pred.set_volume(ct)                              # CTVolume from load_ct
    mask = pred.click((z, y, x), positive=True)      # bool mask of ct.shape
    pred.undo(); pred.redo(); pred.reset()
    pred.new_object("liver"); pred.label_map

Clicks are voxel indices ``(z, y, x)`` of the loaded CT. Internally the CT is
resampled once to the 1.5 mm model grid; each click is handled on 64³ patches of
that grid. Encoder features are cached per patch, so a click inside an already
encoded patch only re-runs the decoder (the model calls and that cache:
:class:`~ctsam3d_nb.patch_model.PatchModel`, ``pred.net``).

An object larger than one patch (96 mm) is reached in one of two ways
(:class:`~ctsam3d_nb.settings.ClickSettings` ``mode``):

* ``"zoom"``: while the mask touches the patch faces, the click is predicted again on a
  coarser grid (3 mm, then 6 mm: 192 and 384 mm fields) with the mask so far in the
  prompt's mask channel; the coarse mask's surface is then refined on the finest level
  whose surface patches fit ``refine_budget``. Later clicks re-decode only the patches
  holding them.
* ``"grow"`` (the paper's way): the mask grows into neighbouring patches, breadth-first,
  each seeded by the overlap (and optionally the cross-patch prompt net), within a budget.

Every patch's probabilities are kept and blended, so a click elsewhere never loses earlier work.
Every action is all-or-nothing: if the model fails during a click, the predictor is as before.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from . import patches as P
from .clicks import deepest_point
from .grid import ModelGrid
from .io import load_ct
from .modeling.prompt import build_prompt_map
from .patch_model import PatchModel
from .predictor_state import ObjectState, check_click, object_index, to_ct_label_map, to_ct_mask
from .reach import grow, keep_connected, retract, zoom
from .session import SessionLog
from .settings import ClickSettings
from .volume import CTVolume

__all__ = ["Predictor"]


class Predictor:
    """Interactive click-to-3D-mask session over one CT.

    Args:
        model: a ``CTSAM3D`` (from ``load_model`` or ``build_model``).
        settings: how clicks become masks (:class:`~ctsam3d_nb.settings.ClickSettings`); default
            ``ClickSettings()``. Single fields can also be given as keywords (``mode="grow"``).
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda", or a torch.device.
        cache_patches: encoder features kept (least recently used are dropped).
        autosave: a folder; the session log is written there after every action.
    """

    def __init__(self, model, settings: ClickSettings | None = None, *, device="auto", cache_patches: int = 64,
                 autosave=None, **setting_fields):
        if settings is None:
            settings = ClickSettings()
        if not isinstance(settings, ClickSettings):
            raise TypeError(f"settings must be a ClickSettings, got {type(settings).__name__} {settings!r}"
                            + (" (pass the device as a keyword: device=...)"
                               if isinstance(settings, (str, torch.device)) else ""))
        if setting_fields:
            try:
                settings = settings.replace(**setting_fields)
            except TypeError:
                known = sorted(settings.to_dict())
                raise TypeError(f"unknown Predictor arguments {sorted(setting_fields)}; click settings are "
                                f"{known}") from None
        self.settings = settings
        self.net = PatchModel(model, device, cache_patches, settings.precision)
        self.autosave = autosave
        self.ct: CTVolume | None = None
        self.last_timing: dict[str, float] = {}
        self._reset_state()

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def model(self):
        return self.net.model

    @property
    def device(self) -> torch.device:
        return self.net.device

    @property
    def cache_patches(self) -> int:
        return self.net.cache_patches

    @property
    def stats(self) -> dict[str, int]:
        """Model calls so far: ``encoder_calls``, ``decoder_calls``, ``cpp_calls``."""
        return self.net.stats

    # ------------------------------------------------------------------ set-up
    def _reset_state(self):
        self.objects: list[ObjectState] = []
        self.current = -1
        self._undo: list = []
        self._redo: list = []
        self._mask_cache: dict[int, np.ndarray] = {}
        self.log = SessionLog(self)

    def set_volume(self, ct, **geometry) -> "Predictor":
        """Resample the CT to the model grid once; clears all objects and caches.

        ``ct`` is a :class:`CTVolume` (from ``load_ct``) or anything ``load_ct`` reads: a path, a
        ``SimpleITK.Image``, or a numpy array with its geometry as keywords (``spacing=``, or ``affine=``
        for nibabel/MONAI arrays), e.g. ``pred.set_volume(hu, spacing=(2.5, 0.8, 0.8))``.
        """
        if not isinstance(ct, CTVolume):
            try:
                ct = load_ct(ct, **geometry)
            except TypeError as e:
                raise TypeError(f"set_volume needs a CTVolume (from load_ct) or what load_ct reads: {e}") from None
        elif geometry:
            raise TypeError(f"set_volume got a CTVolume, which has its geometry: drop {sorted(geometry)}")
        t0 = time.perf_counter()
        self.ct = ct
        self.grid = ModelGrid.covering(ct)
        coarser = self.settings.levels[1:] if self.settings.mode == "zoom" else ()
        self.net.set_image(self.grid.resample_ct(ct), coarser)  # float32 in [0, 1]; drops cached features
        self._reset_state()
        self.last_timing = {"set_volume": time.perf_counter() - t0}
        return self

    def _require_volume(self):
        if self.ct is None:
            raise RuntimeError("no volume set: call predictor.set_volume(load_ct(path)) first")

    # ------------------------------------------------------------------ objects
    @property
    def object(self) -> ObjectState | None:
        """The object that clicks go to; None before the first click or ``new_object`` (the first click makes
        "object 1"). Reading it changes nothing: a session log replays what was done, not what was looked at."""
        self._require_volume()
        return self.objects[self.current] if self.current >= 0 else None

    def _make_object(self, name, label_id) -> ObjectState:
        levels = self.settings.levels if self.settings.mode == "zoom" else (1,)
        return ObjectState.create(name, label_id, self.grid.shape, self.objects, levels)  # validates first

    def _new_object_nolog(self, name, label_id):
        self.objects.append(self._make_object(name, label_id))
        self.current = len(self.objects) - 1

    def new_object(self, name: str, label_id: int | None = None) -> ObjectState:
        """Start a new object; clicks go to it from now on.

        ``name`` is an ontology name (e.g. "liver": its id and colour are used) or any
        name together with a custom ``label_id`` (a whole number in 1..65535 no other object uses).
        """
        self._require_volume()
        if not isinstance(name, str) or not name.strip():
            raise TypeError(f"an object's name must be a non-empty string, got {name!r}")
        obj = self._make_object(name, label_id)  # may refuse: nothing changed yet
        self._push_undo()
        self.objects.append(obj)
        self.current = len(self.objects) - 1
        self.log.add({"op": "new_object", "name": name, "label_id": None if label_id is None else obj.label_id})
        self.log.autosave()
        return obj

    def select_object(self, which) -> ObjectState:
        """Make an existing object current, by index or name."""
        idx = object_index(self.objects, which)
        self.current = idx
        self.log.add({"op": "select", "index": idx})
        self.log.autosave()
        return self.objects[idx]

    # ------------------------------------------------------------------ prompts
    def _prompt(self, obj: ObjectState, origin, positive_map=None, seed_from_prior=False,
                extra_positive=None, factor: int = 1, extra_negative=None) -> torch.Tensor:
        pts, labels = obj.clicks_in(origin, factor)
        for extra, label in ((extra_positive, 1), (extra_negative, 0)):  # patch-local points, e.g. CPP peaks
            if extra is not None and len(extra):
                pts = np.concatenate([pts, np.asarray(extra, float).reshape(-1, 3)])
                labels = np.concatenate([labels, np.full(len(extra), label)])
        prior = obj.masks.patch_prior(origin, factor)
        if seed_from_prior and (prior > self.threshold).any():
            # a grown patch also gets a click at the deepest point of what the neighbour already
            # segmented in the overlap: a sure positive, like the seeded rounds in training (growth_seed)
            seed = deepest_point(prior > self.threshold)
            pts = np.concatenate([pts, np.asarray([seed], float)])
            labels = np.concatenate([labels, [1]])
        cfg = getattr(self.model, "config", None)
        kw = {"sigma": cfg.sigma, "radius": cfg.click_radius} if cfg is not None else {}
        prompt = build_prompt_map(prior, pts, labels, size=P.PATCH, **kw)
        if positive_map is not None:
            prompt[1] = torch.maximum(prompt[1], positive_map)
        return prompt

    # ------------------------------------------------------------------ clicks
    def click(self, zyx, positive: bool = True) -> np.ndarray:
        """Add a click at CT voxel ``(z, y, x)``; returns the current object's mask (bool, ``ct.shape``, read-only).

        All or nothing: if anything fails while the click is computed, the predictor (objects,
        undo/redo history, session log) is left exactly as it was before the call.
        """
        self._require_volume()
        zyx = check_click(zyx, self.ct.shape)
        if type(positive).__name__ not in ("bool", "bool_"):
            raise TypeError(f"positive must be True or False, got {positive!r}")
        positive = bool(positive)
        before = (self._snapshot(), list(self._undo), list(self._redo), len(self.log.events), self.current,
                  self.net.cache_state())
        try:
            return self._click(zyx, positive)
        except BaseException:
            snap, undo, redo, n_events, current, cache = before
            self._restore(snap)
            self.net.restore_cache(cache)
            self._undo[:], self._redo[:] = undo, redo
            del self.log.events[n_events:]
            self.current = current
            raise

    def _click(self, zyx, positive: bool) -> np.ndarray:
        t0 = time.perf_counter()
        if self.current < 0:
            self._new_object_nolog("object 1", None)  # replay makes it the same way: its first click
        obj = self.objects[self.current]
        self._push_undo()
        g = tuple(float(v) for v in self.grid.from_ct_index(self.ct, zyx))
        obj.add_click(zyx, g, positive)
        enc0, dec0 = self.stats["encoder_calls"], self.stats["decoder_calls"]
        timing = {"encode": 0.0, "decode": 0.0, "cpp": 0.0}

        # patches to re-decode: every patch of this object holding the click (on every level, coarse
        # first), plus the finest-level one centred nearest to it (or a new one centred on it if none
        # holds it well inside)
        holding = [(f, o) for f in sorted(obj.masks.levels, reverse=True) for o in obj.masks.level(f).probs
                   if P.contains(o, np.asarray(g) / f)]
        inner = [o for o in self.net.cached_origins(1) if P.contains(o, g, margin=P.PATCH // 8)]
        inner += [o for f, o in holding if f == 1 and P.contains(o, g, margin=P.PATCH // 8)]
        centre = lambda o: np.sum((np.asarray(o) + P.PATCH / 2 - 0.5 - np.asarray(g)) ** 2)  # noqa: E731
        primary = min(inner, key=centre) if inner else P.origin_for(g)
        todo = list(dict.fromkeys([(f, o) for f, o in holding if f > 1] + [(1, primary)] +
                                  [(f, o) for f, o in holding if f == 1]))
        removed = {}  # level-1 patch -> what this negative click removed there (only when it is followed)
        follow = not positive and self.settings.retract_budget > 0
        # a positive click may be followed by self_rounds more decodes of the same patches, each prompted with the
        # mask just predicted (the model's own next round, without a new click)
        for f, origin in [fo for _ in range(1 + (self.settings.self_rounds if positive else 0)) for fo in todo]:
            t = time.perf_counter()
            prob = self.net.decode(origin, self._prompt(obj, origin, factor=f), f)
            timing["decode"] += time.perf_counter() - t
            if f == 1 and follow:  # negative clicks: one round only
                old = obj.masks.level(f).probs.get(origin, prob)
                removed[origin] = (old > self.threshold) & (prob <= self.threshold)
            obj.masks.level(f).probs[origin] = prob
        found = refined = 1
        if positive and self.settings.mode == "grow":
            grow(self, obj, [o for f, o in todo if f == 1], timing)
        elif removed:
            retract(self, obj, removed, timing)
        elif positive and not any(f > 1 for f, _ in holding):  # zoom: the object's first reach at this point
            found, refined = zoom(self, obj, g, obj.masks.probs[primary], timing)
        box = None  # one blend of the object's patches serves keep_connected and the CT-grid mask
        if self.settings.keep_connected:
            t = time.perf_counter()
            box = obj.masks.mask_box(self.threshold)
            if (box is not None and keep_connected(self, obj, box=box)
                    and obj.masks.n_patches() > len(obj.masks.probs)):
                box = None  # parts were dropped on zoom levels too: blend again
            timing["connected"] = time.perf_counter() - t
        timing["encode_calls"] = self.stats["encoder_calls"] - enc0
        timing["decode_calls"] = self.stats["decoder_calls"] - dec0
        timing["found_mm"] = found * self.grid.spacing
        timing["refined_mm"] = refined * self.grid.spacing if refined else float("nan")
        t = time.perf_counter()
        mask = self._current_mask(refresh=True, box=box)
        timing["to_ct"] = time.perf_counter() - t
        timing["total"] = time.perf_counter() - t0
        self.log.add({"op": "click", "zyx": list(zyx), "positive": positive})
        self.last_timing = timing
        self.log.autosave()
        return mask

    # ------------------------------------------------------------------ results
    def _current_mask(self, refresh=False, box=None) -> np.ndarray:
        obj = self.object
        key = None if obj is None else id(obj.masks)  # None: no object yet, nothing segmented
        if key not in self._mask_cache or (refresh and key is not None):
            if key is None:
                mask = np.zeros(self.ct.shape, bool)
            else:
                mask = to_ct_mask(obj.masks, self.grid, self.ct, self.threshold, box=box)
            mask.flags.writeable = False  # shared by click(), .mask and the viewer's exports: edit a .copy()
            self._mask_cache = {key: mask}
        return self._mask_cache[key]

    @property
    def mask(self) -> np.ndarray:
        """The current object's mask on the CT's grid: bool ``ct.shape`` (z, y, x), read-only (the predictor's
        own; ``pred.mask.copy()`` to edit it)."""
        self._require_volume()
        return self._current_mask()

    def summary(self):
        """The objects as a table (pandas DataFrame): name, label id, volume in mL, clicks (positive /
        negative) and mean HU inside the mask; one row per object, in creation order."""
        import pandas as pd  # on first use: `import ctsam3d_nb` stays without pandas (~0.5 s)

        self._require_volume()
        rows = []
        for o in self.objects:
            m = to_ct_mask(o.masks, self.grid, self.ct, self.threshold)
            n = int(np.count_nonzero(m))
            pos = sum(1 for c in o.clicks if c.positive)
            rows.append({"name": o.name, "label_id": o.label_id, "ml": n * self.ct.voxel_volume_ml,
                         "voxels": n, "clicks": len(o.clicks), "positive": pos, "negative": len(o.clicks) - pos,
                         "mean_hu": float(self.ct.array[m].mean()) if n else float("nan")})
        return pd.DataFrame(rows, columns=["name", "label_id", "ml", "voxels", "clicks", "positive", "negative",
                                           "mean_hu"])

    @property
    def label_map(self) -> np.ndarray:
        """All objects in one label map on the CT's grid (uint16 ontology ids; highest probability wins)."""
        self._require_volume()
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
    def replay(cls, session: dict, ct, model=None, **kwargs) -> "Predictor":
        """Re-run a session log on ``ct`` (a CTVolume, a path or a SimpleITK image); gives bit-identical masks
        with the same model."""
        return SessionLog.replay(cls, session, ct, model, **kwargs)

    @classmethod
    def restore(cls, path, ct, model=None, **kwargs) -> "Predictor":
        """Bring back an autosaved session (a JSON file or the autosave folder) after a restart, on ``ct`` (as
        for `replay`)."""
        return SessionLog.restore(cls, path, ct, model, **kwargs)
