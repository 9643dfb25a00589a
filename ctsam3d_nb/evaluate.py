"""Evaluate a model with simulated clicks on a dataset folder; resumable CSV + summary table.

    python -m ctsam3d_nb.evaluate --dataset flare22 --root ~/data/FLARE22Train \\
        --model nano --clicks 10 --out results.csv [--structures liver spleen] [--max-cases 5]
    python -m ctsam3d_nb.evaluate --dataset folder --root my_cases --convention btcv --out r.csv
    python -m ctsam3d_nb.evaluate --dataset phantom --seeds 900000 900001 --out phantom.csv
    python -m ctsam3d_nb.evaluate ... --sessions 4 --first-click-depth 0   # first clicks anywhere inside

One CSV row per case × structure × session × click (columns: `CSV_COLUMNS`). Every
structure present in a case's label map is evaluated (or those of
``--structures``); structures absent from a case are skipped, not scored.

Sessions: session 1 of a target clicks first at its deepest point (the field's
protocol); with ``--sessions N`` sessions 2..N click first at a voxel drawn with
seed ``session - 1`` among those at least ``--first-click-depth`` as deep as that
point (0.5 by default; 0 = anywhere in the target, as users may click near an
edge), so one-click figures rest on N first clicks per target, not one. Later
clicks follow the errors as always; every session starts a fresh object.

Resuming: the rows of a case are appended and flushed in one go when the case
is done, so a run started again with the same ``--out`` skips finished
(dataset, case, structure, session) targets. A case that already has rows of
sessions 1..N counts as finished, unless ``--structures`` names structures it has
no rows for (to add structures to finished cases, name them; to add sessions,
raise ``--sessions``). Rows of a case cut off by an
interruption are dropped and the case is redone. The click settings and the NSD
tolerance of a results file are kept beside it (``<out>.settings.json``): a resume
with other ones is refused, since its rows would mix two protocols.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import anatomy, checkpoint
from ._atomic import atomic_write
from .evaluation.aggregate import summary_table
from .evaluation.datasets import DATASETS, open_dataset
from .evaluation.interactive import RECORD_COLUMNS, evaluate_interactive
from .predictor import Predictor
from .settings import ClickSettings, add_arguments, from_arguments

__all__ = ["main", "build_parser", "CSV_COLUMNS"]

#: Columns of the results CSV (``hd95`` is added before ``model`` with --hd95).
CSV_COLUMNS = ("dataset", "case", "structure", "structure_id", "session",
               *(c for c in RECORD_COLUMNS if c != "structure"), "first_click_depth", "model")
_TARGET = ["dataset", "case", "structure", "session"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ctsam3d_nb.evaluate", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="dataset layout")
    p.add_argument("--root", help="dataset folder (not for phantom)")
    p.add_argument("--out", required=True, help="results CSV; an existing one is resumed")
    p.add_argument("--model", default="nano", help="model config name (shipped: nano) or checkpoint path")
    p.add_argument("--random-weights", action="store_true",
                   help="random weights instead of trained ones (pipeline smoke tests only)")
    p.add_argument("--clicks", type=int, default=10, help="simulated clicks per target (default 10)")
    p.add_argument("--structures", nargs="+", metavar="NAME", help="ontology names to evaluate (default: all present)")
    p.add_argument("--max-cases", type=int, help="evaluate only the first N cases")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--nsd-tolerance", type=float, default=2.0, help="NSD tolerance in mm (default 2)")
    p.add_argument("--hd95", action="store_true", help="also record the 95%% Hausdorff distance per click")
    p.add_argument("--sessions", type=int, default=1,
                   help="sessions per target: 1 clicks first at the deepest point; 2..N at seeded voxels at least "
                   "--first-click-depth as deep (default 1)")
    p.add_argument("--first-click-depth", type=float, default=0.5,
                   help="sessions 2..N: least depth of the first click as a fraction of the deepest point's, "
                   "0..1 (default 0.5; 0 = anywhere in the target)")
    add_arguments(p)  # one flag per ClickSettings field: --mode, --growth-budget, --cpp-heatmaps, ...
    g = p.add_argument_group("dataset options")
    g.add_argument("--split", help="totalsegmentator: train/val/test (meta.csv); word: train/val/test; "
                   "amos22: training/validation")
    g.add_argument("--version", choices=["v1", "v2"], help="totalsegmentator version (default: detected)")
    g.add_argument("--convention", help="folder: label convention (amos22, btcv, ...); default ontology ids")
    g.add_argument("--seeds", nargs="+", type=int, help="phantom: seeds of the held-out phantoms")
    g.add_argument("--phantom-shape", nargs=3, type=int, metavar=("Z", "Y", "X"),
                   help="phantom: voxels (default 400 256 256)")
    g.add_argument("--phantom-spacing", nargs=3, type=float, metavar=("Z", "Y", "X"),
                   help="phantom: mm per voxel (default 1.5 1.5 1.5)")
    return p


def _open(args):
    opts = {}
    if args.dataset == "phantom":
        if not args.seeds:
            raise ValueError("--dataset phantom needs --seeds, e.g. --seeds 900000 900001")
        opts = {"seeds": args.seeds, "shape": args.phantom_shape or (400, 256, 256),
                "spacing": args.phantom_spacing or (1.5, 1.5, 1.5)}
    elif not args.root:
        raise ValueError(f"--dataset {args.dataset} needs --root, the dataset folder")
    if args.split:
        if args.dataset not in ("totalsegmentator", "word", "amos22"):
            raise ValueError(f"--split does not apply to {args.dataset}")
        opts["split"] = args.split
    only = {"version": "totalsegmentator", "convention": "folder", "seeds": "phantom",  # flags of one dataset
            "phantom_shape": "phantom", "phantom_spacing": "phantom"}
    for name, takes in only.items():
        if getattr(args, name) and args.dataset != takes:
            raise ValueError(f"--{name.replace('_', '-')} applies to --dataset {takes} only, not to {args.dataset}: "
                             "drop it")
        if getattr(args, name) and takes != "phantom":
            opts[name] = getattr(args, name)
    return open_dataset(args.dataset, args.root, **opts)


def _wanted_structures(args, ds) -> list[str] | None:
    if not args.structures:
        return None
    names = [anatomy.by_name(n).name for n in args.structures]  # KeyError suggests close names
    unknown = [n for n in names if n not in ds.structures]
    if unknown:
        raise ValueError(f"{args.dataset} does not label {unknown}; it labels: {', '.join(ds.structures)}")
    return list(dict.fromkeys(names))


def _read_done(out: Path, n_clicks: int) -> pd.DataFrame:
    """Rows of finished targets in an existing results CSV (rewriting it if its last case was cut off)."""
    if not out.exists() or out.stat().st_size == 0:
        return pd.DataFrame(columns=list(CSV_COLUMNS))
    try:
        old = pd.read_csv(out, dtype={"case": str, "dataset": str, "structure": str})
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot resume from '{out}': not a readable CSV ({e}). Move it away or pick another --out.")
    missing = [c for c in ("dataset", "case", "structure", "click", "dice") if c not in old.columns]
    if missing:
        raise ValueError(f"'{out}' is not a results file of this tool (no columns {missing}); pick another --out")
    # files of versions before sessions: every target was one session with its first click at the deepest point
    old["session"] = old["session"].fillna(1).astype(int) if "session" in old.columns else 1
    ok = old.dropna(subset=["click", "dice"])
    counts = ok.groupby(_TARGET)["click"].agg(["size", "max"])
    partial = counts[(counts["size"] != n_clicks) | (counts["max"] != n_clicks)]
    with open(out, "rb") as f:  # a write cut inside a row leaves no final newline, whatever fields it kept
        f.seek(-1, os.SEEK_END)
        cut_row = f.read(1) != b"\n"
    if len(old) and (cut_row or not partial.empty):
        # a case's rows are written in one go: only the last case can have been cut off
        last_case = tuple(old[["dataset", "case"]].iloc[-1])
        others = [t for t in partial.index if t[:2] != last_case or counts.loc[t, "size"] > n_clicks]
        if others:
            sizes = sorted({int(counts.loc[t, "size"]) for t in others})
            raise ValueError(f"'{out}' holds targets with {sizes} clicks, e.g. {others[0]}, but --clicks is "
                             f"{n_clicks}. Resume with the same --clicks, or write to another --out.")
        old = old[(old["dataset"] != last_case[0]) | (old["case"] != last_case[1])]
        _atomic_write(old, out)
        print(f"resume: dropped the unfinished rows of case {last_case[1]!r} (the last run was interrupted)",
              file=sys.stderr)
    return old


def _atomic_write(df: pd.DataFrame, out: Path):
    atomic_write(out, lambda tmp: df.to_csv(tmp, index=False))


def _append(rows: pd.DataFrame, out: Path, columns: list[str]):
    header = not out.exists() or out.stat().st_size == 0
    with open(out, "a", newline="") as f:
        f.write(rows.reindex(columns=columns).to_csv(index=False, header=header))
        f.flush()
        os.fsync(f.fileno())


def _load_model(args):
    if args.random_weights:
        torch.manual_seed(0)  # the same random model on every run
    try:
        return checkpoint.load_model(args.model, device=args.device, pretrained=not args.random_weights)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}\nFor a smoke test of the pipeline without trained weights, "
                                "add --random-weights.") from None


def _check_depth(done_rows: pd.DataFrame, args, out: Path):
    """Refuse to resume sessions 2..N with another --first-click-depth than the file's (they would mix)."""
    if "first_click_depth" not in done_rows.columns or args.sessions == 1:  # session 1 draws nothing
        return
    seeded = done_rows.loc[done_rows["session"] > 1, "first_click_depth"].dropna().unique()
    other = [float(d) for d in seeded if not np.isclose(float(d), args.first_click_depth)]
    if other:
        raise ValueError(f"'{out}' holds sessions whose first clicks were drawn at --first-click-depth {other[0]}, "
                         f"not {args.first_click_depth}: resume with --first-click-depth {other[0]}, or write to "
                         "another --out.")


