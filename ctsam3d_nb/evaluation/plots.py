"""Plots of simulated-click results: Dice versus clicks, and Dice@k per structure.

Both take the per-click DataFrame of `aggregate` and return the matplotlib
Figure without showing it (display it in a notebook by leaving it as the last
expression of a cell or with ``display(fig)``, or save it with ``fig.savefig``;
in a script, ``plt.show()`` shows it).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from .aggregate import _TARGET, _prepare, per_target

__all__ = ["plot_dice_vs_clicks", "plot_structure_bars"]


def _new_axes(ax, figsize):
    import matplotlib.pyplot as plt  # on first use: importing the evaluation package stays without pyplot (~0.8 s)

    if ax is not None:
        return ax.figure, ax
    with plt.ioff():  # no second copy of the canvas in Jupyter
        fig, ax = plt.subplots(figsize=figsize)
    if "ipykernel" in sys.modules:
        # in Jupyter, closed at once: pyplot forgets it, so the inline backend does not show it again
        # at the end of the cell (it is shown once, as the cell's value or by display(fig));
        # drawing and savefig still work. Scripts keep it open for plt.show().
        plt.close(fig)
    return fig, ax


def plot_dice_vs_clicks(df: pd.DataFrame, by: str = "structure", ax=None, metric: str = "dice",
                        max_groups: int = 12, figsize=(6.0, 4.0)):
    """Mean Dice (± one standard deviation over targets, as a band) after each click.

    Args:
        df: per-click records (columns ``structure, click, dice`` at least; see `aggregate`).
        by: one line per "structure", "dataset", "size_class" or "case"; None for one line.
        ax: matplotlib Axes to draw into; a new figure if None.
        metric: "dice" or "nsd".
        max_groups: draw at most this many groups (the largest by number of targets).

    Returns:
        The matplotlib Figure.
    """
    if metric not in ("dice", "nsd"):
        raise ValueError(f"metric must be 'dice' or 'nsd', got {metric!r}")
    d = _prepare(df)
    if by is not None:
        if by == "size_class":
            d = d.merge(per_target(df)[_TARGET + ["size_class"]], on=_TARGET)
        elif by not in d.columns:
            raise ValueError(f"cannot group by {by!r}; choose structure, dataset, size_class or case")
    key = by or "_all"
    if by is None:
        d = d.assign(_all="all")
    fig, ax = _new_axes(ax, figsize)
    counts = d.groupby(key)[_TARGET].apply(lambda t: len(t.drop_duplicates())).sort_values(ascending=False)
    for name in counts.index[:max_groups]:
        per_click = d[d[key] == name].groupby("click")[metric]
        x = np.asarray(sorted(per_click.groups))
        m, s = per_click.mean().to_numpy(), per_click.std(ddof=0).fillna(0).to_numpy()
        (line,) = ax.plot(x, m, marker="o", ms=3, label=f"{name} (n={counts[name]})")
        ax.fill_between(x, np.clip(m - s, 0, 1), np.clip(m + s, 0, 1), color=line.get_color(), alpha=0.15, lw=0)
    ax.set_xlabel("click")
    ax.set_ylabel(f"{metric.upper() if metric == 'nsd' else 'Dice'} (mean ± std over targets)")
    ax.set_ylim(0, 1.02)
    ax.set_xticks(sorted(d["click"].unique()))
    ax.grid(alpha=0.3)
    if len(counts) > 1 or by is not None:
        ax.legend(fontsize="small", loc="lower right")
    if len(counts) > max_groups:
        ax.set_title(f"{max_groups} of {len(counts)} groups (largest first)", fontsize="small")
    return fig


def plot_structure_bars(df: pd.DataFrame, k: int = 5, ax=None, metric: str = "dice", figsize=None):
    """Bar chart of Dice@k (mean ± std over targets) per structure, best first.

    Args:
        df: per-click records.
        k: click at which to report (at most the number of clicks per target).
        ax: matplotlib Axes to draw into; a new figure if None.
        metric: "dice" or "nsd".

    Returns:
        The matplotlib Figure.
    """
    if metric not in ("dice", "nsd"):
        raise ValueError(f"metric must be 'dice' or 'nsd', got {metric!r}")
    tgt = per_target(df, ks=(k,))
    col = f"{metric}@{int(k)}"
    if col not in tgt.columns:
        raise ValueError(f"no {col}: the results have only {int(tgt['n_clicks'].max())} clicks per target")
    g = tgt.groupby("structure")[col]
    stats = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=0)}).sort_values("mean", ascending=False)
    fig, ax = _new_axes(ax, figsize or (max(4.0, 0.35 * len(stats) + 1.5), 4.0))
    x = np.arange(len(stats))
    ax.bar(x, stats["mean"], yerr=stats["std"].fillna(0), capsize=2, color="tab:blue", alpha=0.8)
    ax.set_xticks(x)
    ax.set_xticklabels(stats.index, rotation=60, ha="right", fontsize="small")
    ax.set_ylabel(f"{'Dice' if metric == 'dice' else 'NSD'} after {int(k)} click{'s' if k != 1 else ''}")
    ax.set_ylim(0, 1.02)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig
