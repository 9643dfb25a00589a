"""Bad input, second catalogue (issue 16), part 2: the command-line tools, and what is still accepted.

The CLI cases follow the rules of ``test_bad_input_catalogue.py``: every case builds its inputs in a
fresh folder (the working directory of the call), snapshots it, runs the tool's ``main`` and checks
one ``error:`` line on stderr naming the problem, exit status 2, no traceback, and that no file in
the folder was created, changed or removed. ``python -m ctsam3d_nb.train`` is also run as a process.

The rest pins down the other side of the decisions in ``test_bad_input_catalogue2.py``:

* ``train`` may write into a new or empty folder, a run's own folder (replaced by a new run, or
  resumed, leaving the user's notes alone), a folder holding only a launch script and its log, and
  any folder with --overwrite; --overwrite is never saved with the run;
* label ids up to 65535 load exactly; the real DICOM series still loads, without ITK warnings;
* a checkpoint that is not there is still a FileNotFoundError (as well as a CheckpointError).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import ctsam3d_nb as cs
from ctsam3d_nb.checkpoint import CheckpointError, load_model
from ctsam3d_nb.modeling import build_model
from ctsam3d_nb.training import TrainConfig
from ctsam3d_nb.training.config import check_out_dir
from bad_input_helpers import _ct, _labels, _nan_last, _run_folder, _series, _users_folder
from test_bad_input_catalogue import _snapshot


# ---------------------------------------------------------------- command-line tools
def _train_cli(*argv):
    from ctsam3d_nb.train import main

    return lambda: main([*argv])


def _evaluate_cli(*argv):
    from ctsam3d_nb.evaluate import main

    return lambda: main([*argv])


def _export_cli(*argv):
    from ctsam3d_nb.training.export import main

    return lambda: main([str(a) for a in argv])


def _demo_cli(*argv):
    from ctsam3d_nb.demo import main

    return lambda: main([str(a) for a in argv])


def _cut_last(t):
    run = _run_folder(t, last=False)
    torch.save({"model": build_model("nano").state_dict(), "opt": {}, "step": 3, "config": {"model": "nano"}},
               run / "last.pt")
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:2000])
    return run


def _good_last(t):
    run = _run_folder(t, last=False)
    torch.save({"model": build_model("nano").state_dict(), "opt": {}, "step": 3, "config": {"model": "nano"}},
               run / "last.pt")
    return run


def _last_with(t, step=3, **config):
    """A run's folder whose last.pt (step ``step``) was made with ``config`` (the rest TrainConfig's defaults)."""
    run = _run_folder(t, last=False)
    torch.save({"model": build_model("nano").state_dict(), "opt": {}, "step": step,
                "config": {"model": "nano", **config}}, run / "last.pt")
    return run


def _no_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is no user error here")


_PHANTOM = ["--dataset", "phantom", "--seeds", "900000", "--phantom-shape", "24", "32", "32", "--clicks", "1"]

# (id, setup(tmp) -> thunk returning the exit status, message regex of the one error line)
CLI_CASES = [
    ("train-batch-size-0", lambda t: _train_cli("--batch-size", "0", "--out-dir", str(t / "run")),
     r"TrainConfig\.batch_size = 0: must be a whole number >= 1"),
    ("train-steps-negative", lambda t: _train_cli("--steps", "-5", "--out-dir", str(t / "run")),
     r"TrainConfig\.steps = -5: must be a whole number >= 1"),
    ("train-lr-zero", lambda t: _train_cli("--lr", "0", "--out-dir", str(t / "run")), r"TrainConfig\.lr = 0\.0"),
    ("train-config-missing", lambda t: _train_cli("--config", str(t / "none.json")), "none.json"),
    ("train-config-not-json",
     lambda t: (t / "c.json").write_text("{steps: 3") and _train_cli("--config", str(t / "c.json")),
     "Expecting property name"),
    ("train-into-users-folder", lambda t: _users_folder(t) and _train_cli("--out-dir", str(t / "mine")),
     r"not a training run's folder.*--overwrite"),
    ("train-unknown-dataset", lambda t: _train_cli("--out-dir", str(t / "run"), "--dataset", "nosuch",
                                                   "--dataset-root", str(t)), "unknown dataset 'nosuch'"),
    ("train-missing-folder", lambda t: _train_cli("--out-dir", str(t / "run"), "--folder", str(t / "nowhere")),
     "nowhere"),
    ("train-no-data", lambda t: _train_cli("--out-dir", str(t / "run"), "--phantom-weight", "0"), "no training data"),
    # session 30 review: --device cuda crashed on torch.cuda.set_device (no index), with or without a GPU
    ("train-cuda-without-gpu", lambda t: _no_cuda() or _train_cli("--device", "cuda", "--out-dir", str(t / "run")),
     "no CUDA GPU here"),
    ("train-lr-inf", lambda t: _train_cli("--lr", "inf", "--out-dir", str(t / "run")),
     r"TrainConfig\.lr = inf: must be a finite number > 0"),
    # resuming with other settings (a forgotten --preset) went on as another run and rewrote config.json
    ("train-resume-other-settings", lambda t: _train_cli("--out-dir", str(_last_with(t, lr=3e-4, ema_decay=0.999))),
     r"made with other settings than these \(ema_decay: 0\.999 -> 0\.0; lr: 0\.0003 -> 0\.001\).*--allow-changes"),
    ("train-resume-nothing-left", lambda t: _train_cli("--out-dir", str(_last_with(t, step=3)), "--steps", "3"),
     r"is at step 3, and --steps 3 leaves nothing to train.*training\.export"),
    ("train-resume-other-model-in-last-pt", lambda t: _train_cli("--out-dir", str(_last_with(t, model="tiny"))),
     r"holds a 'tiny' run; resuming it as a 'nano' model"),
    # a refused start (a mistyped --init) rewrote the run's config.json before it failed
    ("train-bad-init-keeps-the-run", lambda t: _train_cli("--out-dir", str(_last_with(t)), "--no-resume", "--model",
                                                          "tiny", "--init", str(t / "typo.pt")), "typo.pt"),
    ("evaluate-out-is-a-folder", lambda t: (t / "res").mkdir() or _evaluate_cli(*_PHANTOM, "--out", str(t / "res")),
     "res"),
    # session 30 review: --version/--convention elsewhere were raw TypeErrors, --seeds elsewhere was ignored
    ("evaluate-version-on-phantom", lambda t: _evaluate_cli(*_PHANTOM, "--out", str(t / "r.csv"), "--version", "v2"),
     "--version applies to --dataset totalsegmentator only, not to phantom"),
    ("evaluate-seeds-on-flare22", lambda t: _evaluate_cli("--dataset", "flare22", "--root", str(t), "--seeds", "1",
                                                          "--out", str(t / "r.csv")),
     "--seeds applies to --dataset phantom only"),
    # session 32: --phantom-shape/--phantom-spacing were ignored on other datasets
    ("evaluate-phantom-shape-on-flare22", lambda t: _evaluate_cli("--dataset", "flare22", "--root", str(t),
                                                                  "--phantom-shape", "8", "8", "8",
                                                                  "--out", str(t / "r.csv")),
     "--phantom-shape applies to --dataset phantom only"),
    # resuming a file of another model's rows reported them as this model's results
    ("evaluate-resume-other-model", lambda t: (t / "r.csv").write_text(
        "dataset,case,structure,session,click,dice,model\nphantom,900000,liver,1,1,0.5,nano (random weights)\n")
     and _evaluate_cli(*_PHANTOM, "--out", str(t / "r.csv"), "--model", "nano"),
     r"holds results of the model 'nano \(random weights\)', not 'nano'"),
    ("evaluate-max-cases-0", lambda t: _evaluate_cli(*_PHANTOM, "--out", str(t / "r.csv"), "--max-cases", "0"),
     "--max-cases must be >= 1"),
    ("evaluate-bad-device", lambda t: _evaluate_cli(*_PHANTOM, "--out", str(t / "r.csv"), "--random-weights",
                                                    "--device", "gpu"), "device='gpu' is not a device"),
    ("evaluate-model-folder", lambda t: (t / "w").mkdir() or _evaluate_cli(*_PHANTOM, "--out", str(t / "r.csv"),
                                                                          "--model", str(t / "w")), "is a folder"),
    ("export-no-run", lambda t: _export_cli(t / "nope", t / "m.pt"), r"run folder '.*nope' does not exist"),
    ("export-no-last", lambda t: _export_cli(_run_folder(t, last=False), t / "m.pt"), "has no last.pt"),
    ("export-truncated-last", lambda t: _export_cli(_cut_last(t), t / "m.pt"), r"last\.pt' is not readable.*resume"),
    ("export-not-a-training-state", lambda t: _export_cli(_run_folder(t), t / "m.pt"),
     r"last\.pt' is not a checkpoint file: it begins with b'training"),
    ("export-nan-weights", lambda t: _export_cli(_nan_last(t), t / "m.pt"),
     r"non-finite weights.*diverged at or before step 300"),
    ("export-output-exists", lambda t: (t / "m.pt").write_bytes(b"keep") and _export_cli(_good_last(t), t / "m.pt"),
     r"m\.pt' exists; pass --overwrite"),
    ("export-onto-run-state", lambda t: (lambda r: _export_cli(r, r / "last.pt", "--overwrite"))(_good_last(t)),
     r"refusing to write .*the run's own last\.pt"),
    ("export-bad-metadata", lambda t: (t / "meta.json").write_text("[1, 2]") and _export_cli(
        _good_last(t), t / "m.pt", "--metadata", t / "meta.json"), "must hold one JSON object"),
    ("demo-unknown-structure", lambda t: _demo_cli("--structure", "livr", "--out", t / "d.png"), "livr"),
    ("demo-out-folder-missing", lambda t: _demo_cli("--out", t / "nowhere" / "d.png"), "does not exist"),
    ("demo-out-not-png", lambda t: _demo_cli("--out", t / "d.pdf"), r"must end in \.png"),
    ("demo-out-is-a-folder", lambda t: (t / "d.png").mkdir() or _demo_cli("--out", t / "d.png"), "is a folder"),
    ("demo-out-exists", lambda t: (t / "d.png").write_bytes(b"mine") and _demo_cli("--out", t / "d.png"),
     "exists; pass --overwrite"),
]


def test_cli_catalogue_is_large_enough():
    assert len(CLI_CASES) >= 20 and len({c[0] for c in CLI_CASES}) == len(CLI_CASES)


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_user_error_is_one_error_line_exit_2_and_writes_nothing(case, tmp_path, capsys, monkeypatch):
    _, setup, match = case
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # a CLI that wrongly wrote to the working directory would show in the snapshot
    run = setup(work)
    capsys.readouterr()
    before = _snapshot(work)
    assert run() == 2
    err = capsys.readouterr().err
    lines = [l for l in err.splitlines() if "error:" in l]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(match, err, re.S), err
    assert "Traceback" not in err
    assert _snapshot(work) == before


def test_train_cli_nonsense_numbers_exit_2_as_a_process(tmp_path):
    """`python -m ctsam3d_nb.train --steps -5` (and --batch-size 0): one error line, status 2, nothing written."""
    for flag, value in (("--steps", "-5"), ("--batch-size", "0")):
        r = subprocess.run([sys.executable, "-m", "ctsam3d_nb.train", flag, value, "--out-dir", str(tmp_path / "run")],
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert (r.stderr.strip().splitlines() == [r.stderr.strip()]
                and r.stderr.startswith("error: TrainConfig.")), r.stderr
        assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- what is still accepted
def test_out_dir_rules_allow_new_empty_run_resume_and_overwrite(tmp_path):
    cfg = lambda d, **kw: TrainConfig(out_dir=str(d), **kw)  # noqa: E731
    check_out_dir(cfg(tmp_path / "new"))  # does not exist yet
    (tmp_path / "empty").mkdir()
    check_out_dir(cfg(tmp_path / "empty"))
    run = _run_folder(tmp_path, last=False)
    (run / ".model.pt.abc_12.tmp.pt").write_bytes(b"")  # a save cut off by a kill: still the run's
    check_out_dir(cfg(run, resume=False))  # only a run's files: replaced by a new run
    resumed = _run_folder(tmp_path, "resumed", extra=("notes.txt",))
    check_out_dir(cfg(resumed))  # resuming leaves notes.txt alone
    with pytest.raises(FileExistsError, match="notes.txt"):
        check_out_dir(cfg(resumed, resume=False))  # a fresh run would not be resuming
    check_out_dir(cfg(_users_folder(tmp_path), overwrite=True))  # the user said so
    launched = tmp_path / "launched"  # a launch script and its log, written before the run starts
    launched.mkdir()
    (launched / "cmd.sh").write_text("#!/bin/bash\n")
    (launched / "log.txt").write_text("")
    check_out_dir(cfg(launched))
    (launched / "model.pt").write_bytes(b"mine")  # but a model.pt there is the user's
    with pytest.raises(FileExistsError, match="model.pt"):
        check_out_dir(cfg(launched))


def test_overwrite_is_never_saved_with_the_run(tmp_path):
    TrainConfig(overwrite=True).save(tmp_path / "config.json")
    assert "overwrite" not in json.loads((tmp_path / "config.json").read_text())
    assert TrainConfig.load(tmp_path / "config.json").overwrite is False
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]  # written atomically, no temp left


def test_label_values_up_to_uint16_load_exactly(tmp_path):
    ct = _ct(tmp_path)
    arr = np.zeros(ct.shape, np.int64)
    arr[0, 0, :3] = (5, 300, 65535)
    out = cs.load_labels(_labels(tmp_path, arr), like=ct)
    assert out.dtype == np.uint16 and out[0, 0, :3].tolist() == [5, 300, 65535]
    arr[0, 0, :3] = (5, 17, 0)
    out = cs.load_labels(_labels(tmp_path, arr.astype(np.float32), "f.nrrd"), like=ct)
    assert out.dtype == np.uint8 and out[0, 0, :3].tolist() == [5, 17, 0]


def test_the_real_dicom_series_still_loads_without_itk_warnings(tmp_path, capfd):
    folder, _ = _series(tmp_path)
    ct = cs.load_ct(folder)
    assert ct.shape == (20, 512, 512) and abs(ct.spacing[0] - 2.0) < 1e-6
    assert "Non uniform sampling" not in capfd.readouterr().err


def test_cli_checkpoint_not_found_is_still_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a model name"):
        load_model(tmp_path / "none.pt")
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "none.pt")
