"""State behind :class:`~ctsam3d_nb.predictor.Predictor`: objects, click checks,
masks back on the CT grid, and the session log (replay, autosave, restore)."""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import patches as P
from ._atomic import atomic_write
from .grid import ModelGrid
from .volume import CTVolume

CUSTOM_ID_START = 1000


def check_click(zyx, shape) -> tuple[float, float, float]:
    """Validate a click ``(z, y, x)`` against a volume shape; returns floats."""
    if isinstance(zyx, (str, bytes)) or not hasattr(zyx, "__len__"):
        raise TypeError(f"a click is a (z, y, x) voxel index, got {zyx!r}")
    if len(zyx) != 3:
        raise ValueError(f"a click needs 3 coordinates (z, y, x), got {len(zyx)}: {tuple(zyx)!r}")
    try:
        v = tuple(float(c) for c in zyx)
    except (TypeError, ValueError):
        raise TypeError(f"click coordinates must be numbers (z, y, x), got {tuple(zyx)!r}") from None
    if not all(math.isfinite(c) for c in v):
        raise ValueError(f"click coordinates must be finite, got {v}")
    for c, n, name in zip(v, shape, "zyx"):
        if not -0.5 <= c <= n - 0.5:
            raise ValueError(f"click {tuple(round(x, 2) for x in v)} is outside the volume: {name} must lie in "
                             f"0..{n - 1} (volume shape (z, y, x) = {tuple(shape)}). Coordinates are voxel "
                             "indices in numpy (z, y, x) order, not millimetres or (x, y, z).")
    return v


@dataclass
class ObjectState:
    """One segmented object: its name, ontology id, clicks and per-patch probabilities."""

    name: str
    label_id: int
    masks: P.PatchMasks
    clicks: list = field(default_factory=list)  # [(ct_zyx, grid_zyx, positive)]

    @classmethod
    def create(cls, name, label_id, grid_shape, existing) -> "ObjectState":
        if label_id is None:
            from .anatomy import by_name

            try:
                label_id = by_name(name).id
            except KeyError:
                used = [o.label_id for o in existing if o.label_id >= CUSTOM_ID_START]
                label_id = max(used, default=CUSTOM_ID_START - 1) + 1
        label_id = int(label_id)
        if not 0 < label_id < 65536:
            raise ValueError(f"label_id must be in 1..65535, got {label_id}")
        return cls(str(name), label_id, P.PatchMasks(grid_shape))

    def add_click(self, ct_zyx, grid_zyx, positive: bool):
        self.clicks.append((tuple(ct_zyx), tuple(grid_zyx), bool(positive)))

    def clicks_in(self, origin):
        """Clicks inside patch ``origin`` as patch-local ``(z, y, x)`` points and 1/0 labels."""
        pts, labels = [], []
        o = np.asarray(origin, float)
        for _, g, pos in self.clicks:
            if P.contains(origin, g):
                pts.append(np.asarray(g) - o)
                labels.append(1 if pos else 0)
        return np.reshape(pts, (-1, 3)), np.asarray(labels, np.int64)

    def snapshot(self) -> "ObjectState":
        return ObjectState(self.name, self.label_id, self.masks.copy(), list(self.clicks))

    def cleared(self) -> "ObjectState":
        return ObjectState(self.name, self.label_id, P.PatchMasks(self.masks.grid_shape))

    @property
    def color(self):
        from .anatomy import by_id

        try:
            return by_id(self.label_id).color
        except KeyError:
            rng = np.random.default_rng(self.label_id)
            return tuple(int(c) for c in rng.integers(60, 255, 3))


def _ct_box(grid: ModelGrid, ct: CTVolume, lo, hi):
    """CT index box ``[a, b)`` (z, y, x) covering the grid box ``[lo, hi)``."""
    corners = np.array(np.meshgrid(*[[l - 0.5, h - 0.5] for l, h in zip(lo, hi)], indexing="ij")).reshape(3, -1).T
    c = grid.to_ct_index(ct, corners)
    a = np.clip(np.floor(c.min(0)) - 1, 0, ct.shape).astype(int)
    b = np.clip(np.ceil(c.max(0)) + 2, 0, ct.shape).astype(int)
    return a, b


