"""benchmarks/evaluate_shipped.py: which structures of the held-out real series are evaluated."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

import pandas as pd
import pytest

from ctsam3d_nb import load_ct, load_labels
from ctsam3d_nb.anatomy import by_id, by_name
from region_model import RegionModel

_spec = importlib.util.spec_from_file_location(
    "evaluate_shipped", Path(__file__).resolve().parents[1] / "benchmarks" / "evaluate_shipped.py")
evaluate_shipped = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(evaluate_shipped)


def test_every_labelled_structure_of_the_real_series_is_evaluated_once(real_ct_dir):
    labels = load_labels(real_ct_dir / "example_seg_dicom.nii.gz", like=load_ct(real_ct_dir / "dicom_series"))
    groups = evaluate_shipped.real_structures(labels)
    head, rest = groups["real DICOM (held out)"], groups[evaluate_shipped.REAL_ALL]
    assert set(head) == {"liver", "spleen", "stomach", "aorta", "inferior_vena_cava", "vertebrae_T12",
                         "vertebrae_T11", "pancreas"}
    ids, counts = np.unique(labels, return_counts=True)
    big = {by_id(int(i)).name for i, n in zip(ids, counts) if i and n >= 200}
    small = {by_id(int(i)).name for i, n in zip(ids, counts) if i and n < 200}
    assert not set(head) & set(rest) and set(head) | set(rest) == big
    assert {"rib_left_7", "humerus_left", "costal_cartilages", "spinal_cord"} <= set(rest)
    assert "rib_left_12" in small and len(big) == 30  # a 0.2-mL sliver of rib 12 is too small to click on


def test_real_sessions_click_first_in_different_places_of_each_real_target(real_ct_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate_shipped, "REAL", real_ct_dir)
    monkeypatch.setattr(evaluate_shipped, "load_model", lambda *a, **k: RegionModel())
    evaluate_shipped.main(["--seeds", "--real-sessions", "3", "--real-headline-only", "--clicks", "1",
                           "--threads", "1", "--growth-budget", "1", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "clicks.csv")
    cases = [evaluate_shipped.real_case_name(k) for k in range(3)]
    assert cases[0] == "dicom_series"  # the deepest-point session pairs with earlier evaluations
    assert evaluate_shipped.real_case_name(0, 0.0) == cases[0] and evaluate_shipped.real_case_name(1, 0.0) != cases[1]
    assert sorted(df["case"].unique()) == sorted(cases) and len(df) == 3 * 8
    labels = load_labels(real_ct_dir / "example_seg_dicom.nii.gz", like=load_ct(real_ct_dir / "dicom_series"))
    moved = 0
    for name, g in df.groupby("structure"):
        pts = [tuple(r) for r in g.set_index("case").loc[cases, ["z", "y", "x"]].to_numpy()]
        assert all(labels[p] == by_name(name).id for p in pts)  # every first click inside its target
        moved += len(set(pts)) == 3
    assert moved >= 6  # most targets are clicked first in three different places
    with pytest.raises(SystemExit):
        evaluate_shipped.main(["--seeds", "--real-sessions", "0", "--out-dir", str(tmp_path)])


def test_error_band_adds_the_error_columns_and_their_table(real_ct_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(evaluate_shipped, "REAL", real_ct_dir)
    monkeypatch.setattr(evaluate_shipped, "load_model", lambda *a, **k: RegionModel())
    evaluate_shipped.main(["--seeds", "--real-headline-only", "--clicks", "2", "--threads", "1", "--growth-budget",
                           "1", "--error-band-mm", "2.5", "--out-dir", str(tmp_path)])
    df = pd.read_csv(tmp_path / "clicks.csv")
    assert len(df) == 2 * 8 and (df["fp_far"] <= df["fp"]).all() and (df["fn_far"] <= df["fn"]).all()
    assert (df["fp"] + df["fn"] > 0).any()
    assert "Where the errors are (boundary band 2.5 mm" in (tmp_path / "summary.md").read_text()
