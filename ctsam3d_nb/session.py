"""The session log of a :class:`~ctsam3d_nb.predictor.Predictor`: what was done, replay, autosave, restore.

A log is JSON: the CT's fingerprint, the model, the click settings (a dict of
:class:`~ctsam3d_nb.settings.ClickSettings`) and the events (clicks, objects, undo/redo).
Replaying it on the same CT with the same model gives bit-identical masks.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from ._atomic import atomic_write
from .settings import ClickSettings
from .volume import CTVolume

__all__ = ["SessionLog", "ct_fingerprint"]


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
    # settings that older logs left out take the defaults of their time: cross-patch growth (no zoom
    # levels before session 4), with CPP heatmaps (before session 3)
    LEGACY_SETTINGS = {"mode": "grow", "cpp_heatmaps": True, "cpp_peak_threshold": None, "growth_guard": False,
                       "growth_min_agreement": 0.5}
    MAX_UNDO = 30  # snapshots kept for undo (bounded memory over long sessions)
    FILE = "ctsam3d_session.json"

    def __init__(self, predictor):
        self.predictor = predictor
        self.events: list[dict] = []
        self._warned = False

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
            "settings": p.settings.to_dict(),
            "events": [dict(e) for e in self.events],
        }

    def autosave(self):
        """Write the log to the autosave folder. A failure (read-only folder, disk full, a file where the
        folder should be) warns once per predictor and never fails the action that was just done."""
        folder = self.predictor.autosave
        if folder is None:
            return
        folder = Path(folder).expanduser()
        target = folder / self.FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            text = json.dumps(self.to_dict())
            atomic_write(target, lambda tmp: Path(tmp).write_text(text))
        except OSError as e:
            if not self._warned:
                warnings.warn(f"autosave to '{target}' failed ({e}); the session goes on unsaved. Choose another "
                              "folder (Predictor(autosave=...)) or save predictor.session yourself.", stacklevel=3)
                self._warned = True

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
        try:
            settings = ClickSettings.from_dict(settings, defaults=SessionLog.LEGACY_SETTINGS)
            pred = cls(model, settings, **kwargs)
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