def _grid_box_to_ct(arr: np.ndarray, lo, grid: ModelGrid, ct: CTVolume, out: np.ndarray):
    """Nearest-neighbour copy of a grid sub-array (origin ``lo``) into ``out`` (ct.shape)."""
    hi = np.asarray(lo) + arr.shape
    a, b = _ct_box(grid, ct, lo, hi)
    if np.any(b <= a):
        return out
    src = sitk.GetImageFromArray(np.ascontiguousarray(arr))
    src.SetSpacing((grid.spacing,) * 3)
    src.SetOrigin(tuple(grid.index_to_physical(lo)))
    ref = sitk.Image([int(v) for v in (b - a)[::-1]], src.GetPixelID())
    ref.SetSpacing(ct.image.GetSpacing())
    ref.SetDirection(ct.image.GetDirection())
    ref.SetOrigin(tuple(ct.index_to_physical(a)))
    res = sitk.GetArrayFromImage(sitk.Resample(src, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0))
    out[a[0]:b[0], a[1]:b[1], a[2]:b[2]] = res
    return out


def to_ct_mask(masks: P.PatchMasks, grid: ModelGrid, ct: CTVolume, threshold: float) -> np.ndarray:
    """One object's blended patches, thresholded, on the CT's voxel grid (bool, ct.shape)."""
    out = np.zeros(ct.shape, bool)
    bb = masks.bbox()
    if bb is None:
        return out
    m = (masks.blended(*bb) > threshold).astype(np.uint8)
    _grid_box_to_ct(m, bb[0], grid, ct, out.view(np.uint8))
    return out


def to_ct_label_map(objects, grid: ModelGrid, ct: CTVolume, threshold: float) -> np.ndarray:
    """All objects in one uint16 label map on the CT grid; the most probable object wins."""
    out = np.zeros(ct.shape, np.uint16)
    boxes = [o.masks.bbox() for o in objects]
    live = [(o, b) for o, b in zip(objects, boxes) if b is not None]
    if not live:
        return out
    lo = np.min([b[0] for _, b in live], 0)
    hi = np.max([b[1] for _, b in live], 0)
    best = np.full(tuple(hi - lo), threshold, np.float32)
    lab = np.zeros(tuple(hi - lo), np.uint16)
    for o, _ in live:
        p = o.masks.blended(lo, hi)
        win = p > best
        best[win] = p[win]
        lab[win] = o.label_id
    return _grid_box_to_ct(lab, lo, grid, ct, out)