def _check_model(done_rows: pd.DataFrame, model_name: str, out: Path):
    """Refuse to resume a file of another model's results (its rows would be reported as this model's)."""
    if "model" not in done_rows.columns:
        return
    other = sorted({str(m) for m in done_rows["model"].dropna().unique()} - {model_name})
    if other:
        raise ValueError(f"'{out}' holds results of the model '{other[0]}', not '{model_name}': resuming would report "
                         "them as this model's. Write to another --out (or move that file away).")


def _settings_file(out: Path) -> Path:
    return out.with_name(out.name + ".settings.json")


def _check_protocol(done_rows: pd.DataFrame, out: Path, settings: ClickSettings, nsd_tolerance: float):
    """Refuse to resume a file made with other click settings or NSD tolerance (kept in `_settings_file`); returns
    this run's, which `run` writes there with its first rows."""
    now = {**settings.to_dict(), "nsd_tolerance": float(nsd_tolerance)}
    side = _settings_file(out)
    if len(done_rows) and side.exists():
        try:
            then = json.loads(side.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read '{side}', the settings of the results in '{out}' ({e}). Move both away "
                             "or pick another --out.") from None
        diff = [k for k in now if k in then and then[k] != now[k]]
        if diff:
            flags = ", ".join(f"--{k.replace('_', '-')} {then[k]!r} (now {now[k]!r})" for k in diff)
            raise ValueError(f"'{out}' holds results made with other settings: {flags}. Resume with those, or write "
                             "to another --out: one file of two protocols would report their mix.")
    elif len(done_rows):
        print(f"resume: '{out}' has no settings file (an earlier version wrote it); its rows are taken as made "
              "with these settings", file=sys.stderr)
    return now


