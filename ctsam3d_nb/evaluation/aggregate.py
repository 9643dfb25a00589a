"""From per-click records to the paper-style table: Dice@k, NSD@k, NoC@t.

The input is the long per-click DataFrame written by ``python -m
ctsam3d_nb.evaluate`` (or `evaluate_interactive` output with ``dataset`` and
``case`` columns added): one row per dataset × case × structure × click with
the columns ``dataset, case, structure, click, dice, nsd, latency_s,
gt_voxels, gt_ml``. ``dataset``, ``case``, ``nsd``, ``latency_s`` and
``gt_ml`` may be missing; the rest are needed.

Definitions:

* A *target* is one (dataset, case, structure), or one (dataset, case, structure,
  session) when the records have a ``session`` column (``python -m ctsam3d_nb.evaluate
  --sessions N``: each session of a target starts from a different first click). Every
  statistic is first computed per target, then averaged over targets (each target weighs
  the same, whatever its size), as in the interactive-segmentation literature.
* ``dice@k`` / ``nsd@k``: the value after click ``k`` (1-based).
* ``noc@t`` (number of clicks): the first click ``k`` with ``dice >= t``
  (t = 0.80, 0.85, 0.90). A target that never reaches ``t`` counts as
  ``n_clicks`` (the click budget), the convention of RITM / SimpleClick /
  SAM-Med3D; ``nof@t`` (number of failures) counts those targets, so capped
  values are visible.
* ``size_class`` from the reference volume: small < 10 mL, medium 10 mL to
  under 100 mL, large >= 100 mL (`SIZE_CLASSES`).
* ``latency_s``: mean seconds per click over clicks actually made (rows carried
  forward after a perfect mask are left out).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["SIZE_CLASSES", "size_class", "per_target", "aggregate", "summarize", "summary_table", "error_table"]

#: (name, lower mL inclusive, upper mL exclusive)
SIZE_CLASSES = (("small", 0.0, 10.0), ("medium", 10.0, 100.0), ("large", 100.0, np.inf))
DEFAULT_KS = (1, 3, 5, 10)
DEFAULT_THRESHOLDS = (0.80, 0.85, 0.90)
_TARGET = ["dataset", "case", "structure"]


def _keys(df: pd.DataFrame) -> list[str]:
    """The columns naming one target: `_TARGET`, plus ``session`` when the records have one."""
    return _TARGET + (["session"] if "session" in df.columns else [])


def size_class(gt_ml) -> np.ndarray:
    """Size class name ("small", "medium", "large") per volume in mL; "unknown" for NaN."""
    v = np.atleast_1d(np.asarray(gt_ml, dtype=np.float64))
    out = np.full(v.shape, "unknown", dtype=object)
    for name, lo, hi in SIZE_CLASSES:
        out[(v >= lo) & (v < hi)] = name
    return out


def _pct(t: float) -> str:
    return f"{int(round(t * 100))}"


def _prepare(df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame of per-click records, got {type(df).__name__}")
    missing = [c for c in ("structure", "click", "dice") if c not in df.columns]
    if missing:
        raise ValueError(f"per-click DataFrame lacks columns {missing}; it has {list(df.columns)}")
    if df.empty:
        raise ValueError("per-click DataFrame is empty: nothing to aggregate")
    df = df.copy()
    for col, default in (("dataset", "-"), ("case", "-"), ("nsd", np.nan), ("latency_s", np.nan),
                         ("gt_ml", np.nan), ("carried", False)):
        if col not in df.columns:
            df[col] = default
    df["case"] = df["case"].astype(str)
    df["click"] = df["click"].astype(int)
    if "session" in df.columns:  # rows of files written before sessions were one session each
        df["session"] = df["session"].fillna(1).astype(int)
    keys = _keys(df) + ["click"]
    dup = df.duplicated(keys)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].tolist()
        raise ValueError(f"{int(dup.sum())} duplicate ({', '.join(keys)}) rows, e.g. {first}; "
                         "was a results file appended twice?")
    return df


def per_target(df: pd.DataFrame, ks=DEFAULT_KS, thresholds=DEFAULT_THRESHOLDS) -> pd.DataFrame:
    """One row per target (dataset, case, structure[, session]) with its statistics.

    Returns:
        Columns ``dataset, case, structure`` (and ``session`` when the records have it),
        ``gt_ml, size_class, n_clicks``, then
        ``dice@k`` and ``nsd@k`` for each ``k`` in ``ks`` that is at most the largest
        click count (NaN for a target with fewer clicks), ``noc@t`` (capped at the
        target's ``n_clicks``), ``fail@t`` (True if ``t`` was never reached), and
        ``latency_s`` (mean over non-carried clicks), and ``patches@k`` (64³ patches the
        object spans after click ``k``) when the records have a ``patches`` column.
    """
    df = _prepare(df)
    keys = _keys(df)
    df = df.sort_values(keys + ["click"])
    max_click = int(df["click"].max())
    ks = [int(k) for k in ks if int(k) <= max_click]
    dice_w = df.pivot(index=keys, columns="click", values="dice")
    nsd_w = df.pivot(index=keys, columns="click", values="nsd")
    g = df.groupby(keys, sort=True)
    out = pd.DataFrame(index=dice_w.index)
    out["gt_ml"] = g["gt_ml"].first()
    out["size_class"] = size_class(out["gt_ml"].to_numpy())
    out["n_clicks"] = g["click"].max().astype(int)
    for k in ks:
        out[f"dice@{k}"] = dice_w[k] if k in dice_w.columns else np.nan
    for k in ks:
        out[f"nsd@{k}"] = nsd_w[k] if k in nsd_w.columns else np.nan
    d = dice_w.to_numpy(dtype=np.float64)  # (targets, clicks); NaN past a target's last click
    n = out["n_clicks"].to_numpy()
    for t in thresholds:
        hit = np.nan_to_num(d, nan=-1.0) >= t
        reached = hit.any(axis=1)
        out[f"noc@{_pct(t)}"] = np.where(reached, hit.argmax(axis=1) + 1, n).astype(int)
        out[f"fail@{_pct(t)}"] = ~reached
    if "patches" in df.columns:
        patches_w = df.pivot(index=keys, columns="click", values="patches").where(lambda p: p >= 0)
        for k in ks:
            out[f"patches@{k}"] = patches_w[k] if k in patches_w.columns else np.nan
    made = df[~df["carried"].astype(bool)]
    out["latency_s"] = made.groupby(keys)["latency_s"].mean().reindex(out.index)
    return out.reset_index()


def aggregate(df: pd.DataFrame, by="structure", ks=DEFAULT_KS, thresholds=DEFAULT_THRESHOLDS,
              std: bool = False) -> pd.DataFrame:
    """Mean statistics over targets, grouped.

    Args:
        df: per-click records (see the module docstring).
        by: a column of `per_target` ("structure", "dataset", "size_class", "case"),
            a list of them, or None for one overall row.
        ks: clicks at which Dice and NSD are reported.
        thresholds: Dice thresholds of NoC.
        std: add a ``<column>_std`` column (over targets) for every Dice/NSD/NoC column.

    Returns:
        One row per group: ``n`` (targets), mean ``dice@k``, ``nsd@k``, ``noc@t``,
        ``nof@t`` (targets that never reached ``t``), mean ``patches@k`` (when recorded), mean
        ``latency_s``; indexed by ``by``.
    """
    tgt = per_target(df, ks, thresholds)
    metric_cols = [c for c in tgt.columns if c.startswith(("dice@", "nsd@", "noc@", "patches@"))]
    fail_cols = [c for c in tgt.columns if c.startswith("fail@")]
    if by is None:
        tgt = tgt.assign(_all="all")
        keys = ["_all"]
    else:
        keys = [by] if isinstance(by, str) else list(by)
        bad = [k for k in keys if k not in tgt.columns]
        if bad:
            raise ValueError(f"cannot group by {bad}; choose from dataset, case, structure, size_class")
    g = tgt.groupby(keys, sort=True)
    out = g[metric_cols + ["latency_s"]].mean()
    out.insert(0, "n", g.size())
    for c in fail_cols:
        out["nof@" + c.split("@")[1]] = g[c].sum().astype(int)
    if std:
        for c in metric_cols:
            out[f"{c}_std"] = g[c].std(ddof=0)
    if by is None:
        out.index = pd.Index(["all"], name="all")
    if "size_class" in keys and len(keys) == 1:  # small, medium, large order instead of alphabetical
        order = [s[0] for s in SIZE_CLASSES] + ["unknown"]
        out = out.reindex([s for s in order if s in out.index])
    return out


def summarize(df: pd.DataFrame, ks=DEFAULT_KS, thresholds=DEFAULT_THRESHOLDS) -> dict[str, pd.DataFrame]:
    """The usual breakdowns: ``{"overall", "dataset", "size_class", "structure"}`` → DataFrame.

    ``"structure"`` is grouped by (dataset, structure), so one organ in two datasets
    gives two rows.
    """
    return {
        "overall": aggregate(df, None, ks, thresholds),
        "dataset": aggregate(df, "dataset", ks, thresholds),
        "size_class": aggregate(df, "size_class", ks, thresholds),
        "structure": aggregate(df, ["dataset", "structure"], ks, thresholds),
    }


def _fmt(col: str, v) -> str:
    if isinstance(v, (float, np.floating)):
        if np.isnan(v):
            return "–"
        if col.startswith(("dice", "nsd@")) or col.endswith("share"):
            return f"{v:.3f}"
        if col in ("fp", "fn"):
            return f"{v:.0f}"
        if col == "latency_s":
            return f"{v:.3f}"
        return f"{v:.2f}"
    return str(v)


def _markdown(table: pd.DataFrame) -> str:
    """A pipe table (no `tabulate` dependency): index columns first, numbers right-aligned."""
    t = table.reset_index()
    head = [str(c) for c in t.columns]
    n_keys = table.index.nlevels
    rows = [[_fmt(c, v) for c, v in zip(t.columns, r)] for r in t.itertuples(index=False)]
    align = [":---" if i < n_keys else "---:" for i in range(len(head))]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def summary_table(df: pd.DataFrame, ks=DEFAULT_KS, thresholds=DEFAULT_THRESHOLDS,
                  sections=("dataset", "size_class", "structure")) -> str:
    """The results as Markdown: one table per breakdown of `summarize`.

    Example:
        >>> print(summary_table(pd.read_csv("results.csv")))   # doctest: +SKIP
        ### By dataset
        | dataset | n | dice@1 | ...
    """
    n_clicks = int(_prepare(df)["click"].max())
    ks = sorted({*(int(k) for k in ks if int(k) <= n_clicks), n_clicks})  # always show the last click
    parts = summarize(df, ks, thresholds)
    thr = ", ".join(_pct(t) for t in thresholds)
    text = [f"Simulated clicks, {n_clicks} per target; mean over targets. NoC@t = first click with "
            f"Dice >= t ({thr} %), {n_clicks} when never reached (nof@t counts those)."]
    titles = {"overall": "Overall", "dataset": "By dataset", "size_class": "By size class "
              "(small < 10 mL, medium 10-100 mL, large >= 100 mL)", "structure": "By structure"}
    for name in sections:
        if name not in parts:
            raise ValueError(f"unknown section {name!r}; choose from {list(parts)}")
        text.append(f"### {titles[name]}\n\n{_markdown(parts[name])}")
    return "\n\n".join(text) + "\n"


def error_table(df: pd.DataFrame, by="dataset", markdown: bool = False):
    """Where the errors are after each click, from records with the error columns (``evaluate_interactive(...,
    error_band_mm=...)``): per ``by`` and click, the targets, the mean false-positive and missed voxels, the share
    of all error voxels lying in the boundary band (an edge a little off, which one more click barely moves),
    the median of that share per target, and the mean Dice. A DataFrame, or with ``markdown=True`` a pipe table."""
    missing = [c for c in ("fp", "fn", "fp_far", "fn_far") if c not in df.columns]
    if missing:
        raise ValueError(f"the records lack {missing}: evaluate with error_band_mm set "
                         "(evaluate_interactive(..., error_band_mm=2.5))")
    d = df.assign(err=df["fp"] + df["fn"], far=df["fp_far"] + df["fn_far"])
    d = d.assign(band_share=1 - d["far"] / d["err"].where(d["err"] > 0))  # NaN for a perfect mask
    g = d.groupby([by, "click"], sort=False)
    err = g["err"].sum()
    out = pd.DataFrame({"n": g.size(), "dice": g["dice"].mean(), "fp": g["fp"].mean(), "fn": g["fn"].mean(),
                        "band share": 1 - g["far"].sum() / err.where(err > 0),
                        "median band share": g["band_share"].median()})
    return _markdown(out) + "\n" if markdown else out
