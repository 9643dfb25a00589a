"""Training throughput (patches/s) on CPU: the model step in float32 and in bfloat16, the whole
pipeline with and without a data worker, and the release's decoder for reference.

1. Model step, one run, the same pre-cut batches (from a phantom) for every row, rows interleaved
   step by step so that load from other processes hits them alike: the real training step of
   ``ctsam3d_nb.training`` (encoder once, ``click_rounds`` decoder passes with simulated clicks
   from the model's own errors, Dice + focal loss, the CPP heatmap loss, backward, gradient
   clipping, AdamW step) of ``nano`` in float32 and under bfloat16 autocast
   (``TrainConfig.precision``; only on CPUs with native bfloat16, AVX512-BF16 or AMX, where
   ``precision="auto"`` takes it), and in that precision with one gradient round per step
   (``grad_rounds="one"``: 1..click_rounds rounds, only the last back-propagated); and, with
   ``--ref-steps``, the release's decoder (``OriginalSpadeDecoder``) in place of ours, float32.
2. Pipeline (``--pipeline-steps N``): ``train()`` itself for N steps from the shipped weights on
   the data of the long runs (the ``cpu-long`` preset: 400x256x256 phantoms, the real training CT,
   multi-scale patches, lesions, sub-parts, unions): patches per second of wall time, data cutting and
   phantom generation included, for (fp32, no worker) = the old default, (bf16, no worker),
   (bf16, 1 data worker) = the preset of sessions 5-7, then its two session-8 changes one by one
   (one gradient round per step, a new phantom every 96 samples instead of 48).

Usage:
    python benchmarks/bench_train.py --steps 8 --ref-steps 0 --pipeline-steps 72 --out docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import machine_info  # noqa: E402  (same machine description in every table)
from ctsam3d_nb.modeling import build_model  # noqa: E402
from ctsam3d_nb.modeling.reference_decoder import OriginalSpadeDecoder  # noqa: E402
from ctsam3d_nb.training import TrainConfig, train  # noqa: E402
from ctsam3d_nb.training.config import DATA_RECIPE, PRESETS  # noqa: E402
from ctsam3d_nb.training.data import PatchSampler, phantom_source  # noqa: E402
from ctsam3d_nb.training.loop import TrainStep, _collate, clip_gradients  # noqa: E402
from ctsam3d_nb.training.precision import cpu_has_native_bf16  # noqa: E402

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real_ct"


def _batches(cfg: TrainConfig, n: int, sigma: float):
    sampler = PatchSampler([(phantom_source(424242, cfg.phantom_shape), 1.0)], seed=1, pool_size=1,
                           refresh_every=10**6, p_cpp=cfg.p_cpp)
    sampler.sample(0)  # builds the phantom (not timed)
    out, times = [], []
    for i in range(n):
        t = time.perf_counter()
        samples = [sampler.sample(1 + i * cfg.batch_size + j) for j in range(cfg.batch_size)]
        batch = _collate(samples, cfg, np.random.default_rng(i), "cpu", sigma)
        times.append(time.perf_counter() - t)
        out.append(batch)
    return out, float(np.median(times))


class _Stepper:
    """One model + optimizer; ``step(batch, i)`` runs one training step and returns its seconds."""

    def __init__(self, model, cfg: TrainConfig, bf16: bool):
        self.model, self.cfg, self.bf16 = model.to(memory_format=torch.channels_last_3d), cfg, bf16  # as train()
        self.module = TrainStep(model, cfg)
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)  # as training.loop
        model.train()

    def step(self, batch, i: int) -> float:
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            loss, _ = self.module(batch, np.random.default_rng(i))
        loss.backward()
        clip_gradients(self.model, self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t


def _interleaved(steppers: dict, batches, steps: int, warmup: int = 1) -> dict:
    times = {name: [] for name in steppers}
    for i in range(warmup + steps):
        for name, s in steppers.items():
            dt = s.step(batches[i % len(batches)], i)
            if i >= warmup:
                times[name].append(dt)
    return {name: float(np.median(t)) for name, t in times.items()}


def _pipeline(steps: int, precision: str, workers: int, threads: int, **recipe) -> float:
    """Patches/s of ``train()`` over its last ``steps - 24`` steps (the first 24 warm up and fill the pool)."""
    real = [[str(REAL / "example_ct_sm.nii.gz"), str(REAL / "example_seg.nii.gz")]] if REAL.is_dir() else []
    with tempfile.TemporaryDirectory() as out:
        # the long CPU run's preset (data recipe included), shortened
        cfg = TrainConfig(**dict(PRESETS["cpu-long"], out_dir=out, steps=steps, warmup_steps=10, log_every=24,
                                 save_every=10**6, save_every_s=0.0, real_pairs=real,
                                 real_weight=DATA_RECIPE["real_weight"] if real else 0.0, threads=threads,
                                 precision=precision, workers=workers, seed=77, **recipe))
        train(cfg, progress=False)
        lines = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    rates = [m["patches_per_s"] for m in lines[1:]]
    return float(np.mean(rates))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano")
    ap.add_argument("--steps", type=int, default=8, help="timed model steps per row (interleaved)")
    ap.add_argument("--ref-steps", type=int, default=0, help="timed steps with the (slow) release decoder; 0 = skip")
    ap.add_argument("--pipeline-steps", type=int, default=0,
                    help="steps of train() per pipeline row (>= 48: two phantoms generated); 0 = skip")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--click-rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="append the tables and machine info to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(**dict(DATA_RECIPE, model=args.model, batch_size=args.batch_size,
                             click_rounds=args.click_rounds))
    torch.manual_seed(0)
    fp32 = build_model(args.model)
    torch.manual_seed(0)
    one = build_model(args.model)
    batches, data_s = _batches(cfg, args.steps + 1, fp32.config.cpp_sigma)
    native = cpu_has_native_bf16()  # what precision="auto" takes here: bf16 only where the CPU computes it
    fast = "bfloat16" if native else "float32"
    steppers = {"fp32": _Stepper(fp32, cfg, False),
                "one": _Stepper(one, dataclasses.replace(cfg, grad_rounds="one"), native)}
    if native:  # emulated bf16 (no AVX512-BF16/AMX) is several times slower, and no run here would take it
        torch.manual_seed(0)
        steppers["bf16"] = _Stepper(build_model(args.model), cfg, True)
    t = _interleaved(steppers, batches, args.steps)
    print(f"model step: {t}", file=sys.stderr, flush=True)
    b = cfg.batch_size
    rows = [(f"`{args.model}`, float32", t["fp32"], args.steps),
            (f"`{args.model}`, bfloat16 autocast", t.get("bf16"), args.steps),
            (f"`{args.model}`, {fast} (`precision=\"auto\"` here), one gradient round (`grad_rounds=\"one\"`)",
             t["one"], args.steps)]
    rows = [r for r in rows if r[1] is not None]
    if args.ref_steps:
        torch.manual_seed(0)
        ref = build_model(args.model)
        ref.mask_decoder = OriginalSpadeDecoder(encoder_channels=ref.config.encoder_out_channels)
        t_ref = _interleaved({"ref": _Stepper(ref, cfg, False)}, batches, args.ref_steps)["ref"]
        rows.append(("release decoder (`OriginalSpadeDecoder`), float32", t_ref, args.ref_steps))
    lines = [f"Model step: batch {b}, {cfg.click_rounds} click rounds per step, CPP loss on, 64³ patches; "
             f"the same batches for every row, rows interleaved step by step; native bfloat16 on this CPU: "
             f"{native}; cutting one batch from a phantom takes {data_s * 1e3:.0f} ms (median).", "",
             "| model step | s/step (median) | patches/s (model) | patches/s (+ cutting) | steps |",
             "|---|---:|---:|---:|---:|"]
    for name, s, n in rows:
        lines.append(f"| {name} | {s:.2f} | {b / s:.2f} | {b / (s + data_s):.2f} | {n} |")
    if native:
        lines += ["", f"bfloat16 / float32 speed-up of the step: **{t['fp32'] / t['bf16']:.2f}×**"]
    if args.pipeline_steps:
        old = dict(grad_rounds="all", refresh_every=48)  # the preset before session 8
        auto = "bf16" if native else "fp32"
        pipe = [("float32, data in the training process (the old default)", "fp32", 0, old),
                ("bfloat16, data in the training process", "bf16", 0, old),
                (f"{fast}, 1 data worker process (session 5-7 `cpu-long`)", auto, 1, old),
                ("+ one gradient round per step (`grad_rounds=\"one\"`)", auto, 1, dict(old, grad_rounds="one")),
                ("+ a new phantom every 96 samples, not 48 (`cpu-long` now)", auto, 1, {})]
        if not native:  # emulated bf16: the row is slower, and no run here would take it
            del pipe[1]
        rates = []
        for name, precision, workers, recipe in pipe:
            rates.append(_pipeline(args.pipeline_steps, precision, workers, args.threads, **recipe))
            print(f"pipeline {name}: {rates[-1]:.2f} patches/s", file=sys.stderr, flush=True)
        lines += ["", f"Pipeline: `train()` for {args.pipeline_steps} steps per row from the shipped `nano`, "
                  "the long run's preset `cpu-long` (400×256×256 phantoms, lesions, sub-parts and "
                  "unions, the real training CT with elastic and contrast augmentation, "
                  "multi-scale patches); patches per second of wall time after the first 24 steps, data cutting "
                  "and phantom generation included.", "",
                  "| pipeline | patches/s | vs the old default |", "|---|---:|---:|"]
        for (name, *_), r in zip(pipe, rates):
            lines.append(f"| {name} | {r:.2f} | {r / rates[0]:.2f}× |")
    table = "\n".join(lines)
    info = machine_info()
    print(table)
    print()
    print(info)
    if args.out is not None:
        with args.out.open("a") as f:
            f.write(f"\n## Training throughput on CPU\n\nCommand: `python benchmarks/bench_train.py "
                    f"{' '.join(sys.argv[1:] if argv is None else argv)}`\n\n{table}\n\n{info}\n")


if __name__ == "__main__":
    main()
