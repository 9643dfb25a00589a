"""The simulated-click protocol with a transparent model, the plots, and the resumable CLI."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from ctsam3d_nb import CTVolume, checkpoint
from ctsam3d_nb.evaluate import CSV_COLUMNS, main
from ctsam3d_nb.evaluation import (ERROR_COLUMNS, RECORD_COLUMNS, boundary_band, evaluate_interactive,
                                   plot_dice_vs_clicks, plot_structure_bars)
from ctsam3d_nb.predictor import Predictor
from region_model import RegionModel


@pytest.fixture(scope="module")
def scene():
    """Soft tissue with a bright ball (the target) and a bright leak: a thin bar ending in a knob."""
    hu = np.zeros((40, 48, 48), np.int16)
    zz, yy, xx = np.indices(hu.shape)
    ball = (zz - 20) ** 2 + (yy - 24) ** 2 + (xx - 16) ** 2 <= 64
    leak = (np.abs(zz - 20) <= 1) & (np.abs(yy - 24) <= 1) & (xx >= 16) & (xx < 38)
    leak |= (zz - 20) ** 2 + (yy - 24) ** 2 + (xx - 38) ** 2 <= 16  # the deepest part of the error
    hu[ball | leak] = 200
    return CTVolume.from_array(hu, spacing=(1.5, 1.5, 1.5)), ball, leak & ~ball


@pytest.fixture(scope="module")
def predictor():
    return Predictor(RegionModel(), device="cpu", growth_budget=1)


def test_negative_click_improves_and_records_are_complete(predictor, scene):
    ct, ball, _ = scene
    df = evaluate_interactive(predictor, ct, ball, n_clicks=2, structure="liver")
    assert list(df.columns) == list(RECORD_COLUMNS) and len(df) == 2
    first, second = df.iloc[0], df.iloc[1]
    assert first["positive"] and ball[first["z"], first["y"], first["x"]]  # deepest point of the target
    assert not second["positive"] and not ball[second["z"], second["y"], second["x"]]  # on the leak
    assert 0.5 < first["dice"] < second["dice"] < 1.0 and first["nsd"] < second["nsd"]
    assert (df["latency_s"] > 0).all() and not df["carried"].any()
    assert (df["gt_voxels"] == ball.sum()).all()
    assert df["gt_ml"].iloc[0] == pytest.approx(ball.sum() * 1.5**3 / 1000)
    assert df["patches"].tolist() == [1, 1]  # growth_budget=1: one patch


def test_error_columns_say_the_leak_is_far_from_the_edge(scene):
    ct, ball, leak = scene
    pred = Predictor(RegionModel(), device="cpu", growth_budget=1)
    df = evaluate_interactive(pred, ct, ball, n_clicks=2, structure="liver", error_band_mm=1.5)
    assert list(df.columns) == list(RECORD_COLUMNS) + list(ERROR_COLUMNS)
    first, second = df.iloc[0], df.iloc[1]
    assert first["fp"] == leak.sum() and first["fn"] == 0  # the first click takes the whole bright leak
    band = boundary_band(ball, ct.spacing, 1.5)
    assert 0 < (leak & band).sum() < 20  # the bar's root touches the ball: only those voxels are edge errors
    assert first["fp_far"] == (leak & ~band).sum() and first["fn_far"] == 0
    assert second["fp_far"] < first["fp_far"] / 4  # the negative click on the knob removes most of the far part
    with pytest.raises(ValueError, match="error_band_mm"):
        evaluate_interactive(pred, ct, ball, n_clicks=1, error_band_mm=-2)


def test_patch_count_records_cross_patch_growth():
    hu = np.zeros((200, 40, 40), np.int16)
    hu[10:190, 15:25, 15:25] = 200  # a 270 mm bar: more than two 96 mm patches
    ct = CTVolume.from_array(hu, spacing=(1.5, 1.5, 1.5))
    df = evaluate_interactive(Predictor(RegionModel(), device="cpu"), ct, hu > 0, n_clicks=1, structure="aorta")
    assert df["patches"].iloc[0] >= 3 and df["dice"].iloc[0] > 0.95
    df.insert(0, "case", "bar")
    from ctsam3d_nb.evaluation import per_target
    assert per_target(df)["patches@1"].iloc[0] == df["patches"].iloc[0]


def test_perfect_mask_stops_and_carries_values_forward(predictor, scene):
    ct, ball, bar = scene
    enc = predictor.stats["encoder_calls"]
    df = evaluate_interactive(predictor, ct, ball | bar, n_clicks=3, structure="spleen")
    assert df["dice"].tolist() == [1.0, 1.0, 1.0] and df["nsd"].tolist() == [1.0, 1.0, 1.0]
    assert df["carried"].tolist() == [False, True, True] and df["latency_s"].iloc[1:].eq(0).all()
    assert predictor.stats["encoder_calls"] == enc  # same volume: the encoder cache was reused
    assert [o.name for o in predictor.objects][-2:] == ["liver", "spleen"]  # one object per target


def test_input_validation(predictor, scene):
    ct, ball, _ = scene
    with pytest.raises(ValueError, match="empty"):
        evaluate_interactive(predictor, ct, np.zeros_like(ball))
    with pytest.raises(ValueError, match="shape"):
        evaluate_interactive(predictor, ct, ball[:-1])
    with pytest.raises(ValueError, match="n_clicks"):
        evaluate_interactive(predictor, ct, ball, n_clicks=0)
    with pytest.raises(ValueError, match="first_click_depth"):
        evaluate_interactive(predictor, ct, ball, first_click_seed=1, first_click_depth=2)


def test_seeded_first_clicks_land_deep_inside_the_target_and_differ(predictor, scene):
    from scipy import ndimage
    ct, ball, _ = scene
    depth = ndimage.distance_transform_edt(ball)
    points = {}
    for seed in range(6):
        df = evaluate_interactive(predictor, ct, ball, n_clicks=1, first_click_seed=seed)
        points[seed] = tuple(df.loc[0, ["z", "y", "x"]])
        assert depth[points[seed]] >= 0.5 * depth.max()  # inside, at least half as deep as the deepest voxel
    again = evaluate_interactive(predictor, ct, ball, n_clicks=1, first_click_seed=3)
    assert tuple(again.loc[0, ["z", "y", "x"]]) == points[3]  # a seed is one session, repeatable
    assert len(set(points.values())) >= 4  # different seeds click in different places
    shallow = [evaluate_interactive(predictor, ct, ball, n_clicks=1, first_click_seed=seed, first_click_depth=0.0)
               .loc[0, ["z", "y", "x"]] for seed in range(12)]
    assert all(ball[tuple(p)] for p in shallow)  # depth 0: anywhere inside ...
    assert min(depth[tuple(p)] for p in shallow) < 0.5 * depth.max()  # ... nearer the edge too
    deepest = evaluate_interactive(predictor, ct, ball, n_clicks=1)
    assert depth[tuple(deepest.loc[0, ["z", "y", "x"]])] == depth.max()
    for bad in (1.5, True, "3"):
        with pytest.raises(TypeError, match="first_click_seed"):
            evaluate_interactive(predictor, ct, ball, n_clicks=1, first_click_seed=bad)


def test_sessions_of_one_structure_on_one_predictor(scene):
    """Another session of a structure (another first_click_seed) on the same predictor: its object takes a
    custom label id, the ontology's being taken, and it clicks as on a fresh predictor (the masks can differ
    where a click falls in a patch the earlier session encoded: it reuses that patch)."""
    ct, ball, _ = scene
    pred = Predictor(RegionModel(), device="cpu", growth_budget=1)
    runs = [evaluate_interactive(pred, ct, ball, n_clicks=2, structure="liver", first_click_seed=s) for s in (1, 2)]
    assert [(o.name, o.label_id) for o in pred.objects] == [("liver", 5), ("liver", 1000)]
    fresh = evaluate_interactive(Predictor(RegionModel(), device="cpu", growth_budget=1), ct, ball, n_clicks=2,
                                 structure="liver", first_click_seed=2)
    cols = ["click", "z", "y", "x", "positive"]
    pd.testing.assert_frame_equal(runs[1][cols].iloc[:1], fresh[cols].iloc[:1])
    assert (runs[1]["dice"] > 0.5).all() and runs[1]["structure"].eq("liver").all()
    # a user starting the same ontology object twice is told to select it or give it its own id
    with pytest.raises(ValueError, match=r"select_object\('liver'\).*|label_id=1001"):
        pred.new_object("liver")


def fake_results():
    rows = []
    for s, base in (("liver", 0.8), ("spleen", 0.6)):
        for case in ("a", "b"):
            for k in (1, 2, 3):
                rows.append(dict(dataset="d", case=case, structure=s, click=k, dice=min(1, base + 0.05 * k),
                                 nsd=base, latency_s=0.1, gt_voxels=100, gt_ml=50.0))
    return pd.DataFrame(rows)


def test_plots_return_figures():
    import matplotlib
    import matplotlib.pyplot as plt

    df = fake_results()
    fig = plot_dice_vs_clicks(df, by="structure")
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes[0].lines) == 2
    _, ax = plt.subplots()
    assert plot_dice_vs_clicks(df, by="dataset", ax=ax) is ax.figure
    assert len(plot_dice_vs_clicks(df, by="size_class", metric="nsd").axes[0].lines) == 1
    assert len(plot_dice_vs_clicks(df, by=None).axes[0].lines) == 1
    bars = plot_structure_bars(df, k=2)
    assert [t.get_text() for t in bars.axes[0].get_xticklabels()] == ["liver", "spleen"]
    with pytest.raises(ValueError, match="clicks"):
        plot_structure_bars(df, k=5)
    plt.close("all")


def test_new_plot_figures_are_not_left_open_in_pyplot_under_jupyter(tmp_path, monkeypatch):
    """The inline backend shows every figure pyplot still holds at the end of a cell, so a figure
    that is also the cell's value appeared twice; in a kernel ours are closed but still draw and
    save; in a script they stay open for plt.show()."""
    import sys

    import matplotlib.pyplot as plt

    plt.close("all")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    script_fig = plot_dice_vs_clicks(fake_results())
    assert plt.get_fignums() == [script_fig.number]
    plt.close("all")
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    figs = [plot_dice_vs_clicks(fake_results()), plot_structure_bars(fake_results(), k=2)]
    assert plt.get_fignums() == []
    for i, fig in enumerate(figs):
        fig.savefig(tmp_path / f"{i}.png")
        assert (tmp_path / f"{i}.png").stat().st_size > 5000


# ---------------------------------------------------------------- CLI


def write_case(folder, name, seed):
    """A 24x32x32 CT with two bright balls labelled liver (5) and spleen (1), ontology ids."""
    rng = np.random.default_rng(seed)
    hu = np.full((24, 32, 32), -1000, np.int16)
    hu[:, 2:-2, 2:-2] = rng.integers(-5, 5, (24, 28, 28), dtype=np.int16)
    lab = np.zeros(hu.shape, np.uint8)
    zz, yy, xx = np.indices(hu.shape)
    for value, cx in ((5, 8), (1, 24)):  # 7 voxels apart: the region model does not leak across
        ball = (zz - 12) ** 2 + (yy - 16) ** 2 + (xx - cx) ** 2 <= 16
        hu[ball], lab[ball] = 200, value
    for sub, arr in (("images", hu), ("labels", lab)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((1.5, 1.5, 1.5))
        sitk.WriteImage(img, str(folder / sub / f"{name}.nii.gz"))


@pytest.fixture
def region_loader(monkeypatch):
    calls = []

    def fake_load_model(name_or_path="nano", device="auto", pretrained=True):
        calls.append({"name": name_or_path, "device": device, "pretrained": pretrained})
        return RegionModel()

    monkeypatch.setattr(checkpoint, "load_model", fake_load_model)
    return calls


def test_cli_writes_rows_resumes_and_prints_summary(tmp_path, region_loader, capsys):
    root, out = tmp_path / "data", tmp_path / "res" / "results.csv"
    write_case(root, "case_a", 0)
    write_case(root, "case_b", 1)
    argv = ["--dataset", "folder", "--root", str(root), "--clicks", "2", "--out", str(out),
            "--device", "cpu", "--growth-budget", "1"]
    assert main(argv) == 0
    df = pd.read_csv(out, dtype={"case": str})
    assert list(df.columns) == list(CSV_COLUMNS)
    assert len(df) == 2 * 2 * 2  # cases x structures x clicks
    assert set(df["structure"]) == {"liver", "spleen"} and set(df["case"]) == {"case_a", "case_b"}
    assert df.groupby(["case", "structure"])["click"].apply(list).map(lambda c: c == [1, 2]).all()
    assert (df["dice"] > 0.9).all() and region_loader[0]["pretrained"] is True
    printed = capsys.readouterr().out
    assert "### By structure" in printed and "| liver |" in printed

    assert main(argv) == 0  # resume: everything is done, the model is not even loaded
    assert len(pd.read_csv(out)) == 8 and len(region_loader) == 1

    lines = out.read_text().splitlines(keepends=True)  # an interrupted write: the last target cut off
    out.write_text("".join(lines[:-1]))
    assert main(argv) == 0
    again = pd.read_csv(out, dtype={"case": str})
    assert len(again) == 8 and not again.duplicated(["case", "structure", "click"]).any()
    assert "dropped" in capsys.readouterr().err

    old = again.drop(columns=["patches"])  # a results file of the version before the patches column
    old[old["case"] != "case_b"].to_csv(out, index=False)  # case_b still to do
    assert main(argv) == 0
    mixed = pd.read_csv(out, dtype={"case": str})
    assert list(mixed.columns) == [c for c in CSV_COLUMNS if c != "patches"] + ["patches"]  # header rewritten
    assert len(mixed) == 8
    new_rows = mixed["case"] == "case_b"
    assert mixed.loc[~new_rows, "patches"].isna().all() and (mixed.loc[new_rows, "patches"] == 1).all()

    with pytest.raises(SystemExit):
        main(argv[:-2] + ["--clicks", "x"])
    assert main([*argv[:5], "3", *argv[6:]]) == 2  # other --clicks on the same file: refused
    assert "--clicks" in capsys.readouterr().err

    before = out.read_text()
    assert main(argv + ["--growth-budget", "2"]) == 2  # other click settings on the same file: refused
    assert "--growth-budget 1 (now 2)" in capsys.readouterr().err
    assert main(argv + ["--nsd-tolerance", "3"]) == 2
    assert "--nsd-tolerance 2.0 (now 3.0)" in capsys.readouterr().err and out.read_text() == before
    Path(str(out) + ".settings.json").unlink()  # a file of the version before the settings file: taken as is
    old = pd.read_csv(out, dtype={"case": str})
    old[old["case"] != "case_b"].to_csv(out, index=False)  # case_b still to do
    assert main(argv + ["--growth-budget", "2"]) == 0 and "no settings file" in capsys.readouterr().err
    assert main(argv) == 2  # ... and from then on held to the settings it was resumed with


def test_cli_sessions_draw_other_first_clicks_resume_and_refuse_another_depth(tmp_path, region_loader, capsys):
    root, out = tmp_path / "data", tmp_path / "s.csv"
    write_case(root, "case_a", 0)
    argv = ["--dataset", "folder", "--root", str(root), "--clicks", "2", "--out", str(out), "--device", "cpu",
            "--growth-budget", "1", "--sessions", "3", "--first-click-depth", "0"]
    assert main(argv) == 0
    df = pd.read_csv(out, dtype={"case": str})
    assert len(df) == 2 * 3 * 2  # structures x sessions x clicks
    assert (df["first_click_depth"] == 0).all()
    first = df[df["click"] == 1].set_index(["structure", "session"])[["z", "y", "x"]]
    for s in ("liver", "spleen"):
        pts = {tuple(first.loc[(s, k)]) for k in (1, 2, 3)}
        assert len(pts) == 3  # three sessions, three different first clicks
        assert tuple(first.loc[(s, 1)])[0] == 12  # session 1: the deepest point, the ball's centre slice
    printed = capsys.readouterr().out
    assert "| liver | 3 |" in printed  # the summary counts each session as a target

    argv4 = [a if a != "3" else "4" for a in argv]
    assert main(argv4) == 0  # raising --sessions adds only the new session
    more = pd.read_csv(out, dtype={"case": str})
    assert len(more) == 2 * 4 * 2 and sorted(more["session"].unique()) == [1, 2, 3, 4]
    assert more[more["session"] <= 3].reset_index(drop=True).equals(df)

    assert main([*argv4[:-1], "0.5"]) == 2  # another depth would mix sessions drawn differently: refused
    assert "--first-click-depth 0.0" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == 16
    assert main([*argv[:-3], "0", "--first-click-depth", "0"]) == 2
    assert "--sessions must be >= 1" in capsys.readouterr().err

    assert main(argv[:-4]) == 0  # one session draws no seeded click: any depth in the file is fine

    old = more[more["session"] == 1].drop(columns=["session", "first_click_depth"])  # a file from before sessions
    old.to_csv(out, index=False)
    assert main([*argv[:-4], "--sessions", "2"]) == 0
    mixed = pd.read_csv(out, dtype={"case": str})
    assert sorted(mixed.groupby("session").size().items()) == [(1, 4), (2, 4)]  # old rows read as session 1

    old.iloc[:-1].to_csv(out, index=False)  # an old file whose only case was cut off: a header is left
    assert main(argv[:-4]) == 0
    redone = pd.read_csv(out, dtype={"case": str})
    assert len(redone) == 4 and (redone["session"] == 1).all() and (redone["model"] == "nano").all()

    text = out.read_text()  # a write cut inside the last row, after its dice field: no final newline
    out.write_text(text[:text.rstrip("\n").rfind(",", 0, len(text) - 40)])
    assert main(argv[:-4]) == 0
    assert len(pd.read_csv(out)) == 4 and "dropped" in capsys.readouterr().err


def test_cli_structures_max_cases_and_random_weights_flag(tmp_path, region_loader):
    root, out = tmp_path / "data", tmp_path / "r.csv"
    write_case(root, "case_a", 0)
    write_case(root, "case_b", 1)
    argv = ["--dataset", "folder", "--root", str(root), "--clicks", "1", "--out", str(out), "--structures",
            "Spleen", "--max-cases", "1", "--random-weights", "--device", "cpu", "--growth-budget", "1"]
    assert main(argv) == 0
    df = pd.read_csv(out)
    assert df[["case", "structure", "click"]].values.tolist() == [["case_a", "spleen", 1]]
    assert region_loader[0]["pretrained"] is False and "random" in df["model"].iloc[0]


def test_cli_errors_are_clear(tmp_path, capsys):
    assert main(["--dataset", "flare22", "--root", str(tmp_path / "none"), "--out", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "imagesTr" in err
    assert main(["--dataset", "phantom", "--out", str(tmp_path / "r.csv")]) == 2
    assert "--seeds" in capsys.readouterr().err


def test_cli_phantom(tmp_path, region_loader):
    pytest.importorskip("ctsam3d_nb.phantom.build")
    out = tmp_path / "p.csv"
    assert main(["--dataset", "phantom", "--seeds", "900000", "--phantom-shape", "24", "32", "32",
                 "--phantom-spacing", "8", "8", "8", "--structures", "liver", "--clicks", "1",
                 "--out", str(out), "--device", "cpu", "--growth-budget", "1"]) == 0
    df = pd.read_csv(out, dtype={"case": str})
    assert df[["dataset", "case", "structure"]].values.tolist() == [["phantom", "900000", "liver"]]


@pytest.mark.realct
def test_protocol_on_the_bundled_real_ct(real_ct_dir, predictor):
    from ctsam3d_nb import load_ct, load_labels

    ct = load_ct(real_ct_dir / "example_ct_sm.nii.gz")
    labels = load_labels(real_ct_dir / "example_seg.nii.gz", like=ct)  # TotalSegmentator v2 ids = ontology ids
    kidney = labels == 3  # kidney_left
    df = evaluate_interactive(predictor, ct, kidney, n_clicks=2, structure="kidney_left")
    assert len(df) == 2 and df["dice"].between(0, 1).all() and (df["latency_s"] >= 0).all()
    assert kidney[df["z"].iloc[0], df["y"].iloc[0], df["x"].iloc[0]]


def test_cli_click_settings_parse(tmp_path, capsys):
    from ctsam3d_nb.evaluate import build_parser, main
    from ctsam3d_nb.settings import ClickSettings, from_arguments

    base = ["--dataset", "phantom", "--seeds", "900000", "--out", "x.csv"]
    args = build_parser().parse_args(base + ["--mode", "grow", "--cpp-peak-threshold", "0.5", "--growth-guard",
                                             "--growth-budget", "9"])
    assert from_arguments(args) == ClickSettings(mode="grow", cpp_heatmaps=True, cpp_peak_threshold=0.5,
                                                 growth_guard=True, growth_budget=9)
    assert from_arguments(build_parser().parse_args(base)) == ClickSettings()  # the Predictor's own defaults
    out = str(tmp_path / "r.csv")
    assert main(base[:4] + ["--out", out, "--no-cpp-heatmaps", "--cpp-peak-threshold", "0.5"]) == 2
    assert "cpp_heatmaps=True" in capsys.readouterr().err
    assert main(base[:4] + ["--out", out, "--max-cases", "0"]) == 2
    assert "--max-cases must be >= 1" in capsys.readouterr().err and not (tmp_path / "r.csv").exists()
