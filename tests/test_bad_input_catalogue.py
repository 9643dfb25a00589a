"""A catalogue of bad input across the public API: each gives a clear error and writes nothing.

Every case builds its inputs in a fresh folder, snapshots the folder, makes the bad
call, and checks (1) the exception type, (2) that the message names the problem,
(3) that no file in the folder was created, changed or removed.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

import ctsam3d_nb as cs
from ctsam3d_nb.anatomy import by_name, convert_labels
from ctsam3d_nb.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ctsam3d_nb.io import CTLoadError, mask_to_image
from ctsam3d_nb.modeling import build_model
from ctsam3d_nb.evaluation.datasets import open_dataset
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.training import TrainConfig
from conftest import synthetic_hu
from region_model import RegionModel


def _ct(tmp, name="ct.nii.gz", arr=None, **kw):
    img = sitk.GetImageFromArray(synthetic_hu() if arr is None else arr, **kw)
    img.SetSpacing((1.5, 1.5, 1.5))
    sitk.WriteImage(img, str(tmp / name))
    return tmp / name


def _loaded(tmp):
    return cs.load_ct(_ct(tmp))


def _labels(tmp, arr=None, spacing=(1.5, 1.5, 1.5)):
    img = sitk.GetImageFromArray(np.zeros(synthetic_hu().shape, np.uint8) if arr is None else arr)
    img.SetSpacing(spacing)
    sitk.WriteImage(img, str(tmp / "lab.nii.gz"))
    return tmp / "lab.nii.gz"


def _pred(tmp):
    return Predictor(RegionModel()).set_volume(_loaded(tmp))


def _ckpt(tmp, mutate):
    torch.manual_seed(0)
    path = save_checkpoint(build_model("nano"), tmp / "m.pt")
    mutate(path)
    return path


def _tamper(path):
    obj = torch.load(path, weights_only=True)
    k = next(iter(obj["state_dict"]))
    obj["state_dict"][k] = obj["state_dict"][k] * 2
    torch.save(obj, path)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def _session(tmp, **change):
    pred = _pred(tmp)
    pred.click((6, 5, 4))
    s = json.loads(json.dumps(pred.session))
    s.update(change)
    return s


# (id, setup(tmp) -> thunk, exception, message regex)
CASES = [
    ("ct-missing", lambda t: lambda: cs.load_ct(t / "nope.nii.gz"), FileNotFoundError, "not found"),
    ("ct-empty-path", lambda t: lambda: cs.load_ct(""), CTLoadError, "no path"),
    ("ct-not-an-image", lambda t: (t / "x.nrrd").write_text("<html>") and (lambda: cs.load_ct(t / "x.nrrd")),
     CTLoadError, "not a readable image"),
    ("ct-wrong-suffix", lambda t: (t / "x.txt").write_text("1") and (lambda: cs.load_ct(t / "x.txt")),
     CTLoadError, "suffix"),
    ("ct-truncated-gzip", lambda t: (lambda p: p.write_bytes(p.read_bytes()[:300]) and (lambda: cs.load_ct(p)))(_ct(t)),
     CTLoadError, "truncated"),
    ("ct-2d", lambda t: (lambda p: lambda: cs.load_ct(p))(_ct(t, arr=np.zeros((9, 9), np.int16))),
     CTLoadError, "2D"),
    ("ct-vector", lambda t: (lambda p: lambda: cs.load_ct(p))(
        _ct(t, "v.nrrd", np.zeros((3, 4, 5, 3), np.int16), isVector=True)),
     CTLoadError, "vector"),
    ("ct-single-slice", lambda t: (lambda p: lambda: cs.load_ct(p))(_ct(t, arr=np.zeros((1, 9, 9), np.int16))),
     CTLoadError, "single slice"),
    ("ct-nan", lambda t: (lambda p: lambda: cs.load_ct(p))(_ct(t, "n.mha", np.full((3, 4, 5), np.nan, np.float32))),
     CTLoadError, "non-finite"),
    ("dicom-empty-dir", lambda t: (t / "d").mkdir() or (lambda: cs.load_ct(t / "d")), CTLoadError, "no DICOM"),
    ("labels-other-spacing", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _loaded(t), _labels(t, spacing=(1, 1, 1))),
     CTLoadError, "voxel grid"),
    ("labels-other-size", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _loaded(t), _labels(t, np.zeros((4, 4, 4), np.uint8))),
     CTLoadError, "voxel grid"),
    ("labels-float", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _loaded(t), _labels(t, np.full(synthetic_hu().shape, 0.5, np.float32))),
     CTLoadError, "non-integer"),
    ("labels-negative", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _loaded(t), _labels(t, np.full(synthetic_hu().shape, -1, np.int16))),
     CTLoadError, "negative"),
    ("labels-like-not-ct", lambda t: (lambda p: lambda: cs.load_labels(p, like=np.zeros(3)))(_labels(t)),
     TypeError, "CTVolume"),
    ("labels-missing", lambda t: (lambda ct: lambda: cs.load_labels(t / "nope_seg.nii.gz", like=ct))(_loaded(t)),
     FileNotFoundError, "label map path not found"),
    ("ct-array-no-spacing", lambda t: lambda: cs.load_ct(synthetic_hu()), TypeError, r"spacing=\(.*affine="),
    ("ct-array-affine-and-spacing", lambda t: lambda: cs.load_ct(synthetic_hu(), spacing=(1, 1, 1), affine=np.eye(4)),
     TypeError, "not both"),
    ("ct-array-sheared-affine", lambda t: lambda: cs.load_ct(
        synthetic_hu(), affine=[[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
     ValueError, "sheared"),
    ("ct-int", lambda t: lambda: cs.load_ct(7), TypeError, "accepts a path .*SimpleITK.Image.*numpy array"),
    ("ct-list", lambda t: lambda: cs.load_ct([[[1, 2]]]), TypeError, "accepts a path"),
    ("ct-path-with-spacing", lambda t: (lambda p: lambda: cs.load_ct(p, spacing=(1, 1, 1)))(_ct(t)),
     TypeError, "own geometry"),
    ("array-no-spacing", lambda t: lambda: cs.CTVolume.from_array(np.zeros((4, 4, 4))), TypeError, "needs spacing="),
    ("array-2d", lambda t: lambda: cs.CTVolume.from_array(np.zeros((4, 4)), spacing=(1, 1, 1)), ValueError, "3D"),
    ("array-bool", lambda t: lambda: cs.CTVolume.from_array(np.zeros((4, 4, 4), bool), spacing=(1, 1, 1)),
     TypeError, "boolean"),
    ("array-zero-spacing", lambda t: lambda: cs.CTVolume.from_array(np.zeros((4, 4, 4)), spacing=(1, 0, 1)),
     ValueError, "spacing"),
    ("array-bad-direction", lambda t: lambda: cs.CTVolume.from_array(
        np.zeros((4, 4, 4)), spacing=(1, 1, 1), direction=np.ones(9)),
     ValueError, "orthonormal"),
    ("click-length", lambda t: (lambda p: lambda: p.click((1, 2)))(_pred(t)), ValueError, "3 coordinates"),
    ("click-nan", lambda t: (lambda p: lambda: p.click((np.nan, 1, 1)))(_pred(t)), ValueError, "finite"),
    ("click-outside", lambda t: (lambda p: lambda: p.click((99, 1, 1)))(_pred(t)), ValueError, "outside the volume"),
    ("click-string", lambda t: (lambda p: lambda: p.click("1,2,3"))(_pred(t)), TypeError, "voxel index"),
    ("click-no-volume", lambda t: lambda: Predictor(RegionModel()).click((1, 1, 1)), RuntimeError, "set_volume"),
    ("set-volume-array", lambda t: lambda: Predictor(RegionModel()).set_volume(np.zeros((4, 4, 4))),
     TypeError, "CTVolume"),
    ("object-bad-id", lambda t: (lambda p: lambda: p.new_object("x", label_id=70000))(_pred(t)),
     ValueError, "label_id"),
    ("export-shape", lambda t: (lambda ct: lambda: cs.save_mask(
        np.zeros((2, 2, 2), bool), like=ct, path=t / "m.nii.gz"))(_loaded(t)),
     ValueError, "shape"),
    ("export-float", lambda t: (lambda ct: lambda: cs.save_mask(
        np.zeros(ct.shape, np.float32), like=ct, path=t / "m.nii.gz"))(_loaded(t)),
     TypeError, "dtype"),
    ("export-exists", lambda t: (lambda ct: (t / "m.nii.gz").write_bytes(b"keep") and (lambda: cs.save_mask(
        np.zeros(ct.shape, bool), like=ct, path=t / "m.nii.gz")))(_loaded(t)),
     FileExistsError, "overwrite=True"),
    ("export-onto-input", lambda t: (lambda ct: lambda: cs.save_mask(
        np.zeros(ct.shape, bool), like=ct, path=t / "ct.nii.gz", overwrite=True))(_loaded(t)),
     ValueError, "input CT"),
    ("mask-to-image-shape",
     lambda t: (lambda ct: lambda: mask_to_image(np.zeros((2, 2, 2), bool), like=ct))(_loaded(t)),
     ValueError, "shape"),
    ("export-suffix", lambda t: (lambda ct: lambda: cs.save_mask(
        np.zeros(ct.shape, bool), like=ct, path=t / "m.png"))(_loaded(t)),
     ValueError, "suffix"),
    ("export-dicom-suffix", lambda t: (lambda ct: lambda: cs.save_mask(
        np.zeros(ct.shape, bool), like=ct, path=t / "m.dcm"))(_loaded(t)),
     ValueError, r"from its suffix.*save_dicom_seg\(label_map, ct, path\)"),
    ("ckpt-pickled-code", lambda t: torch.save({"x": _Evil()}, t / "e.pt") or (lambda: load_checkpoint(t / "e.pt")),
     CheckpointError, "pickled"),
    ("ckpt-tampered", lambda t: (lambda p: lambda: load_checkpoint(p))(_ckpt(t, _tamper)), CheckpointError, "hash"),
    ("ckpt-truncated", lambda t: (lambda p: lambda: load_checkpoint(p))(
        _ckpt(t, lambda p: p.write_bytes(p.read_bytes()[:500]))),
     CheckpointError, "truncated"),
    ("model-unknown-name", lambda t: lambda: cs.load_model("gigantic"), FileNotFoundError, "neither a model name"),
    ("config-unknown-field",
     lambda t: (t / "c.json").write_text('{"stepz": 1}') and (lambda: TrainConfig.load(t / "c.json")),
     ValueError, "stepz"),
    ("build-unknown-config", lambda t: lambda: build_model("huge"), KeyError, "valid names"),
    ("session-not-a-log",
     lambda t: (lambda ct: lambda: Predictor.replay({"events": []}, ct, model=RegionModel()))(_loaded(t)),
     ValueError, "not a ctsam3d_nb session"),
    ("session-version", lambda t: (lambda s, ct: lambda: Predictor.replay(s, ct, model=RegionModel()))(
        _session(t, version=99), _loaded(t)),
     ValueError, "version"),
    ("session-bad-op", lambda t: (lambda s, ct: lambda: Predictor.replay(s, ct, model=RegionModel()))(
        _session(t, events=[{"op": "explode"}]), _loaded(t)),
     ValueError, "unknown op"),
    ("session-restore-missing",
     lambda t: (lambda ct: lambda: Predictor.restore(t / "none", ct, model=RegionModel()))(_loaded(t)),
     FileNotFoundError, "no autosaved"),
    ("anatomy-unknown-name", lambda t: lambda: by_name("livr"), KeyError, "liver"),
    ("labels-unknown-values", lambda t: lambda: convert_labels(np.array([0, 1, 99]), "flare22"), ValueError, "99"),
    ("dataset-wrong-root", lambda t: lambda: open_dataset("flare22", t / "nowhere").cases(),
     FileNotFoundError, "nowhere"),
]


def _snapshot(folder):
    return {p.relative_to(folder): (p.stat().st_size, p.stat().st_mtime_ns, p.read_bytes() if p.is_file() else None)
            for p in folder.rglob("*")}


def test_catalogue_is_large_enough():
    assert len(CASES) >= 25 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_clear_error_and_writes_nothing(case, tmp_path):
    run_case(case, tmp_path)


def run_case(case, tmp_path):
    """One catalogue case: the error type and message, and nothing written in the work folder."""
    _, setup, exc, match = case
    work = tmp_path / "work"
    work.mkdir()
    thunk = setup(work)
    before = _snapshot(work)
    with pytest.raises(exc, match=match):
        thunk()
    assert _snapshot(work) == before
