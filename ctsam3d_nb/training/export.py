"""Turn a training run's ``last.pt`` into a library checkpoint (weights + metadata).

    python -m ctsam3d_nb.training.export runs/nano ctsam3d_nb/weights/nano.pt --overwrite
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ..checkpoint import save_checkpoint
from ..modeling import build_model


def active_wall_time(lines, pause_s: float = 600.0) -> float:
    """Seconds of training in a metrics log: the gaps between consecutive lines, leaving out gaps
    longer than ``pause_s`` (a run stopped and resumed later, e.g. in the next session)."""
    t = sorted(float(l["time"]) for l in lines if "time" in l)
    gaps = [b - a for a, b in zip(t, t[1:])]
    return round(sum(g for g in gaps if g <= pause_s), 1)


def export_run(run_dir, path, metadata: dict | None = None, overwrite: bool = False, half: bool = True) -> Path:
    """Write the weights of ``run_dir/last.pt`` as a checkpoint at ``path`` with the run's config
    (float16 storage by default: half the size, cast back to float32 on load)."""
    run_dir = Path(run_dir)
    state = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    cfg = state["config"]
    model = build_model(cfg["model"])
    model.load_state_dict(state["model"], strict=True)
    meta = {"training": {"config": cfg, "steps_done": int(state["step"])}}
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        lines = [json.loads(l) for l in metrics.read_text().splitlines() if l.strip()]
        if lines:
            meta["training"]["wall_time_s"] = active_wall_time(lines)
            meta["training"]["last_metrics"] = {k: v for k, v in lines[-1].items() if k != "time"}
    meta.update(metadata or {})
    return save_checkpoint(model, path, metadata=meta, overwrite=overwrite, dtype=torch.float16 if half else None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("path")
    ap.add_argument("--metadata", help="JSON file merged into the metadata (data description, metrics...)")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args(argv)
    meta = json.loads(Path(args.metadata).read_text()) if args.metadata else None
    print(export_run(args.run_dir, args.path, meta, args.overwrite))


if __name__ == "__main__":
    main()
