"""Turn a training run's ``last.pt`` into a library checkpoint (weights + metadata).

    python -m ctsam3d_nb.training.export runs/nano ctsam3d_nb/weights/nano.pt --overwrite

A run trained with ``ema_decay`` exports its weight average; ``--raw`` exports the last step's weights.

Every user error (no such run, an unreadable or diverged last.pt, an existing output without
``--overwrite``, a bad ``--metadata`` file) is one ``error: ...`` line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import json
import pickle
import sys
import warnings
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, _check_magic, save_checkpoint
from ..modeling import MODEL_CONFIGS, build_model
from .config import RUN_FILES


def active_wall_time(lines, pause_s: float = 600.0) -> float:
    """Seconds of training in a metrics log: the gaps between consecutive lines, leaving out gaps
    longer than ``pause_s`` (a run stopped and resumed later, e.g. in the next session)."""
    t = sorted(float(l["time"]) for l in lines if "time" in l)
    gaps = [b - a for a, b in zip(t, t[1:])]
    return round(sum(g for g in gaps if g <= pause_s), 1)


def _read_last(run_dir: Path) -> dict:
    """The training state in ``run_dir/last.pt``, checked; CheckpointError/FileNotFoundError name the fix."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder '{run_dir}' does not exist (or is not a folder). Pass the --out-dir "
                                "of a training run (python -m ctsam3d_nb.train).")
    last = run_dir / "last.pt"
    if not last.is_file():
        raise FileNotFoundError(f"'{run_dir}' has no last.pt: it is not a training run's folder, or the run has not "
                                "saved yet (it saves every --save-every steps and at the end).")
    _check_magic(last)
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(f"refusing to load '{last}': it holds pickled objects other than tensors (possibly "
                              "code). Export only runs you trained yourself.") from None
    except (RuntimeError, OSError, EOFError, ValueError) as e:
        raise CheckpointError(f"'{last}' is not readable ({type(e).__name__}: {str(e)[:200]}). It may be cut off: "
                              "resume the run (python -m ctsam3d_nb.train --out-dir ...) to write it again.") from None
    ok = (isinstance(state, dict) and isinstance(state.get("config"), dict) and isinstance(state.get("model"), dict)
          and isinstance(state.get("step"), int) and all(isinstance(v, torch.Tensor) for v in state["model"].values())
          and isinstance(state.get("ema", {}), dict))
    if not ok:
        raise CheckpointError(f"'{last}' is not a training run's last.pt (expected model, step and config). "
                              "Export the folder of a run written by python -m ctsam3d_nb.train.")
    if state["config"].get("model") not in MODEL_CONFIGS:
        raise CheckpointError(f"'{last}' was trained as an unknown model {state['config'].get('model')!r} (this "
                              f"library has {', '.join(MODEL_CONFIGS)}). Export it with the library version "
                              "that trained it.")
    if "ema" in state:  # torch.optim.swa_utils.AveragedModel's state: module.<name> and n_averaged
        state["ema"] = {k[len("module."):]: v for k, v in state["ema"].items() if k.startswith("module.")}
    bad = [f"{part}.{k}" for part in ("model", "ema") for k, v in state.get(part, {}).items()
           if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"'{last}' holds non-finite weights (NaN or inf) in {len(bad)} tensors, e.g. {bad[:3]}: "
                              f"the training diverged at or before step {state['step']}. Retrain with a lower --lr "
                              "(or --grad-clip); there is nothing worth exporting.")
    return state


def export_run(run_dir, path, metadata: dict | None = None, overwrite: bool = False, half: bool = True,
               raw: bool = False) -> Path:
    """Write the weights of ``run_dir/last.pt`` as a checkpoint at ``path`` with the run's config
    (float16 storage by default: half the size, cast back to float32 on load): the run's weight average
    when it kept one (``TrainConfig.ema_decay``), else (or with ``raw``) the last step's weights.

    Raises:
        FileNotFoundError: no such run folder, or no last.pt in it.
        CheckpointError: last.pt is unreadable, not a run's, of an unknown model, does not fit
            the model, or holds NaN/inf weights.
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        ValueError: ``path`` is a folder or one of the run's own files.
    """
    run_dir = Path(run_dir).expanduser()
    path = Path(path).expanduser()
    if path.is_dir():
        raise ValueError(f"'{path}' is a folder; pass the checkpoint file to write, e.g. '{path / 'model.pt'}'")
    if path.resolve().parent == run_dir.resolve() and path.name in RUN_FILES and path.name != "model.pt":
        raise ValueError(f"refusing to write '{path}': that is the run's own {path.name}. Choose another file name, "
                         f"e.g. '{run_dir / 'model.pt'}'.")
    if path.exists() and not overwrite:
        raise FileExistsError(f"'{path}' exists; pass --overwrite (overwrite=True) to replace it, "
                              "or choose another name")
    state = _read_last(run_dir)
    cfg = state["config"]
    model = build_model(cfg["model"])
    weights = "model" if raw or "ema" not in state else "ema"
    try:
        model.load_state_dict(state[weights], strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"'{run_dir / 'last.pt'}' does not fit the '{cfg['model']}' model: {str(e)[:300]}. "
                              "Export it with the library version that trained it.") from None
    meta = {"training": {"config": cfg, "steps_done": int(state["step"]),
                         "weights": "raw" if weights == "model" else f"ema {cfg.get('ema_decay')}"}}
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        lines = []
        for i, text in enumerate(metrics.read_text(errors="replace").splitlines(), 1):
            try:
                line = json.loads(text) if text.strip() else None
            except ValueError:
                line = None
                warnings.warn(f"'{metrics}' line {i} is not JSON (cut off by an interruption?); left out", stacklevel=2)
            if isinstance(line, dict):
                lines.append(line)
        if lines:
            meta["training"]["wall_time_s"] = active_wall_time(lines)
            meta["training"]["last_metrics"] = {k: v for k, v in lines[-1].items() if k != "time"}
    meta.update(metadata or {})
    return save_checkpoint(model, path, metadata=meta, overwrite=overwrite, dtype=torch.float16 if half else None)


def _metadata(path) -> dict | None:
    if not path:
        return None
    try:
        meta = json.loads(Path(path).read_text())
    except ValueError as e:
        raise ValueError(f"--metadata '{path}' is not valid JSON ({e}); it must hold one JSON object") from None
    if not isinstance(meta, dict):
        raise ValueError(f"--metadata '{path}' holds a {type(meta).__name__}; it must hold one JSON object "
                         '(e.g. {"data": "...", "metrics": {...}})')
    return meta


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (2: a user error, printed as one ``error:`` line)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("path")
    ap.add_argument("--metadata", help="JSON file merged into the metadata (data description, metrics...)")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--raw", action="store_true", help="the last step's weights, not the run's weight average")
    args = ap.parse_args(argv)
    try:
        print(export_run(args.run_dir, args.path, _metadata(args.metadata), args.overwrite, raw=args.raw))
    except (OSError, ValueError) as e:  # CheckpointError is a ValueError; FileNotFoundError/FileExistsError OSErrors
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
