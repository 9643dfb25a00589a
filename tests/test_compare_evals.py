"""benchmarks/compare_evals.py: the paired per-target comparison behind the model card's ship decisions."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

_spec = importlib.util.spec_from_file_location(
    "compare_evals", Path(__file__).resolve().parents[1] / "benchmarks" / "compare_evals.py")
compare_evals = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_evals)


def clicks(dice_by_target, dataset="phantom (held out)"):
    """A clicks.csv frame: targets (case, structure) with their Dice after clicks 1..n."""
    rows = [{"dataset": dataset, "case": case, "structure": s, "click": k + 1, "dice": d, "latency_s": 0.1}
            for (case, s), ds in dice_by_target.items() for k, d in enumerate(ds)]
    return pd.DataFrame(rows)


def test_changes_are_paired_per_target_and_counted():
    a = clicks({("1", "liver"): [0.4, 0.6, 0.7], ("1", "aorta"): [0.3, 0.3, 0.3], ("2", "liver"): [0.5, 0.8, 0.9],
                ("2", "spleen"): [0.9, 0.9, 0.9]})
    b = clicks({("1", "liver"): [0.5, 0.7, 0.8], ("1", "aorta"): [0.3, 0.305, 0.2], ("2", "liver"): [0.45, 0.8, 0.9],
                ("3", "kidney"): [0.1, 0.2, 0.3]})  # spleen only in A, kidney only in B: not paired
    t = compare_evals.paired(a, b, clicks=(1, 3))
    assert list(t.click) == [1, 3] and list(t.n) == [3, 3]
    one = t.iloc[0]
    assert one.dice_a == pytest.approx(0.4) and one.dice_b == pytest.approx(1.25 / 3)
    assert one.change == pytest.approx((0.1 + 0.0 - 0.05) / 3) and (one.better, one.worse) == (1, 1)
    d = np.array([0.1, 0.0, -0.05])
    assert one.se == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    three = t.iloc[1]
    assert (three.better, three.worse) == (1, 1) and three.change == pytest.approx((0.1 - 0.1 + 0.0) / 3)
    text = compare_evals.markdown(t)
    assert "| phantom (held out) | 1 | 3 | 0.400 | 0.417 | +0.017 |" in text


def test_cli_reads_two_files_and_refuses_what_it_cannot_pair(tmp_path, capsys):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    clicks({("1", "liver"): [0.4, 0.6]}).to_csv(a, index=False)
    clicks({("1", "liver"): [0.5, 0.6]}).to_csv(b, index=False)
    assert compare_evals.main([str(a), str(b), "--clicks", "1", "2"]) == 0
    assert "+0.100" in capsys.readouterr().out
    clicks({("9", "spleen"): [0.5]}).to_csv(b, index=False)
    assert compare_evals.main([str(a), str(b)]) == 1
    assert "no target is in both" in capsys.readouterr().err
    pd.DataFrame({"dice": [0.5]}).to_csv(b, index=False)
    with pytest.raises(SystemExit):  # one error line, exit status 2, no traceback
        compare_evals.main([str(a), str(b)])
    assert "lacks the columns" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        compare_evals.main([str(a), str(tmp_path / "missing.csv")])
    assert "not found" in capsys.readouterr().err


def test_a_phantom_only_file_pairs_with_one_that_holds_the_real_case(tmp_path, capsys):
    """Phantom seeds alone read back as numbers, with the real case ('dicom_series') as text: still paired."""
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    clicks({("900000", "liver"): [0.4]}).to_csv(a, index=False)
    pd.concat([clicks({("900000", "liver"): [0.5]}),
               clicks({("dicom_series", "liver"): [0.7]}, dataset="real DICOM (held out)")]).to_csv(b, index=False)
    assert pd.read_csv(a)["case"].dtype != pd.read_csv(b)["case"].dtype
    assert compare_evals.main([str(a), str(b), "--clicks", "1"]) == 0
    assert "| phantom (held out) | 1 | 1 | 0.400 | 0.500 | +0.100 |" in capsys.readouterr().out


def test_sessions_are_paired_session_by_session():
    """Files of `python -m ctsam3d_nb.evaluate --sessions N` hold N sessions per target: pair session k with k."""
    a = clicks({("1", "liver"): [0.4, 0.6], ("1", "aorta"): [0.3, 0.5]}).assign(session=1)
    a2 = clicks({("1", "liver"): [0.2, 0.6], ("1", "aorta"): [0.1, 0.5]}).assign(session=2)
    b = clicks({("1", "liver"): [0.5, 0.6], ("1", "aorta"): [0.3, 0.5]}).assign(session=1)
    b2 = clicks({("1", "liver"): [0.2, 0.6], ("1", "aorta"): [0.3, 0.5]}).assign(session=2)
    t = compare_evals.paired(pd.concat([a, a2]), pd.concat([b, b2]), clicks=(1,))
    one = t.iloc[0]
    assert one.n == 4 and one.change == pytest.approx((0.1 + 0.0 + 0.0 + 0.2) / 4)
    assert (one.better, one.worse) == (2, 0)


def test_a_file_without_sessions_pairs_with_session_1_only_and_other_depths_are_refused():
    old = clicks({("1", "liver"): [0.4, 0.6], ("1", "aorta"): [0.3, 0.5]})  # evaluate_shipped.py, earlier CLI files
    new = pd.concat([clicks({("1", "liver"): [0.5, 0.6], ("1", "aorta"): [0.3, 0.5]}).assign(session=k)
                     for k in (1, 2, 3)]).assign(first_click_depth=0.0)
    t = compare_evals.paired(old, new, clicks=(1,))
    assert t.iloc[0].n == 2 and t.iloc[0].change == pytest.approx(0.05)
    with pytest.raises(ValueError, match="first-click-depth"):
        compare_evals.paired(new, new.assign(first_click_depth=0.5), clicks=(1,))


def test_patches_per_click_are_compared_when_both_files_have_them():
    a = clicks({("1", "liver"): [0.4, 0.6], ("1", "aorta"): [0.3, 0.3]}).assign(patches=[4, 6, 2, 2])
    b = clicks({("1", "liver"): [0.5, 0.6], ("1", "aorta"): [0.3, 0.3]}).assign(patches=[9, 11, 5, 3])
    t = compare_evals.paired(a, b, clicks=(1, 2))
    assert list(t.patches_a) == [3.0, 4.0] and list(t.patches_b) == [7.0, 7.0]
    assert "| 3.0 | 7.0 |" in compare_evals.markdown(t)
    assert "patches_a" not in compare_evals.paired(a.drop(columns="patches"), b, clicks=(1,)).columns
