"""Predictor benchmarks: whole sessions as users pay them; per-click latency, growth, memory, long sessions.

Sessions (``--sessions``, the table users should read): the simulated clicker (first click at the
deepest point, then the largest error) gives 10 clicks to each held-out phantom object of every size
class and to each structure of the held-out real DICOM series, once per click mode (zoom-out and
cross-patch growth), in one run: per-click wall time p50 / p95 / max, the first click's time, and
Dice after 1 / 3 / 5 clicks::

    python benchmarks/bench_predictor.py --model nano --sessions --out docs/benchmarks.md

Micro-benchmarks (the second table), each measured side by side with a baseline in the same run:
  * click in an encoded patch (cache hit) vs the same click with encoder caching off;
  * click on a new patch vs the same with the release's decoder cost model (reported by bench_model.py);
  * growth of the phantom aorta from one click vs the patches a user would click without CPP.

    python benchmarks/bench_predictor.py --model nano --clicks 20 --out docs/benchmarks.md
    python benchmarks/bench_predictor.py --memory        # 512x512x800 CT, peak RSS (own process)
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import machine_info  # noqa: E402  (same machine description in every table)

from ctsam3d_nb.settings import PRECISIONS  # noqa: E402


def _stats(xs):
    xs = sorted(xs)
    return statistics.median(xs) * 1000, xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))] * 1000


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


SIZE_CLASSES = (("small < 30 mL", 0, 30), ("medium 30-150 mL", 30, 150), ("large >= 150 mL", 150, 1e9))
SESSION_PHANTOM = ["liver", "lung_right", "aorta", "stomach", "heart", "spleen", "kidney_left", "pancreas",
                   "vertebrae_L3", "gallbladder", "esophagus", "adrenal_gland_left", "urinary_bladder"]


def bench_sessions(args, rows):
    """Whole simulated sessions per click mode; returns the per-click records too."""
    import pandas as pd
    from evaluate_shipped import REAL, REAL_STRUCTURES, _run_case

    from ctsam3d_nb import ClickSettings, Predictor, load_ct, load_labels, make_phantom

    model = _model(args.model, args.random_weights)
    cases = [(f"phantom {s}", *make_phantom(s)[:2]) for s in args.seeds]
    if (REAL / "dicom_series").is_dir():
        ct = load_ct(REAL / "dicom_series")
        cases.append(("real DICOM", ct, load_labels(REAL / "example_seg_dicom.nii.gz", like=ct)))
    frames = []
    for mode in args.modes:
        pred = Predictor(model, ClickSettings(mode=mode, precision=args.precision), device="cpu")
        for name, ct, labels in cases:
            structures = REAL_STRUCTURES if name == "real DICOM" else SESSION_PHANTOM
            t = time.perf_counter()
            for df in _run_case(pred, ct, labels, structures, name, name, args.session_clicks):
                frames.append(df.assign(mode=mode))
            print(f"{mode}: {name} done in {time.perf_counter() - t:.0f} s", flush=True)
    df = pd.concat(frames, ignore_index=True)
    df["kind"] = np.where(df["dataset"] == "real DICOM", "real DICOM",
                          pd.cut(df["gt_ml"], [c[1] for c in SIZE_CLASSES] + [1e9], right=False,
                                 labels=[c[0] for c in SIZE_CLASSES]).astype(str))
    for (mode, kind), sub in df.groupby(["mode", "kind"], sort=True):
        lat = sub.loc[~sub["carried"], "latency_s"].to_numpy() * 1000
        first = sub.loc[sub["click"] == 1, "latency_s"].to_numpy() * 1000
        d = {k: sub.loc[sub["click"] == k, "dice"].mean() for k in (1, 3, 5)}
        rows.append((mode, kind, sub["structure"].nunique() if kind == "real DICOM" else
                     sub.groupby(["dataset", "structure"]).ngroups, np.percentile(lat, 50), np.percentile(lat, 95),
                     lat.max(), np.median(first), first.max(), d[1], d[3], d[5]))
    return df


def _model(name, random_weights):
    from ctsam3d_nb import load_model

    return load_model(name, pretrained=not random_weights, device="cpu")


def bench_clicks(args, rows):
    from ctsam3d_nb import Predictor, make_phantom
    from ctsam3d_nb.clicks import first_click

    ct, labels, names = make_phantom(900_123)
    model = _model(args.model, args.random_weights)
    liver = labels == 5
    c = np.asarray(first_click(liver))
    rng = np.random.default_rng(0)
    near = [tuple(int(v) for v in c + rng.integers(-8, 9, 3)) for _ in range(args.clicks)]

    for label, cache in (("click in an encoded patch (cache hit)", 64), ("same clicks, encoder cache off", 0)):
        pred = Predictor(model, device="cpu", growth_budget=1, cache_patches=cache).set_volume(ct)
        pred.click(tuple(c))
        times = []
        for p in near:
            pred.click(p, positive=bool(liver[p]))
            times.append(pred.last_timing["total"])
        rows.append((args.model, label, *_stats(times), len(times)))

    # a click that needs a new patch: each click on another organ, far from the others
    pred = Predictor(model, device="cpu", growth_budget=1).set_volume(ct)
    times = []
    ids = [i for i in np.unique(labels) if i and (labels == i).sum() > 2000][: args.clicks]
    for i in ids:
        pred.new_object(names[int(i)])
        pred.click(first_click(labels == i))
        times.append(pred.last_timing["total"])
    rows.append((args.model, "click on a new patch", *_stats(times), len(times)))

    # cross-patch growth of the aorta from one click
    aorta = labels == 52
    for budget, heat, label in ((27, False, "aorta from one click, default growth: overlap seed (budget 27)"),
                                (27, True, "aorta, growth with raw CPP heatmaps (cpp_heatmaps=True)"),
                                (1, False, "aorta, one click, no growth")):
        pred = Predictor(model, device="cpu", growth_budget=budget, cpp_heatmaps=heat).set_volume(ct)
        t = time.perf_counter()
        m = pred.click(first_click(aorta))
        el = time.perf_counter() - t
        d = 2 * (m & aorta).sum() / (m.sum() + aorta.sum())
        rows.append((args.model, f"{label}: {len(pred.object.masks.probs)} patches, Dice {d:.3f}",
                     el * 1000, el * 1000, 1))
    t = time.perf_counter()
    Predictor(model, device="cpu").set_volume(ct)
    rows.append((args.model, f"set_volume {ct.shape} at 1.5 mm", (time.perf_counter() - t) * 1000, float("nan"), 1))


def bench_long_session(args, rows):
    """RSS over 200 clicks: at random places (state grows with what is segmented), then in one patch."""
    from ctsam3d_nb import Predictor, make_phantom

    ct, labels, _ = make_phantom(900_124)
    pred = Predictor(_model(args.model, args.random_weights), device="cpu").set_volume(ct)
    rng = np.random.default_rng(1)
    body = np.argwhere(labels[::4, ::4, ::4] > 0) * 4
    rss = []
    for i in range(200):
        p = tuple(int(v) for v in body[rng.integers(len(body))])
        if i % 20 == 0:
            pred.new_object(f"object {i}")
        pred.click(p, positive=bool(rng.random() < 0.7))
        rss.append(_current_rss_mb())
    rows.append((args.model, f"200 clicks: RSS after 20 / 100 / 200 clicks = {rss[19]:.0f} / {rss[99]:.0f} / "
                 f"{rss[-1]:.0f} MB", float("nan"), float("nan"), 200))
    # leak check: 200 clicks around one point of one object (same patches, bounded undo history)
    pred = Predictor(pred.model, device="cpu", growth_budget=1).set_volume(ct)
    c = np.argwhere(labels == 5).mean(0).astype(int)
    rss = []
    for i in range(200):
        p = tuple(int(v) for v in c + rng.integers(-6, 7, 3))
        pred.click(p, positive=bool(labels[p] == 5))
        rss.append(_current_rss_mb())
    rows.append((args.model, f"200 clicks in one patch (leak check): RSS after 20 / 100 / 200 clicks = "
                 f"{rss[19]:.0f} / {rss[99]:.0f} / {rss[-1]:.0f} MB", float("nan"), float("nan"), 200))


def bench_memory(args, rows):
    from ctsam3d_nb import ClickSettings, CTVolume, Predictor

    shape = (800, 512, 512)
    hu = np.full(shape, -1000, np.int16)
    zz = np.arange(shape[0])[:, None, None]
    yy, xx = np.ogrid[:512, :512]
    hu[:, ((yy - 256) ** 2 + (xx - 256) ** 2) < 200**2] = 40
    hu[300:500, 150:300, 150:300] = 60 + (zz[300:500] % 7)
    ct = CTVolume.from_array(hu, spacing=(1.0, 0.7, 0.7))
    del hu
    base = _current_rss_mb()
    pred = Predictor(_model(args.model, args.random_weights), ClickSettings(mode=args.modes[0]), device="cpu")
    t = time.perf_counter()
    pred.set_volume(ct)
    t_set = time.perf_counter() - t
    for p in ((400, 220, 220), (420, 230, 260), (350, 200, 200)):
        pred.click(p)
    _ = pred.label_map
    rows.append((args.model, f"512x512x800 CT, mode {args.modes[0]}: set_volume {t_set:.2f} s; "
                 f"peak RSS {_rss_mb():.0f} MB (CT alone {base:.0f} MB)", t_set * 1000, float("nan"), 1))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano")
    ap.add_argument("--clicks", type=int, default=20)
    ap.add_argument("--random-weights", action="store_true")
    ap.add_argument("--memory", action="store_true", help="only the 512x512x800 memory benchmark")
    ap.add_argument("--sessions", action="store_true", help="only the whole-session benchmark")
    ap.add_argument("--modes", nargs="+", default=["zoom", "grow"], help="click modes of the session benchmark")
    ap.add_argument("--seeds", type=int, nargs="+", default=[900000, 900001], help="held-out phantom seeds")
    ap.add_argument("--session-clicks", type=int, default=10, help="simulated clicks per object")
    ap.add_argument("--precision", choices=PRECISIONS, default="auto",
                    help="the session benchmark's ClickSettings.precision")
    ap.add_argument("--csv", help="write the session benchmark's per-click records here")
    ap.add_argument("--long", action="store_true", help="also the 200-click session")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", help="append the markdown table to this file")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    if args.sessions:
        df = bench_sessions(args, rows)
        if args.csv:
            df.to_csv(args.csv, index=False)
        lines = [f"\n### Whole sessions ({args.model}{', random weights' if args.random_weights else ''}, "
                 f"{args.session_clicks} simulated clicks per object)\n", machine_info(),
                 f"Command: `python benchmarks/bench_predictor.py {' '.join(argv or sys.argv[1:])}`\n",
                 "| mode | objects | n | click p50 ms | p95 ms | max ms | 1st click median ms | 1st max ms "
                 "| Dice@1 | Dice@3 | Dice@5 |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append(f"| {r[0]} | {r[1]} | {r[2]} | " + " | ".join(f"{v:.0f}" for v in r[3:8]) + " | "
                         + " | ".join(f"{v:.3f}" for v in r[8:]) + " |")
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out:
            with open(args.out, "a") as f:
                f.write(text)
        return
    if args.memory:
        bench_memory(args, rows)
    else:
        bench_clicks(args, rows)
        if args.long:
            bench_long_session(args, rows)
    lines = [f"\n### Predictor benchmark ({args.model}{', random weights' if args.random_weights else ''})\n",
             machine_info(), (f"- GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "- no GPU"),
             f"Command: `python benchmarks/bench_predictor.py {' '.join(argv or sys.argv[1:])}`\n",
             "| model | measurement | median ms | p95 ms | n |", "|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r[0]} | {r[1]} | {r[2]:.1f} | {r[3]:.1f} | {r[4]} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text)


if __name__ == "__main__":
    main()
