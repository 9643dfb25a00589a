"""Inputs built in a bad-input case's folder, shared by ``test_bad_input_catalogue2.py`` and
``test_bad_input_cli.py``: small SimpleITK images and files, a copy of the real DICOM series, and
training-run folders (a run's own, the user's own, a run whose last.pt holds NaN weights)."""
from __future__ import annotations

import shutil

import pytest
import SimpleITK as sitk
import torch

import ctsam3d_nb as cs
from ctsam3d_nb.modeling import build_model
from ctsam3d_nb.training import TrainConfig
from conftest import REAL_CT, synthetic_hu

DICOM = REAL_CT / "dicom_series"


# ---------------------------------------------------------------- images and files
def _image(arr=None, spacing=(1.5, 1.5, 1.5), origin=(0.0, 0.0, 0.0), direction=None):
    img = sitk.GetImageFromArray(synthetic_hu() if arr is None else arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    return img


def _write(tmp, name, img):
    sitk.WriteImage(img, str(tmp / name))
    return tmp / name


def _ct(tmp):
    return cs.load_ct(_write(tmp, "ct.nii.gz", _image()))


def _labels(tmp, arr, name="lab.nrrd"):
    return _write(tmp, name, _image(arr))


def _series(tmp, name="series"):
    """A copy of the real DICOM series (20 slices, 2 mm apart) in the case's folder; skips without it."""
    if not DICOM.is_dir():
        pytest.skip(f"real DICOM series not found at {DICOM}")
    dst = tmp / name
    dst.mkdir()
    files = sorted(DICOM.iterdir())
    for f in files:
        shutil.copy(f, dst / f.name)
    return dst, [dst / f.name for f in files]


# ---------------------------------------------------------------- training-run folders
def _run_folder(tmp, name="run", model="nano", last=True, extra=()):
    """A training run's folder: its config.json (a TrainConfig), metrics, maybe last.pt, plus ``extra`` files."""
    run = tmp / name
    run.mkdir()
    TrainConfig(model=model, out_dir=str(run)).save(run / "config.json")
    (run / "metrics.jsonl").write_text('{"step": 10, "loss": 0.5}\n')
    if last:
        (run / "last.pt").write_bytes(b"training state")
    for f in extra:
        (run / f).write_text("mine")
    return run


def _users_folder(tmp):
    """A folder of the user's own: an app's config.json and a model.pt that have nothing to do with training."""
    mine = tmp / "mine"
    mine.mkdir()
    (mine / "config.json").write_text('{"theme": "dark", "model": "my segmentation net"}')
    (mine / "model.pt").write_bytes(b"my own model, days of work")
    return mine


def _nan_last(tmp):
    run = _run_folder(tmp, last=False)
    model = build_model("nano")
    state = model.state_dict()
    k = sorted(state)[0]
    state[k] = torch.full_like(state[k], float("nan"))
    torch.save({"model": state, "opt": {}, "step": 300, "config": {"model": "nano"}}, run / "last.pt")
    return run
