"""Checkpoints: weights plus JSON metadata, loaded safely.

A checkpoint file is a ``torch.save`` of ``{"state_dict": {...tensors...},
"metadata": "<json>"}``. It is always read with ``weights_only=True``, so a file
holding pickled code is refused instead of run. The metadata records the
config, library version, training data, date, metrics and a SHA-256 of the
weights, which is checked on load.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import pickle
import warnings
from pathlib import Path

import torch

from ._atomic import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "load_model", "shipped_checkpoint", "CheckpointError"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


class CheckpointError(ValueError):
    """A checkpoint file is unsafe, damaged, or does not fit the model."""


def weights_sha256(state_dict) -> str:
    """SHA-256 over parameter names, shapes, dtypes and bytes, in sorted name order."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        t = state_dict[k].detach().cpu().contiguous()
        h.update(f"{k}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_checkpoint(model, path, metadata: dict | None = None, overwrite: bool = False,
                    dtype: torch.dtype | None = None) -> Path:
    """Write ``model``'s weights and metadata atomically; refuses to overwrite unless asked.

    ``dtype=torch.float16`` stores floating-point weights at half size (they are cast back
    to the model's dtype on load); the hash covers the stored tensors.
    """
    from . import __version__

    path = Path(path).expanduser()
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' exists; pass overwrite=True to replace it")
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
        **(metadata or {}),
        "weights_dtype": str(dtype or "as trained").replace("torch.", ""),
        "weights_sha256": weights_sha256(state),
    }
    atomic_write(path, lambda tmp: torch.save({"state_dict": state, "metadata": json.dumps(meta)}, tmp))
    return path


def load_checkpoint(path) -> tuple[dict, dict]:
    """Read ``(state_dict, metadata)`` safely (no code is ever executed) and verify the weights hash."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: '{path}'")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"refusing to load '{path}': it holds pickled objects other than tensors "
                              f"(possibly code). Only trusted ctsam3d_nb checkpoints load. ({str(e)[:200]})") from None
    except Exception as e:  # zip/EOF errors of damaged files
        raise CheckpointError(f"'{path}' is not a readable checkpoint ({type(e).__name__}: {str(e)[:200]}). "
                              "It may be truncated; copy it again.") from None
    if not isinstance(obj, dict) or "state_dict" not in obj or "metadata" not in obj:
        raise CheckpointError(f"'{path}' is not a ctsam3d_nb checkpoint (expected keys state_dict and metadata)")
    try:
        meta = json.loads(obj["metadata"])
    except (TypeError, json.JSONDecodeError):
        raise CheckpointError(f"'{path}' has unreadable metadata") from None
    state = obj["state_dict"]
    if meta.get("format") != "ctsam3d_nb.checkpoint":
        raise CheckpointError(f"'{path}' is not a ctsam3d_nb checkpoint (metadata format {meta.get('format')!r})")
    if weights_sha256(state) != meta.get("weights_sha256"):
        raise CheckpointError(f"'{path}': the weights do not match the hash in their metadata; the file was "
                              "modified or damaged. Re-download or re-train it.")
    return state, meta


def shipped_checkpoint(name: str) -> Path:
    """Path of the checkpoint shipped in the package for config ``name``."""
    return WEIGHTS_DIR / f"{name}.pt"


def load_model(name_or_path="nano", device="auto", pretrained: bool = True):
    """A ready model: a config name (shipped weights) or a checkpoint path.

    Args:
        name_or_path: "nano", "tiny", "base" or the path of a ``.pt`` checkpoint.
        device: "auto" (CUDA if available, else CPU), "cpu", "cuda" or a torch.device.
        pretrained: for a config name, load its shipped weights; ``False`` gives random weights.
    """
    from .modeling import MODEL_CONFIGS, build_model

    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    name = str(name_or_path)
    if name in MODEL_CONFIGS and not Path(name).exists():
        if not pretrained:
            return build_model(name).to(device).eval()
        path = shipped_checkpoint(name)
        if not path.exists():
            shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.pt")) if WEIGHTS_DIR.exists() else []
            raise FileNotFoundError(f"no trained weights are shipped for '{name}' (shipped: {shipped or 'none'}). "
                                    "Train them (python -m ctsam3d_nb.train) or pass pretrained=False.")
    else:
        path = Path(name_or_path)
        if not path.exists():
            raise FileNotFoundError(f"'{name}' is neither a model name ({', '.join(MODEL_CONFIGS)}) nor a file")
    state, meta = load_checkpoint(path)
    cfg = meta.get("config", {})
    cfg_name = cfg.get("name")
    if cfg_name not in MODEL_CONFIGS:
        raise CheckpointError(f"'{path}' was made for an unknown config {cfg_name!r}")
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
        raise CheckpointError(f"'{path}' does not fit the '{cfg_name}' model: {str(e)[:300]}") from None
    if meta.get("library_version") is None:
        warnings.warn(f"'{path}' has no library version in its metadata", stacklevel=2)
    model.checkpoint_info = {"path": str(path), "sha256": meta["weights_sha256"], "date": meta.get("date")}
    model.metadata = meta
    return model.to(device).eval()
