"""Simulated-click evaluation of one target: the field's standard protocol.

Click 1 goes to the deepest interior point of the target (`clicks.first_click`);
click k+1 goes to the deepest point of the largest error region of the mask
after click k (`clicks.next_click`: missed voxels → positive, extra voxels →
negative). Distances use the CT's spacing. The predictor only ever receives
the clicks: the reference mask never reaches the model.

Several structures of one CT are evaluated on one ``set_volume``: each target
starts a fresh object with ``predictor.new_object(name)`` (no clicks, empty
mask), while the encoder features cached by the predictor are reused, as in a
real session where a user segments one organ after another. A structure evaluated
again on the same predictor (another ``first_click_seed``) starts its object under a
custom label id, its ontology id being taken by the earlier one.
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd

from ..anatomy import by_name
from ..clicks import first_click, next_click
from ..predictor_state import free_label_id
from ..volume import CTVolume
from .metrics import boundary_band, dice, error_counts, hd95, normalized_surface_dice

__all__ = ["evaluate_interactive", "RECORD_COLUMNS", "ERROR_COLUMNS"]

#: Columns of the per-click records, in order (``hd95`` only with ``with_hd95=True``; the `ERROR_COLUMNS` only
#: with ``error_band_mm``).
RECORD_COLUMNS = (
    "structure",  # name given to new_object
    "click",  # 1-based click index
    "z", "y", "x",  # voxel index (z, y, x) of the CT that was clicked; -1 on carried rows
    "positive",  # True for a positive (add) click; False on carried rows
    "carried",  # True when the mask was already perfect and the previous values were carried forward
    "dice",  # Dice of the mask after this click
    "nsd",  # normalised surface Dice at nsd_tolerance_mm
    "latency_s",  # seconds the predictor spent on this click (0.0 on carried rows)
    "pred_voxels",  # voxels in the predicted mask
    "gt_voxels",  # voxels in the reference mask
    "gt_ml",  # reference volume in millilitres
    "patches",  # 64³ patches (all zoom levels) the object spans after this click; -1 if unknown
)
#: With ``error_band_mm``: the mask's errors after the click, and those farther than the band from the reference's
#: boundary (a part missed or leaked, not an edge drawn a little off); `metrics.error_counts`.
ERROR_COLUMNS = ("fp", "fn", "fp_far", "fn_far")


def _check_inputs(predictor, ct, gt_mask, n_clicks, nsd_tolerance_mm):
    if not isinstance(ct, CTVolume):
        raise TypeError(f"ct must be a CTVolume (from load_ct), got {type(ct).__name__}")
    gt = np.asarray(gt_mask)
    if gt.shape != ct.shape:
        raise ValueError(f"gt_mask shape {gt.shape} differs from the CT's {ct.shape} (z, y, x); "
                         "load labels with load_labels(path, like=ct)")
    if gt.dtype != bool:
        if gt.dtype.kind not in "biu":
            raise TypeError(f"gt_mask must be a boolean mask, got dtype {gt.dtype}")
        gt = gt != 0
    if not gt.any():
        raise ValueError("gt_mask is empty: there is nothing to click on. Skip structures absent from the case.")
    if isinstance(n_clicks, bool) or int(n_clicks) != n_clicks or n_clicks < 1:
        raise ValueError(f"n_clicks must be a positive integer, got {n_clicks!r}")
    if not float(nsd_tolerance_mm) >= 0:
        raise ValueError(f"nsd_tolerance_mm must be >= 0, got {nsd_tolerance_mm!r}")
    for attr in ("set_volume", "new_object", "click"):
        if not hasattr(predictor, attr):
            raise TypeError(f"predictor must be a ctsam3d_nb Predictor (missing .{attr}), "
                            f"got {type(predictor).__name__}")
    return gt


def _patch_count(predictor) -> int:
    """Patches (of every zoom level) of the current object holding any voxel above the threshold
    (-1 if not a Predictor)."""
    try:
        levels, thr = predictor.object.masks.levels, predictor.threshold
    except AttributeError:  # another predictor type: the count is unknown
        return -1
    return sum(1 for m in levels.values() for p in m.probs.values() if (p > thr).any())


def _ontology_id_taken(predictor, name: str) -> bool:
    """Whether an object of ``predictor`` already holds the ontology id of ``name``."""
    try:
        oid = by_name(name).id
    except KeyError:
        return False  # names outside the ontology get a free custom id anyway
    return any(o.label_id == oid for o in getattr(predictor, "objects", ()))


def evaluate_interactive(predictor, ct: CTVolume, gt_mask, n_clicks: int = 10, nsd_tolerance_mm: float = 2.0,
                         structure: str | None = None, with_hd95: bool = False,
                         first_click_seed: int | None = None, first_click_depth: float = 0.5,
                         error_band_mm: float | None = None) -> pd.DataFrame:
    """Run the simulated-click protocol on one target and score every click.

    Args:
        predictor: a `Predictor`. If its current volume is not ``ct`` it is set to
            ``ct`` (``set_volume``); otherwise its cached encoder features are reused.
        ct: the CT (``CTVolume``).
        gt_mask: reference mask of the target, bool ``(z, y, x)`` of ``ct.shape``; must be non-empty.
        n_clicks: clicks per target. If the mask becomes perfect (``next_click`` returns
            None) the protocol stops and the last values are carried forward, so there
            are always exactly ``n_clicks`` rows.
        nsd_tolerance_mm: tolerance of the normalised surface Dice, mm.
        structure: the target's name; an ontology name gives the object its id and colour.
            Default "target".
        with_hd95: also report the 95 % Hausdorff distance (mm) per click (slower).
        first_click_seed: None (default) clicks first at the target's deepest point. An integer
            clicks first at a voxel drawn with this seed among those at least ``first_click_depth``
            as deep (`clicks.first_click` with a seeded generator, as training does): several seeds give
            several sessions of one target, where users click in different places. Later
            clicks follow the errors as always.
        first_click_depth: with ``first_click_seed``, the least depth of that voxel as a fraction of
            the deepest point's (0.5; 0 = anywhere in the target, as a user may click near an edge).
        error_band_mm: also count each click's false positives and misses (`ERROR_COLUMNS`), and those
            farther than this from the reference's boundary (`metrics.boundary_band`): what clicks still
            have to fix, and whether it is edges or whole parts.

    Returns:
        A DataFrame with one row per click and the columns of `RECORD_COLUMNS`
        (plus ``hd95``, plus `ERROR_COLUMNS`). ``latency_s`` is ``predictor.last_timing["total"]`` (the
        predictor's own measure of the click), or wall time around ``click`` if absent.

    Example:
        >>> pred = Predictor(load_model("nano")).set_volume(ct)        # doctest: +SKIP
        >>> df = evaluate_interactive(pred, ct, labels == 5, n_clicks=5, structure="liver")  # doctest: +SKIP
        >>> df[["click", "dice", "nsd"]]                                # doctest: +SKIP
    """
    gt = _check_inputs(predictor, ct, gt_mask, n_clicks, nsd_tolerance_mm)
    if first_click_seed is not None and (isinstance(first_click_seed, bool)
                                         or not isinstance(first_click_seed, (int, np.integer))):
        raise TypeError(f"first_click_seed must be an integer or None, got {first_click_seed!r}")
    if not 0 <= first_click_depth <= 1:  # before any work; the message names this function's argument
        raise ValueError(f"first_click_depth must be in [0, 1] (a fraction of the deepest point's depth), "
                         f"got {first_click_depth!r}")
    if error_band_mm is not None and not float(error_band_mm) >= 0:
        raise ValueError(f"error_band_mm must be None or a distance >= 0 (mm), got {error_band_mm!r}")
    n_clicks = int(n_clicks)
    name = structure or "target"
    if getattr(predictor, "ct", None) is not ct:
        predictor.set_volume(ct)
    if _ontology_id_taken(predictor, name):  # another session of this structure (e.g. another first_click_seed)
        predictor.new_object(name, free_label_id(predictor.objects))
    else:
        predictor.new_object(name)
    spacing = ct.spacing
    gt_voxels = int(np.count_nonzero(gt))
    gt_ml = gt_voxels * ct.voxel_volume_ml
    band = None if error_band_mm is None else boundary_band(gt, spacing, error_band_mm)

    records: list[dict] = []
    rng = None if first_click_seed is None else np.random.default_rng(int(first_click_seed))
    point, positive = first_click(gt, spacing, rng, first_click_depth), True
    mask = None
    for k in range(1, n_clicks + 1):
        if mask is not None:
            nxt = next_click(mask, gt, spacing)
            if nxt is None:  # perfect mask: nothing left to correct
                for j in range(k, n_clicks + 1):
                    records.append({**records[-1], "click": j, "z": -1, "y": -1, "x": -1,
                                    "positive": False, "carried": True, "latency_s": 0.0})
                break
            point, positive = nxt
        t0 = time.perf_counter()
        mask = np.asarray(predictor.click(point, positive=positive), dtype=bool)
        wall = time.perf_counter() - t0
        latency = float(getattr(predictor, "last_timing", {}).get("total", wall))
        row = {
            "structure": name, "click": k,
            "z": int(point[0]), "y": int(point[1]), "x": int(point[2]),
            "positive": bool(positive), "carried": False,
            "dice": dice(mask, gt), "nsd": normalized_surface_dice(mask, gt, spacing, nsd_tolerance_mm),
            "latency_s": latency, "pred_voxels": int(np.count_nonzero(mask)),
            "gt_voxels": gt_voxels, "gt_ml": gt_ml, "patches": _patch_count(predictor),
        }
        if with_hd95:
            row["hd95"] = hd95(mask, gt, spacing)
        if band is not None:
            row.update(error_counts(mask, gt, band))
        records.append(row)
    columns = list(RECORD_COLUMNS) + (["hd95"] if with_hd95 else []) + (list(ERROR_COLUMNS) if band is not None else [])
    return pd.DataFrame.from_records(records, columns=columns)
