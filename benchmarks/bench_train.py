"""Training throughput (patches/s) on CPU: our decoder versus the release's decoder, side by side.

One run, one machine, the real training step of ``ctsam3d_nb.training`` (encoder
once, ``click_rounds`` decoder passes with simulated clicks from the model's own
errors, Dice + focal loss, the CPP heatmap loss, backward, gradient clipping,
AdamW step), on the same pre-cut batches from phantoms:

* ``ours``: the ``nano`` model as trained and shipped;
* ``release decoder``: the same encoder and CPP net with the release's decoder
  (``OriginalSpadeDecoder``, dim 256, SPADE at every scale) in place of ours;
* data: the time to cut and augment one batch (``PatchSampler``), the same for both.

Reported: median seconds per step (model only), patches/s with and without data
time, and the ratio release / ours.

Usage:
    python benchmarks/bench_train.py --steps 8 --ref-steps 3 --out docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import machine_info  # noqa: E402  (same machine description in every table)
from ctsam3d_nb.modeling import build_model  # noqa: E402
from ctsam3d_nb.modeling.reference_decoder import OriginalSpadeDecoder  # noqa: E402
from ctsam3d_nb.training import TrainConfig  # noqa: E402
from ctsam3d_nb.training.data import PatchSampler, phantom_source  # noqa: E402
from ctsam3d_nb.training.loop import TrainStep, _collate, clip_gradients  # noqa: E402


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


def _time_steps(model, cfg: TrainConfig, batches, steps: int, warmup: int = 1) -> float:
    step_module = TrainStep(model, cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    times = []
    for i in range(warmup + steps):
        batch = batches[i % len(batches)]
        t = time.perf_counter()
        loss, _ = step_module(batch, np.random.default_rng(i))
        loss.backward()
        clip_gradients(model, cfg.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano")
    ap.add_argument("--steps", type=int, default=8, help="timed steps of our model")
    ap.add_argument("--ref-steps", type=int, default=3, help="timed steps with the (slow) release decoder")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--click-rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="append the table and machine info to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(model=args.model, batch_size=args.batch_size, click_rounds=args.click_rounds,
                      phantom_shape=(400, 256, 256), cpp_pos_weight=500.0)
    torch.manual_seed(0)
    ours = build_model(args.model)
    batches, data_s = _batches(cfg, max(args.steps, args.ref_steps) + 1, ours.config.cpp_sigma)
    t_ours = _time_steps(ours, cfg, batches, args.steps)
    print(f"ours: {t_ours:.2f} s/step", file=sys.stderr, flush=True)
    torch.manual_seed(0)
    ref = build_model(args.model)
    ref.mask_decoder = OriginalSpadeDecoder(encoder_channels=ref.config.encoder_out_channels)
    t_ref = _time_steps(ref, cfg, batches, args.ref_steps)
    print(f"release decoder: {t_ref:.2f} s/step", file=sys.stderr, flush=True)

    b = cfg.batch_size
    rows = [("ours (`" + args.model + "`, light SPADE decoder)", t_ours, args.steps),
            ("release decoder (`OriginalSpadeDecoder`)", t_ref, args.ref_steps)]
    lines = [f"Batch {b}, {cfg.click_rounds} click rounds per step, CPP loss on, 64³ patches; "
             f"cutting one batch from a phantom takes {data_s * 1e3:.0f} ms (median).", "",
             "| model | s/step (model, median) | patches/s (model) | patches/s (with data) | steps |",
             "|---|---:|---:|---:|---:|"]
    for name, t, n in rows:
        lines.append(f"| {name} | {t:.2f} | {b / t:.2f} | {b / (t + data_s):.2f} | {n} |")
    lines += ["", f"Ratio release / ours (time per step): **{t_ref / t_ours:.1f}×**"]
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
