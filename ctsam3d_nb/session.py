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
from .anatomy import near_miss
from .checkpoint import load_model
from .io import as_ct
from .predictor_state import free_label_id
from .settings import ClickSettings
from .volume import CTVolume

__all__ = ["SessionLog", "ReplayWarning", "ct_fingerprint"]


class ReplayWarning(UserWarning):
    """A session log is replayed in conditions that can give other masks than the recorded ones."""


def _voxel_sample(ct: CTVolume) -> np.ndarray:
    a = ct.array
    return np.ascontiguousarray(a[:: max(1, a.shape[0] // 16), ::8, ::8])


def ct_fingerprint(ct: CTVolume) -> dict:
    """Geometry plus a hash of a voxel subsample: enough to refuse replay on another scan. The voxels are
    hashed as float32 HU, so the same scan loaded as int16 (a file) or as floats (e.g. nibabel's
    ``get_fdata()``) has one fingerprint."""
    return {
        "shape": list(ct.shape),
        "spacing": [round(s, 6) for s in ct.spacing],
        "origin": [round(o, 4) for o in ct.origin],
        "direction": [round(d, 6) for d in ct.direction.ravel()],
        "voxels_sha1": hashlib.sha1(_voxel_sample(ct).astype("<f4").tobytes()).hexdigest(),
    }


def _same_scan(key: str, recorded, ct: CTVolume, have: dict) -> bool:
    if recorded == have[key]:
        return True
    # logs before session 29 hashed the voxels in the array's own dtype
    return key == "voxels_sha1" and recorded == hashlib.sha1(_voxel_sample(ct).tobytes()).hexdigest()


class SessionLog:
    """The JSON log of a predictor session, its autosave and its replay."""

    VERSION = 1
    # settings that older logs left out take the defaults of their time: cross-patch growth (no zoom
    # levels before session 4), with CPP heatmaps (before session 3), keeping every part (before session 7),
    # no retraction after negative clicks (before session 11); grown patches seeded with a click (before session 28)
    LEGACY_SETTINGS = {"mode": "grow", "keep_connected": False, "cpp_heatmaps": True, "cpp_peak_threshold": None,
                       "growth_guard": False, "growth_min_agreement": 0.5, "retract_budget": 0,
                       "self_rounds": 0, "growth_seed": True}
    MAX_UNDO = 30  # snapshots kept for undo (bounded memory over long sessions)
    FILE = "ctsam3d_session.json"

    def __init__(self, predictor):
        self.predictor = predictor
        self.events: list[dict] = []
        self._warned = False
        self._written = None  # the autosave file as this session last wrote (or restored) it: _file_id()

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
            "cache_patches": p.cache_patches,  # which cached patch a click reuses depends on it
            "events": [dict(e) for e in self.events],
        }

    KEEP = 5  # earlier sessions kept in an autosave folder: ctsam3d_session.1.json (newest) .. .5.json

    def autosave(self):
        """Write the log to the autosave folder.

        A write never replaces another session's file: that one moves to ``ctsam3d_session.1.json`` (older
        ones to ``.2`` .. ``.5``), with a warning that says so. This holds for a session's first write and
        for any later one after another predictor wrote there (a re-run cell while an older viewer still
        clicks with the old predictor): the file must be the one this session wrote last. A failure
        (read-only folder, disk full, a file where the folder should be) warns once per predictor and
        never fails the action that was just done."""
        folder = self.predictor.autosave
        if folder is None:
            return
        folder = Path(folder).expanduser()
        target = folder / self.FILE
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if target.exists() and self._file_id(target) != self._written:
                kept = self._rotate(target)
                warnings.warn(f"'{target}' held an earlier session; it was kept as '{kept.name}' (the "
                              f"{self.KEEP} latest are kept). Restore it with Predictor.restore('{kept}', ct).",
                              stacklevel=3)
            text = json.dumps(self.to_dict())
            atomic_write(target, lambda tmp: Path(tmp).write_text(text))
            self._written = self._file_id(target)
        except OSError as e:
            if not self._warned:
                warnings.warn(f"autosave to '{target}' failed ({e}); the session goes on unsaved. Choose another "
                              "folder (Predictor(autosave=...)) or save predictor.session yourself.", stacklevel=3)
                self._warned = True

    @staticmethod
    def _file_id(path: Path):
        """Which write of ``path`` is on disk: each atomic write is a new file (inode, time, size)."""
        st = path.stat()
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def adopt(self, path: Path) -> None:
        """Continue the autosave file ``path`` (a restored session): its next write replaces it."""
        self._written = self._file_id(path)

    def _rotate(self, target: Path) -> Path:
        stem = target.name[: -len(".json")]
        for i in range(self.KEEP - 1, 0, -1):
            older = target.with_name(f"{stem}.{i}.json")
            if older.exists():
                older.replace(target.with_name(f"{stem}.{i + 1}.json"))
        kept = target.with_name(f"{stem}.1.json")
        target.replace(kept)
        return kept

    @staticmethod
    def replay(cls, session: dict, ct: CTVolume, model=None, **kwargs):
        if not isinstance(session, dict) or session.get("format") != "ctsam3d_nb.session":
            raise ValueError("not a ctsam3d_nb session log (expected a dict with format 'ctsam3d_nb.session'; "
                             "use predictor.session or the autosaved JSON)")
        if session.get("version") != SessionLog.VERSION:
            raise ValueError(f"session log version {session.get('version')} is not supported "
                             f"(this library reads version {SessionLog.VERSION})")
        ct = as_ct(ct, "replay/restore", "need")
        if session.get("ct") is not None and not isinstance(session["ct"], dict):
            raise ValueError("session 'ct' must be an object (the CT's fingerprint) or null")
        if session.get("ct"):
            want, have = dict(session["ct"]), ct_fingerprint(ct)
            want.pop("source", None)
            diff = [k for k in have if k in want and not _same_scan(k, want[k], ct, have)]
            if diff:
                raise ValueError(f"this session was recorded on another CT (differs in: {', '.join(diff)}). "
                                 "Load the same scan it was made on.")
        if model is None:
            name = (session.get("model") or {}).get("name") or "nano"
            model = load_model(name)
        recorded = ((session.get("model") or {}).get("checkpoint") or {}).get("sha256")
        using = (getattr(model, "checkpoint_info", None) or {}).get("sha256")
        if recorded and recorded != using:
            warnings.warn(f"this session was recorded with the weights sha256 {recorded[:12]}…, but it is replayed "
                          f"with {'sha256 ' + using[:12] + '…' if using else 'weights of no checkpoint'}: the masks "
                          "can differ from the recorded ones. Pass model=load_model(<the checkpoint it was made "
                          "with>) to reproduce them exactly.", ReplayWarning, stacklevel=3)
        autosave = kwargs.pop("autosave", None)  # nothing is written before the whole log has replayed
        if "cache_patches" in session and "cache_patches" not in kwargs:  # logs since session 31
            kwargs["cache_patches"] = session["cache_patches"]
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
                    pred.click(ev["zyx"], positive=ev["positive"])
                elif op == "new_object":  # a custom name near an ontology one is refused since session 31: its id
                    name, label_id = str(ev["name"]), ev.get("label_id")
                    if label_id is None and near_miss(name) is not None:
                        label_id = free_label_id(pred.objects)  # what it was given when it was made
                    pred.new_object(name, label_id)
                elif op == "select":
                    pred.select_object(ev["index"])
                elif op in ("undo", "redo", "reset"):
                    getattr(pred, op)()
                else:
                    raise ValueError(f"unknown op {op!r}")
            except (TypeError, KeyError, ValueError) as e:
                raise ValueError(f"session event {i} {ev!r} cannot be replayed: {e}") from None
        pred.autosave = autosave
        return pred

    @staticmethod
    def restore(cls, path, ct: CTVolume, model=None, **kwargs):
        ct = as_ct(ct, "replay/restore", "need")  # before the file is read: a wrong CT argument is named as such
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / SessionLog.FILE
        if not path.exists():
            raise FileNotFoundError(f"no autosaved session at '{path}'")
        try:
            session = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"'{path}' is not a valid session file ({e})") from None
        folder = kwargs.pop("autosave", path.parent)
        pred = SessionLog.replay(cls, session, ct, model, **kwargs)
        pred.autosave = folder
        # the restored session continues the file it came from (no backup of itself on the next write)
        if folder is not None and Path(folder).expanduser() / SessionLog.FILE == path:
            pred.log.adopt(path)
        return pred
