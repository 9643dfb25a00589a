"""Model size, FLOPs and CPU latency: our click path versus the CT-SAM3D release's decoder.

Measures, in one run on one machine (random weights, batch 1, 64³ patch,
``torch.inference_mode``):

* parameters and FLOPs (``torch.utils.flop_counter.FlopCounterMode``; counted
  with the oneDNN routing off, because the counter only knows ``aten.convolution``;
  the arithmetic is the same either way) of the encoder, our decoder, the
  release's decoder (``OriginalSpadeDecoder``) and the cross-patch net;
* median and 95th-percentile latency of: the PSAP prompt-map build, the encoder,
  our decoder (a click on a cached patch), our decoder with PyTorch's default
  conv kernels (what the oneDNN routing saves), encoder + decoder (a click that
  needs a new patch), the cross-patch net, and the release's decoder;
* the ratio release / ours.

Usage:
    python benchmarks/bench_model.py --configs nano tiny --repeats 20 --out docs/benchmarks.md
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ctsam3d_nb.cpu_features import cpu_has_native_bf16  # noqa: E402
from ctsam3d_nb.modeling import build_model, build_prompt_map, fast_conv  # noqa: E402
from ctsam3d_nb.modeling.reference_decoder import OriginalSpadeDecoder  # noqa: E402

P = 64


def _params(module: torch.nn.Module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6


def _gflop(fn) -> float:
    with fast_conv(False), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e9


def _time(fn, repeats: int, warmup: int = 3) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 95))


def _prompt_inputs():
    rng = np.random.default_rng(0)
    prev = (rng.random((P, P, P)) > 0.5).astype(np.float32)
    points = [(32, 32, 32), (20, 40, 30), (45, 12, 50)]
    return prev, points, [1, 1, 0]


def bench_config(name: str, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model = build_model(name).eval()
    image = torch.rand(1, 1, P, P, P)
    prev, points, labels = _prompt_inputs()
    prompt = build_prompt_map(prev, points, labels)[None]
    rows = []
    with torch.inference_mode():
        feats = model.encode(image)

        def row(part, module, fn, n=repeats, flops=True):
            med, p95 = _time(fn, n)
            rows.append({"config": name, "part": part,
                         "params": _params(module) if module is not None else None,
                         "gflop": _gflop(fn) if flops else None, "median": med, "p95": p95, "n": n})

        row("prompt map (3 clicks + prev mask)", None,
            lambda: build_prompt_map(prev, points, labels), flops=False)
        row("encoder", model.image_encoder, lambda: model.encode(image))
        row("decoder (click, cached features)", model.mask_decoder, lambda: model.decode(feats, prompt))
        native = cpu_has_native_bf16()  # without bf16 hardware it is emulated (AVX2: ~190x slower), and refused
        n16 = repeats if native else min(repeats, 2)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # ClickSettings(precision="bf16") on the CPU
            med, p95 = _time(lambda: model.decode(feats, prompt), n16, warmup=3 if native else 1)
        part = "decoder, bfloat16 autocast (`precision=\"bf16\"`" + (")" if native else "; emulated, so refused)")
        rows.append({"config": name, "part": part, "params": None, "gflop": None, "median": med, "p95": p95, "n": n16})
        with fast_conv(False):
            med, p95 = _time(lambda: model.decode(feats, prompt), max(3, repeats // 4))
        rows.append({"config": name, "part": "decoder, PyTorch default conv kernels", "params": None,
                     "gflop": None, "median": med, "p95": p95, "n": max(3, repeats // 4)})
        row("encoder + decoder (click on a new patch)", None,
            lambda: model.decode(model.encode(image), prompt))
        rows[-1]["params"] = _params(model.image_encoder) + _params(model.mask_decoder)
        row("cross-patch net", model.cpp_net, lambda: model.cpp(image, image, image))
    return rows


def bench_reference(repeats: int) -> dict:
    torch.manual_seed(0)
    ref = OriginalSpadeDecoder().eval()
    feats = [torch.rand(1, c, s, s, s) for c, s in ((128, 16), (128, 8), (128, 4), (256, 2))]
    prev, points, labels = _prompt_inputs()
    prompt = build_prompt_map(prev, points, labels)[None]
    with torch.inference_mode():
        med, p95 = _time(lambda: ref(feats, prompt), repeats, warmup=1)
        gflop = _gflop(lambda: ref(feats, prompt))
    return {"config": "release", "part": "original SPADE decoder (click)", "params": _params(ref),
            "gflop": gflop, "median": med, "p95": p95, "n": repeats}


def _fmt(v, spec):
    return "" if v is None else format(v, spec)


def to_markdown(rows: list[dict], ref: dict | None) -> str:
    lines = ["| config | part | params (M) | GFLOP | median ms | p95 ms | runs |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in rows + ([ref] if ref else []):
        lines.append(f"| {r['config']} | {r['part']} | {_fmt(r['params'], '.2f')} | {_fmt(r['gflop'], '.2f')} "
                     f"| {r['median']:.1f} | {r['p95']:.1f} | {r['n']} |")
    if ref:
        lines += ["", "| config | release/ours decoder time | release/ours decoder FLOPs | "
                  "routing speed-up (default/routed) |", "|---|---:|---:|---:|"]
    else:
        lines += ["", "| config | routing speed-up (default/routed) |", "|---|---:|"]
    for cfg in dict.fromkeys(r["config"] for r in rows):
        dec = next(r for r in rows if r["config"] == cfg and r["part"].startswith("decoder (click"))
        slow = next(r for r in rows if r["config"] == cfg and r["part"].startswith("decoder, PyTorch"))
        routing = f"{slow['median'] / dec['median']:.1f}×"
        vs_release = f"{ref['median'] / dec['median']:.1f}× | {ref['gflop'] / dec['gflop']:.1f}× | " if ref else ""
        lines.append(f"| {cfg} | {vs_release}{routing} |")
    return "\n".join(lines)


def machine_info() -> str:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}\n"
            f"- platform: {platform.platform()}, Python {platform.python_version()}\n"
            f"- CPU: {cpu}, {os.cpu_count()} logical cores; load average at the end: {load}\n"
            f"- torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"oneDNN available: {torch.backends.mkldnn.is_available()}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", nargs="+", default=["nano", "tiny"], help="model names to measure")
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per measurement")
    ap.add_argument("--ref-repeats", type=int, default=3, help="timed runs of the (slow) release decoder; 0 = skip")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--out", type=Path, default=None, help="append the table and machine info to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.configs:
        rows += bench_config(name, args.repeats)
        print(f"measured {name}", file=sys.stderr, flush=True)
    ref = bench_reference(args.ref_repeats) if args.ref_repeats > 0 else None
    table = to_markdown(rows, ref)
    info = machine_info()
    print(table)
    print()
    print(info)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with args.out.open("a") as f:
            f.write(f"\n## Model benchmark ({', '.join(args.configs)})\n\n{table}\n\n{info}\n")


if __name__ == "__main__":
    main()
