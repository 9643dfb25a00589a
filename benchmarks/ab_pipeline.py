"""Training pipeline throughput of two checkouts, interleaved: patches/s of ``train()`` (the ``cpu-long``
preset, bfloat16, one data worker; `bench_train._pipeline`) from checkout A, then B, then A, ... so that
load from other processes hits both alike. Each row runs in a fresh process with that checkout first on
``sys.path``, so a change to the data code, the loop or the model is measured as a whole.

Usage (the last commit against the working tree):
    git worktree add /tmp/base HEAD
    python benchmarks/ab_pipeline.py /tmp/base . --reps 2 --steps 120
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

_RUN = ("import sys; sys.path.insert(0, 'benchmarks'); import bench_train; "
        "print(bench_train._pipeline({steps}, 'bf16', 1, {threads}))")


def pipeline_rate(checkout: Path, steps: int, threads: int) -> float:
    """Patches/s of the pipeline benchmark run from ``checkout`` (its package, its benchmark script)."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    out = subprocess.run([sys.executable, "-c", _RUN.format(steps=steps, threads=threads)], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path, help="checkout A (e.g. a worktree of the last commit)")
    ap.add_argument("b", type=Path, help="checkout B (e.g. the working tree)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--steps", type=int, default=120, help="train() steps per row (the first 24 are not timed)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    rates = {"A": [], "B": []}
    for _ in range(args.reps):
        for name, path in (("A", args.a), ("B", args.b)):
            rates[name].append(pipeline_rate(path.resolve(), args.steps, args.threads))
            print(f"{name} {path}: {rates[name][-1]:.2f} patches/s", flush=True)
    for name in rates:
        print(f"{name}: mean {sum(rates[name]) / len(rates[name]):.2f} patches/s over {args.reps} runs")


if __name__ == "__main__":
    main()