def _finished_cases(done: set, sessions: list[str]) -> set:
    """(dataset, case) pairs where every structure with rows has every session in ``sessions``."""
    by_case: dict = {}
    for d, c, s, k in done:
        by_case.setdefault((d, c), {}).setdefault(s, set()).add(k)
    return {dc for dc, st in by_case.items() if all(set(sessions) <= ks for ks in st.values())}


def _targets(labels: np.ndarray, wanted) -> list[tuple[str, int]]:
    """(name, ontology id) of the structures present in ``labels``, in the order asked or by id."""
    present = {int(v) for v in np.unique(labels) if v != 0}
    if wanted is None:
        return [(anatomy.by_id(i).name, i) for i in sorted(present)]
    return [(n, anatomy.by_name(n).id) for n in wanted if anatomy.by_name(n).id in present]


def run(args) -> pd.DataFrame:
    """Evaluate as ``args`` (from `build_parser`) says; returns the full results table."""
    if args.clicks < 1:
        raise ValueError(f"--clicks must be >= 1, got {args.clicks}")
    if args.max_cases is not None and args.max_cases < 1:
        raise ValueError(f"--max-cases must be >= 1 (leave it out to evaluate every case), got {args.max_cases}")
    if args.sessions < 1:
        raise ValueError(f"--sessions must be >= 1 (1: one session per target, first click at its deepest point), "
                         f"got {args.sessions}")
    if not 0 <= args.first_click_depth <= 1:
        raise ValueError(f"--first-click-depth must be in [0, 1] (a fraction of the deepest point's depth), "
                         f"got {args.first_click_depth}")
    settings = from_arguments(args)  # ValueError names the bad flag's field
    ds = _open(args)
    wanted = _wanted_structures(args, ds)
    cases = ds.cases()[: args.max_cases] if args.max_cases is not None else ds.cases()
    out = Path(args.out).expanduser()
    out.parent.mkdir(parents=True, exist_ok=True)
    done_rows = _read_done(out, args.clicks)
    _check_depth(done_rows, args, out)
    model_name = f"{args.model}{' (random weights)' if args.random_weights else ''}"
    _check_model(done_rows, model_name, out)
    protocol = _check_protocol(done_rows, out, settings, args.nsd_tolerance)
    done = set(map(tuple, done_rows[_TARGET].drop_duplicates().astype(str).to_numpy()))
    sessions = [str(k) for k in range(1, args.sessions + 1)]
    done_cases = _finished_cases(done, sessions)
    columns = list(CSV_COLUMNS) if not args.hd95 else [*CSV_COLUMNS[:-1], "hd95", "model"]
    if out.exists() and out.stat().st_size > 0:  # rows or a header only: new rows go under its header
        # keep an existing file's column order; columns added by a newer version go at the end
        # (the file is rewritten once so its header names them; old rows leave them empty, old sessions are 1)
        added = [c for c in columns if c not in done_rows.columns]
        columns = list(done_rows.columns) + added
        if columns != list(pd.read_csv(out, nrows=0).columns):
            _atomic_write(done_rows.reindex(columns=columns), out)
    predictor = None
    bar = tqdm(cases, desc=f"{args.dataset}", unit="case", file=sys.stderr, dynamic_ncols=True)
    try:
        for case in bar:
            if (wanted is None and (args.dataset, case) in done_cases) or (
                    wanted is not None and all((args.dataset, case, s, k) in done for s in wanted for k in sessions)):
                continue  # finished in an earlier run
            ct, labels = ds.load(case)
            # session-major: each session is a new user session on the CT (fresh objects and encoder features),
            # in which the structures are segmented one after another
            todo = [(n, i, k) for k in range(1, args.sessions + 1) for n, i in _targets(labels, wanted)
                    if (args.dataset, case, n, str(k)) not in done]
            if not todo:
                continue
            if predictor is None:
                predictor = Predictor(_load_model(args), settings, device=args.device)
            predictor.set_volume(ct)
            frames = []
            for j, (name, sid, k) in enumerate(todo):
                if j and k != todo[j - 1][2]:
                    predictor.set_volume(ct)
                bar.set_postfix_str(f"{case}: {name}" + (f" (session {k})" if args.sessions > 1 else ""))
                df = evaluate_interactive(predictor, ct, labels == sid, n_clicks=args.clicks,
                                          nsd_tolerance_mm=args.nsd_tolerance, structure=name, with_hd95=args.hd95,
                                          first_click_seed=None if k == 1 else k - 1,
                                          first_click_depth=args.first_click_depth)
                frames.append(df.assign(dataset=args.dataset, case=case, structure_id=sid, session=k,
                                        first_click_depth=args.first_click_depth, model=model_name))
            if protocol is not None:  # with the first rows this run writes, not before (a failed start writes nothing)
                atomic_write(_settings_file(out), lambda tmp: Path(tmp).write_text(json.dumps(protocol, indent=1)))
                protocol = None
            _append(pd.concat(frames, ignore_index=True), out, columns)
            last = pd.concat(frames)
            final = last.loc[last["click"] == args.clicks, "dice"].mean()
            bar.set_postfix_str(f"{case}: Dice@{args.clicks} {final:.3f}")
    finally:
        bar.close()
    return pd.read_csv(out, dtype={"case": str, "dataset": str}) if out.exists() else done_rows


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        results = run(args)
    except (OSError, KeyError, ValueError) as e:  # missing/unwritable files (DatasetLayoutError is one),
        # unknown names, and ValueErrors: bad flags, CTLoadError, CheckpointError, a foreign --out
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"error: {msg}", file=sys.stderr)
        return 2
    if results.empty:
        print("no targets evaluated (no requested structure is present in the cases)")
        return 0
    print(f"\nresults: {Path(args.out).expanduser()} ({len(results)} rows)\n")
    print(summary_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
