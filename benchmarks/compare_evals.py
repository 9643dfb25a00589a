"""Paired comparison of two evaluations: the per-target change of Dice after k clicks.

    python benchmarks/compare_evals.py docs/eval_session7/shipped_ph/clicks.csv /tmp/ev/new_ph/clicks.csv

Both files are ``clicks.csv`` from ``evaluate_shipped.py`` (or ``python -m ctsam3d_nb.evaluate``). Targets
are matched by dataset, case and structure (and session, when both files have one); only targets present in
both count. For each dataset and
click it prints the mean Dice of A and of B, the mean paired change B - A with its standard error, and how
many targets moved up or down by more than ``--margin``; when both files have a ``patches`` column, also the mean
number of 64³ patches each object spans after the click (what a click costs: more patches, more decoding). This is
how the model card decides whether new weights beat the shipped ones.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ["dataset", "case", "structure"]


def paired(a: pd.DataFrame, b: pd.DataFrame, clicks=(1, 3, 5), margin: float = 0.01) -> pd.DataFrame:
    """One row per dataset and click: n, dice_a, dice_b, change, se, better, worse (and patches_a, patches_b
    when both frames have a ``patches`` column)."""
    for name, df in (("A", a), ("B", b)):
        missing = [c for c in KEYS + ["click", "dice"] if c not in df.columns]
        if missing:
            raise ValueError(f"evaluation {name} lacks the columns {missing}: pass the clicks.csv that "
                             "evaluate_shipped.py or ctsam3d_nb.evaluate writes")
    # sessions of one target (`python -m ctsam3d_nb.evaluate --sessions N`) are paired session by session; a file
    # without sessions (earlier versions, evaluate_shipped.py) holds session 1 only
    a, b = (df.assign(session=df["session"].fillna(1).astype(int) if "session" in df.columns else 1) for df in (a, b))
    depths = [set(df.loc[df["session"] > 1, "first_click_depth"].dropna().round(6))
              if "first_click_depth" in df.columns else set() for df in (a, b)]
    if depths[0] and depths[1] and depths[0] != depths[1]:
        raise ValueError(f"A's sessions 2.. drew first clicks at --first-click-depth {sorted(depths[0])}, B's at "
                         f"{sorted(depths[1])}: their sessions are not the same clicks; compare files made alike")
    keys = KEYS + ["session"]
    cost = ["patches"] if all("patches" in df.columns for df in (a, b)) else []
    # keys as text: a file of phantom seeds alone reads its case column as numbers, one with the real case as text
    a, b = (df[keys + ["click", "dice"] + cost].astype({k: str for k in keys}) for df in (a, b))
    m = a.merge(b, on=keys + ["click"], suffixes=("_a", "_b"))
    rows = []
    for ds, g in m.groupby("dataset", sort=False):
        for k in clicks:
            s = g[g.click == k]
            if s.empty:
                continue
            d = s.dice_b - s.dice_a
            rows.append({"dataset": ds, "click": k, "n": len(s), "dice_a": s.dice_a.mean(), "dice_b": s.dice_b.mean(),
                         "change": d.mean(), "se": d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan"),
                         "better": int((d > margin).sum()), "worse": int((d < -margin).sum()),
                         **({"patches_a": s.patches_a.mean(), "patches_b": s.patches_b.mean()} if cost else {})})
    columns = ["dataset", "click", "n", "dice_a", "dice_b", "change", "se", "better", "worse"]
    return pd.DataFrame(rows, columns=columns + (["patches_a", "patches_b"] if cost else []))


def markdown(t: pd.DataFrame) -> str:
    """The table of :func:`paired` as a pipe table (change as +0.012, the rest with 3 decimals)."""
    def cell(col, v):
        if col == "change":
            return f"{v:+.3f}"
        if col.startswith("patches"):
            return f"{v:.1f}"
        return f"{v:.3f}" if isinstance(v, (float, np.floating)) else str(v)

    lines = ["| " + " | ".join(t.columns) + " |",
             "|" + "|".join(":---" if c == "dataset" else "---:" for c in t.columns) + "|"]
    lines += ["| " + " | ".join(cell(c, v) for c, v in zip(t.columns, r)) + " |" for r in t.itertuples(index=False)]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="clicks.csv of the reference (e.g. the shipped weights)")
    ap.add_argument("b", type=Path, help="clicks.csv of the candidate")
    ap.add_argument("--clicks", type=int, nargs="+", default=[1, 3, 5])
    ap.add_argument("--margin", type=float, default=0.01, help="a target 'moved' when |change| > this")
    args = ap.parse_args(argv)
    for p in (args.a, args.b):
        if not p.is_file():
            ap.error(f"{p} not found: pass the clicks.csv files of two evaluations")
    try:
        t = paired(pd.read_csv(args.a), pd.read_csv(args.b), args.clicks, args.margin)
    except ValueError as e:  # a file that is not a clicks.csv, or sessions drawn differently
        ap.error(str(e))
    if t.empty:
        print("no target is in both evaluations (dataset, case and structure must match)", file=sys.stderr)
        return 1
    print(f"A = {args.a}\nB = {args.b}\n")
    print(markdown(t))
    return 0


if __name__ == "__main__":
    sys.exit(main())
