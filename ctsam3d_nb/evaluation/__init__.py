"""Evaluation: simulated clicks, metrics, per-dataset tables and plots.

    from ctsam3d_nb.evaluation import open_dataset, evaluate_interactive, summary_table

The protocol (first click at the target's deepest point, each next click at the
deepest point of the largest error) is in `interactive`; Dice and normalised
surface Dice in `metrics`; Dice@k / NSD@k / NoC@t tables in `aggregate`; plots
in `plots`; dataset adapters in `datasets`. ``python -m ctsam3d_nb.evaluate``
runs it all on a dataset folder and writes a resumable CSV.
"""
from __future__ import annotations

from .aggregate import SIZE_CLASSES, aggregate, error_table, per_target, size_class, summarize, summary_table
from ..datasets import DATASETS, DatasetLayoutError, open_dataset
from .interactive import ERROR_COLUMNS, RECORD_COLUMNS, evaluate_interactive
from .metrics import boundary_band, dice, error_counts, hd95, normalized_surface_dice, surface_distances
from .plots import plot_dice_vs_clicks, plot_structure_bars

__all__ = [
    "DATASETS",
    "DatasetLayoutError",
    "ERROR_COLUMNS",
    "RECORD_COLUMNS",
    "SIZE_CLASSES",
    "aggregate",
    "boundary_band",
    "dice",
    "error_counts",
    "error_table",
    "evaluate_interactive",
    "hd95",
    "normalized_surface_dice",
    "open_dataset",
    "per_target",
    "plot_dice_vs_clicks",
    "plot_structure_bars",
    "size_class",
    "summarize",
    "summary_table",
    "surface_distances",
]
