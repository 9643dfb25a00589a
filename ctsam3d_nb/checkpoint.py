"""Checkpoints: weights plus JSON metadata, loaded safely.

A checkpoint file is a ``torch.save`` of ``{"state_dict": {...tensors...},
"metadata": "<json>"}``. It is always read with ``weights_only=True``, so a file
holding pickled code is refused instead of run. The metadata records the
config, library version, training data, date, metrics and a SHA-256 of the
weights, which is checked on load.

Every failure to load is a :class:`CheckpointError` whose message names the file and the fix: a
missing file (:class:`CheckpointNotFoundError`, also a ``FileNotFoundError``), a folder, an unreadable,
truncated, foreign, malformed or tampered file, pickled code, weights that are NaN/inf (a diverged
training), or weights that do not fit the model.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch

from ._atomic import atomic_write
from ._version import __version__
from .modeling import MODEL_CONFIGS, build_model
from .patch_model import resolve_device

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "shipped_checkpoint", "CheckpointError",
           "CheckpointNotFoundError"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unsafe, damaged, non-finite, or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No checkpoint at that path (and no model of that name): both a CheckpointError and a FileNotFoundError."""


def _folder_hint(path: Path) -> str:
    """What to load instead of the folder ``path``."""
    if (path / "model.pt").is_file():
        return f"It looks like a training run: load its checkpoint '{path / 'model.pt'}'."
    if (path / "last.pt").is_file():
        return ("It holds a training run's last.pt (training state, not a checkpoint): export it first with "
                f"`python -m ctsam3d_nb.training.export {path} {path / 'model.pt'}` and load that file.")
    inside = sorted(p.name for p in path.glob("*.pt"))[:5]
    if inside:
        return f"Pass one of the .pt files inside it: {inside}."
    return "Pass the path of a .pt checkpoint file (as written by save_checkpoint or a training run's model.pt)."


def _check_magic(path: Path) -> None:
    """A torch file starts as a zip archive (``PK``) or a pickle (``\\x80``); anything else (an empty file, an
    HTML page from a failed download, another format named .pt) gets a message saying so, not torch's."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:  # permissions, or a file that vanished
        raise CheckpointError(f"cannot read '{path}': {e.strerror or e}. Check that it exists and that you may "
                              f"read it (`ls -l {path}`).") from None
    if not head:
        raise CheckpointError(f"'{path}' is empty (0 bytes): the copy or download was cut off. Copy it again.")
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):
        raise CheckpointError(f"'{path}' is not a checkpoint file: it begins with {head!r}, not a torch archive "
                              "(an HTML page from a failed download, or another file named .pt?). Download or "
                              "copy it again.")


def _check_structure(path: Path, state) -> None:
    """A mapping of parameter names to tensors, or a CheckpointError naming what is wrong."""
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise CheckpointError(f"'{path}' is malformed: its state_dict is not a mapping of parameter names to "
                              "tensors, so it was not written by save_checkpoint. Re-export it (save_checkpoint, "
                              "or python -m ctsam3d_nb.training.export for a training run).")


def _check_finite(path: Path, state) -> None:
    """NaN/inf weights (a diverged training) give garbage masks: refuse them."""
    bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"'{path}' holds non-finite weights (NaN or inf) in {len(bad)} of {len(state)} tensors, "
                              f"e.g. {bad[:3]}: the training that made it diverged, and every mask would be "
                              "garbage. Use a checkpoint from before the divergence, or retrain with a lower "
                              "--lr (or --grad-clip).")


def weights_sha256(state_dict) -> str:
    """SHA-256 over parameter names, shapes, dtypes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


#: Metadata keys the library writes and reads back itself: ``save_checkpoint`` refuses them from the caller.
RESERVED_METADATA = ("format", "config", "library_version", "torch_version", "weights_dtype", "weights_sha256")


def _json_default(value):
    if isinstance(value, np.generic):  # numpy scalars (float32 metrics, int64 counts)
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_metadata(metadata) -> dict:
    """``metadata`` as JSON-ready values (numpy scalars and arrays, paths converted), or a ValueError naming the
    key that cannot be stored or that would replace one of the library's own."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    out = {}
    for key, value in metadata.items():
        if key in RESERVED_METADATA:
            raise ValueError(f"metadata key {key!r} is the checkpoint's own (the library writes "
                             f"{', '.join(RESERVED_METADATA)}): store yours under another name, e.g. 'training_{key}'")
        try:
            out[str(key)] = json.loads(json.dumps(value, default=_json_default))
        except (TypeError, ValueError) as e:
            raise ValueError(f"metadata[{key!r}] cannot be stored as JSON ({e}): use numbers, strings, lists and "
                             "dicts of them") from None
    return out


def save_checkpoint(model, path, metadata: dict | None = None, overwrite: bool = False,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``model``'s weights and metadata atomically; refuses to overwrite unless asked.

    ``dtype=torch.float16`` stores floating-point weights at half size (they are cast back
    to the model's dtype on load); the hash covers the stored tensors. ``metadata`` is stored as JSON
    (numpy scalars and arrays and paths are converted); its keys may not be :data:`RESERVED_METADATA`.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"'{path}' is a folder; pass a file in it, e.g. '{path / 'model.pt'}'")
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' exists; pass overwrite=True to replace it")
    user_meta = _json_metadata(metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    meta = {
        "format": "ctsam3d_nb.checkpoint",
        "config": dataclasses.asdict(model.config),
        "library_version": __version__,
        "torch_version": torch.__version__,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **user_meta,
        "weights_dtype": str(dtype or "as trained").replace("torch.", ""),
        "weights_sha256": weights_sha256(state),
    }
    atomic_write(path, lambda tmp: torch.save({"state_dict": state, "metadata": json.dumps(meta)}, tmp))
    return path


def load_checkpoint(path) -> tuple[dict, dict]:
    """Read ``(state_dict, metadata)`` safely (no code is ever executed) and verify the weights hash.

    Raises:
        CheckpointNotFoundError: nothing at ``path`` (also a FileNotFoundError).
        CheckpointError: a folder, an unreadable/truncated/foreign/malformed file, pickled objects
            other than tensors, weights that do not match their hash, or non-finite (NaN/inf)
            weights. The message names the file and the fix.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        raise CheckpointError(f"'{path}' is a folder, not a checkpoint file. {_folder_hint(path)}")
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint not found: '{path}'. Check the spelling and the working "
                                      f"directory (now '{Path.cwd()}').")
    if not path.is_file():
        raise CheckpointError(f"'{path}' is not a regular file (a device, pipe or socket). Pass the path of a .pt "
                              "checkpoint file.")
    _check_magic(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"refusing to load '{path}': it holds pickled objects other than tensors "
                              f"(possibly code). Only trusted ctsam3d_nb checkpoints load. ({str(e)[:200]})") from None
    except Exception as e:  # zip/EOF errors of damaged files
        raise CheckpointError(f"'{path}' is not a readable checkpoint ({type(e).__name__}: {str(e)[:200]}). "
                              "It may be truncated; copy it again.") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "metadata" not in obj:
        hint = (" It looks like a training run's last.pt: export it with python -m ctsam3d_nb.training.export."
                if isinstance(obj, dict) and {"model", "opt", "step"} <= set(obj) else
                " Load only files written by save_checkpoint (or a training run's model.pt).")
        raise CheckpointError(f"'{path}' is not a ctsam3d_nb checkpoint (expected keys state_dict and metadata).{hint}")
    try:
        meta = json.loads(obj["metadata"])
    except (TypeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise CheckpointError(f"'{path}' has unreadable metadata (not a JSON object): it was not written by "
                              "save_checkpoint, or was edited. Re-export it, or re-download it.")
    state = obj["state_dict"]
    if meta.get("format") != "ctsam3d_nb.checkpoint":
        raise CheckpointError(f"'{path}' is not a ctsam3d_nb checkpoint (metadata format {meta.get('format')!r}). "
                              "Load only files written by save_checkpoint (or a training run's model.pt).")
    _check_structure(path, state)
    if weights_sha256(state) != meta.get("weights_sha256"):
        raise CheckpointError(f"'{path}': the weights do not match the hash in their metadata; the file was "
                              "modified or damaged. Re-download or re-train it.")
    _check_finite(path, state)
    return state, meta


def shipped_checkpoint(name: str) -> Path:
    """Path of the checkpoint shipped in the package for config ``name``."""
    return WEIGHTS_DIR / f"{name}.pt"


def load_model(name_or_path="nano", device="auto", pretrained: bool = True):
    """A ready model: a config name (shipped weights) or a checkpoint path.

    Args:
        name_or_path: "nano" (shipped weights), "nano_deep", "tiny", "base" or the path of a ``.pt`` checkpoint.
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or a torch.device.
        pretrained: for a config name, load its shipped weights; ``False`` gives random weights.

    Raises:
        CheckpointNotFoundError: neither a model name nor an existing file, or no weights shipped
            for that name (also a FileNotFoundError).
        CheckpointError: the file cannot be loaded (see `load_checkpoint`) or does not fit its model.
        ValueError: an unknown device, or CUDA asked for where torch has none.
    """
    dev = resolve_device(device)
    name = str(name_or_path)
    if name in MODEL_CONFIGS and not Path(name).exists():
        if not pretrained:
            return build_model(name).to(dev).eval()
        path = shipped_checkpoint(name)
        if not path.exists():
            shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt")) if WEIGHTS_DIR.exists() else []
            raise CheckpointNotFoundError(f"no trained weights are shipped for '{name}' (shipped: "
                                          f"{shipped or 'none'}). Train them (python -m ctsam3d_nb.train) or pass "
                                          "pretrained=False.")
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise CheckpointNotFoundError(f"'{name}' is neither a model name ({', '.join(MODEL_CONFIGS)}) nor a file. "
                                          f"Check the spelling and the working directory (now '{Path.cwd()}').")
    state, meta = load_checkpoint(path)
    cfg = meta.get("config", {})
    if not isinstance(cfg, dict):
        raise CheckpointError(f"'{path}' has malformed metadata: 'config' is a {type(cfg).__name__}, not the model "
                              "configuration. Re-export the checkpoint with save_checkpoint.")
    cfg_name = cfg.get("name")
    if cfg_name not in MODEL_CONFIGS:
        raise CheckpointError(f"'{path}' was made for an unknown config {cfg_name!r} (this library has "
                              f"{', '.join(MODEL_CONFIGS)}). Use the library version that made it "
                              f"({meta.get('library_version')}).")
    model = build_model(cfg_name)
    expected = json.loads(json.dumps(dataclasses.asdict(model.config)))  # tuples -> lists, as stored
    if cfg != expected:
        diff = sorted(k for k in set(cfg) | set(expected) if cfg.get(k) != expected.get(k))
        raise CheckpointError(f"'{path}' was trained with a different '{cfg_name}' configuration "
                              f"(differs in: {', '.join(diff)}). Use the library version that made it "
                              f"({meta.get('library_version')}).")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"'{path}' does not fit the '{cfg_name}' model: {str(e)[:300]}. Use the library "
                              f"version that made it ({meta.get('library_version')}), or re-export it.") from None
    if meta.get("library_version") is None:
        warnings.warn(f"'{path}' has no library version in its metadata", stacklevel=2)
    model.checkpoint_info = {"path": str(path), "sha256": meta["weights_sha256"], "date": meta.get("date")}
    model.metadata = meta
    return model.to(dev).eval()