def ct_fingerprint(ct: CTVolume) -> dict:
    """Geometry plus a hash of a voxel subsample: enough to refuse replay on another scan."""
    a = ct.array
    sub = np.ascontiguousarray(a[:: max(1, a.shape[0] // 16), ::8, ::8])
    return {
        "shape": list(ct.shape),
        "spacing": [round(s, 6) for s in ct.spacing],
        "origin": [round(o, 4) for o in ct.origin],
        "direction": [round(d, 6) for d in ct.direction.ravel()],
        "voxels_sha1": hashlib.sha1(sub.tobytes()).hexdigest(),
    }


class SessionLog:
    """The JSON log of a predictor session, its autosave and its replay."""

    VERSION = 1
    # growth settings that older logs recorded only when they differed from the defaults of the time
    LEGACY_SETTINGS = {"cpp_heatmaps": True, "cpp_peak_threshold": None, "growth_guard": False,
                       "growth_min_agreement": 0.5}
    MAX_UNDO = 30  # snapshots kept for undo (bounded memory over long sessions)
    FILE = "ctsam3d_session.json"

    def __init__(self, predictor):
        self.predictor = predictor
        self.events: list[dict] = []

    def add(self, event: dict):
        self.events.append(event)

    def to_dict(self) -> dict:
        p = self.predictor
        model = getattr(p.model, "config", None)
        return {
            "format": "ctsam3d_nb.session",
            "version": self.VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "ct": {"source": p.ct.source, **ct_fingerprint(p.ct)} if p.ct is not None else None,
            "model": {"name": getattr(model, "name", None), "checkpoint": getattr(p.model, "checkpoint_info", None)},
            "settings": {"growth_budget": p.growth_budget, "threshold": p.threshold,
                         "cpp_heatmaps": p.cpp_heatmaps, "cpp_peak_threshold": p.cpp_peak_threshold,
                         "growth_guard": p.growth_guard, "growth_min_agreement": p.growth_min_agreement},
            "events": [dict(e) for e in self.events],
        }

    def autosave(self):
        folder = self.predictor.autosave
        if folder is None:
            return
        folder = Path(folder).expanduser()
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / self.FILE
        text = json.dumps(self.to_dict())
        atomic_write(target, lambda tmp: Path(tmp).write_text(text))

    @staticmethod
    def replay(cls, session: dict, ct: CTVolume, model=None, **kwargs):
        if not isinstance(session, dict) or session.get("format") != "ctsam3d_nb.session":
            raise ValueError("not a ctsam3d_nb session log (expected a dict with format 'ctsam3d_nb.session'; "
                             "use predictor.session or the autosaved JSON)")
        if session.get("version") != SessionLog.VERSION:
            raise ValueError(f"session log version {session.get('version')} is not supported "
                             f"(this library reads version {SessionLog.VERSION})")
        if session.get("ct") is not None and not isinstance(session["ct"], dict):
            raise ValueError("session 'ct' must be an object (the CT's fingerprint) or null")
        if session.get("ct"):
            want, have = dict(session["ct"]), ct_fingerprint(ct)
            want.pop("source", None)
            diff = [k for k in have if k in want and want[k] != have[k]]
            if diff:
                raise ValueError(f"this session was recorded on another CT (differs in: {', '.join(diff)}). "
                                 "Load the same scan it was made on.")
        if model is None:
            from .checkpoint import load_model

            name = (session.get("model") or {}).get("name") or "nano"
            model = load_model(name)
        events, settings = session.get("events", []), session.get("settings") or {}
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise ValueError("session 'events' must be a list of {'op': ...} objects")
        if not isinstance(settings, dict):
            raise ValueError("session 'settings' must be an object")
        unknown = set(settings) - set(SessionLog.LEGACY_SETTINGS) - {"growth_budget", "threshold"}
        if unknown:
            raise ValueError(f"session 'settings' has unknown keys {sorted(unknown)}")
        settings = {**SessionLog.LEGACY_SETTINGS, **settings}  # older logs left out settings at their defaults
        try:
            pred = cls(model, **{**settings, **kwargs})
        except (TypeError, ValueError) as e:
            raise ValueError(f"session 'settings' are invalid: {e}") from None
        pred.set_volume(ct)
        for i, ev in enumerate(events):
            op = ev.get("op")
            try:
                if op == "click":
                    pred.click(ev["zyx"], positive=bool(ev["positive"]))
                elif op == "new_object":
                    pred.new_object(str(ev["name"]), ev.get("label_id"))
                elif op == "select":
                    pred.select_object(int(ev["index"]))
                elif op in ("undo", "redo", "reset"):
                    getattr(pred, op)()
                else:
                    raise ValueError(f"unknown op {op!r}")
            except (TypeError, KeyError, ValueError) as e:
                raise ValueError(f"session event {i} {ev!r} cannot be replayed: {e}") from None
        return pred

    @staticmethod
    def restore(cls, path, ct: CTVolume, model=None, **kwargs):
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / SessionLog.FILE
        if not path.exists():
            raise FileNotFoundError(f"no autosaved session at '{path}'")
        try:
            session = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"'{path}' is not a valid session file ({e})") from None
        kwargs.setdefault("autosave", path.parent)
        return SessionLog.replay(cls, session, ct, model, **kwargs)
