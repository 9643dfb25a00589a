"""Bad input, second catalogue (issue 16): input that is *almost* right.

Same rules as ``test_bad_input_catalogue.py``: every case builds its inputs in a fresh folder,
snapshots it, makes the bad call, and checks (1) the exception type, (2) that the message names
the problem (and, where there is one, the file and the fix), (3) that no file in the folder was
created, changed or removed. The command-line tools, and what is still accepted, are in
``test_bad_input_cli.py``; the inputs both build are in ``bad_input_helpers.py``.

Decisions these cases pin down:

* a DICOM series with a missing slice, a duplicate slice position, varying slice spacing, mixed
  orientations or sheared slices (gantry tilt) is an **error** (CTLoadError naming the positions,
  files and fix), never loaded with one averaged spacing and never resampled behind the user's back;
* sheared (non-orthogonal) directions, non-finite origin/spacing and complex voxels are refused for
  files, SimpleITK images and arrays;
* label ids are whole numbers in 0..65535: an int64 2**32 + 5 is refused, never wrapped to 5;
* every checkpoint failure is a CheckpointError naming the file and the fix; NaN/inf weights are refused;
* ``train`` never writes into a folder holding files a run did not write, unless resuming or --overwrite.
"""
from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest
import torch

import ctsam3d_nb as cs
from ctsam3d_nb.anatomy import convert_labels
from ctsam3d_nb.checkpoint import (CheckpointError, CheckpointNotFoundError, load_checkpoint, load_model,
                                   save_checkpoint, weights_sha256)
from ctsam3d_nb.io import CTLoadError, mask_to_image
from ctsam3d_nb.modeling import build_model
from ctsam3d_nb.render import canonical_view
from ctsam3d_nb.training import TrainConfig, train
from conftest import synthetic_hu
from bad_input_helpers import _ct, _image, _labels, _nan_last, _run_folder, _series, _users_folder, _write
from test_bad_input_catalogue import run_case

SHEAR = (1.0, 0.5, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # index axis y leans into x: not orthogonal


# ---------------------------------------------------------------- helpers: inputs built in the case's folder
def _sheared_nifti(tmp):
    """A NIfTI whose sform is sheared (as nibabel can write); its qform stays orthogonal."""
    path = _write(tmp, "sheared.nii", _image())
    b = bytearray(path.read_bytes())
    srow_x = list(struct.unpack("<4f", b[280:296]))
    srow_x[1] = -0.75  # x now depends on the j index: a sheared voxel grid
    b[280:296] = struct.pack("<4f", *srow_x)
    path.write_bytes(bytes(b))
    return path


def _nan_offset_mha(tmp, name="nan.mha", arr=None):
    """An .mha whose text header says Offset = 0 nan 0 (ITK alone reads it as 0)."""
    path = _write(tmp, name, _image(arr))
    b = path.read_bytes()
    i = b.index(b"Offset = ")
    j = b.index(b"\n", i)
    path.write_bytes(b[:i] + b"Offset = 0 nan 0" + b[j:])
    return path


def _patch_ds(path, element: bytes, change):
    """Rewrite one DS (decimal string) element of an explicit-VR little-endian DICOM file in place.

    ``element`` is the tag as bytes (e.g. ImagePositionPatient (0020,0032) = b"\\x20\\x00\\x32\\x00");
    ``change`` maps the list of numbers to the new list. The value keeps its length (space padded),
    so nothing else in the file moves.
    """
    b = bytearray(path.read_bytes())
    i = b.index(element + b"DS")
    n = struct.unpack("<H", b[i + 6:i + 8])[0]
    old = [float(v) for v in b[i + 8:i + 8 + n].decode().strip().split("\\")]
    new = "\\".join(f"{v:.10g}" for v in change(old)).encode()
    assert len(new) <= n, (new, n)
    b[i + 8:i + 8 + n] = new.ljust(n, b" ")
    path.write_bytes(bytes(b))


IPP, IOP = b"\x20\x00\x32\x00", b"\x20\x00\x37\x00"


def _series_missing_slice(t):
    folder, files = _series(t)
    files[7].unlink()  # z = -780.5: the gap between -778.5 and -782.5 is 4 mm
    return folder


def _series_copied_slice(t):
    folder, files = _series(t)
    shutil.copy(files[5], folder / "copy_of_slice_6")
    return folder


def _series_duplicate_position(t):
    folder, files = _series(t)
    _patch_ds(files[6], IPP, lambda p: [p[0], p[1], p[2] + 2])  # onto slice 5's position, -776.5
    return folder


def _series_varying_spacing(t):
    folder, files = _series(t)
    for i, f in enumerate(files[11:], 1):  # 2 mm apart up to slice 11, then 3 mm
        _patch_ds(f, IPP, lambda p, i=i: [p[0], p[1], p[2] - i])
    return folder


def _series_gantry_tilt(t):
    folder, files = _series(t)
    for i, f in enumerate(files):  # each slice 0.5 mm further along y: a tilted (sheared) stack
        _patch_ds(f, IPP, lambda p, i=i: [p[0], p[1] + 0.5 * i, p[2]])
    return folder


def _series_mixed_orientation(t):
    folder, files = _series(t)
    _patch_ds(files[4], IOP, lambda o: [1, 0, 0, 0, 0, -1])  # one coronal slice among axial ones
    return folder


def _series_bad_orientation(t):
    folder, files = _series(t)
    for f in files:
        _patch_ds(f, IOP, lambda o: [1, 0, 0, 1, 0, 0])  # row == column direction
    return folder


# ---------------------------------------------------------------- checkpoints
def _model_ckpt(tmp, name="m.pt"):
    torch.manual_seed(0)
    return save_checkpoint(build_model("nano"), tmp / name)


def _rewrite(tmp, name, change):
    """A copy of a valid checkpoint, as ``{"state_dict", "metadata"}`` changed by ``change(obj)``."""
    obj = torch.load(_model_ckpt(tmp, "src.pt"), weights_only=True)
    change(obj)
    torch.save(obj, tmp / name)
    return tmp / name


def _nonfinite(value):
    def change(obj):
        state = obj["state_dict"]
        k = sorted(state)[3]
        state[k] = state[k].clone()
        state[k].view(-1)[0] = value
        meta = json.loads(obj["metadata"])
        meta["weights_sha256"] = weights_sha256(state)  # a consistent file: the hash matches the NaN
        obj["metadata"] = json.dumps(meta)
    return change


def _meta(**kw):
    def change(obj):
        meta = json.loads(obj["metadata"])
        meta.update(kw)
        obj["metadata"] = json.dumps(meta)
    return change


def _train(out_dir, **kw):
    return lambda: train(TrainConfig(out_dir=str(out_dir), steps=1, **kw), progress=False)


# (id, setup(tmp) -> thunk, exception, message regex)
CASES = [
    # ---- DICOM series that SimpleITK would stack with one averaged spacing (decision: an error)
    ("dicom-missing-slice", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_missing_slice(t)), CTLoadError,
     r"(?s)missing 1 slice.*2 mm apart.*gap of 4 mm between -782.5 and -778.5 mm.*Copy the complete series.*dcm2niix"),
    ("dicom-copied-slice", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_copied_slice(t)), CTLoadError,
     r"(?s)1 duplicate slice position.*'copy_of_slice_6' at -776.5 mm.*remove the duplicate"),
    ("dicom-duplicate-position", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_duplicate_position(t)),
     CTLoadError, r"(?s)duplicate slice position.*at -776.5 mm"),
    ("dicom-varying-spacing", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_varying_spacing(t)), CTLoadError,
     r"(?s)varying slice spacing: gaps of 2, 3 mm.*dcm2niix.*_Eq"),
    ("dicom-gantry-tilt", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_gantry_tilt(t)), CTLoadError,
     r"(?s)sheared.*9.5 mm from the first slice to the last.*gantry tilt.*_Tilt_1"),
    ("dicom-mixed-orientation", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_mixed_orientation(t)),
     CTLoadError, r"(?s)mixes slice orientations.*\(1, 0, 0, 0, 0, -1\).*own folder"),
    ("dicom-non-orthogonal-orientation", lambda t: (lambda d: lambda: cs.load_ct(d))(_series_bad_orientation(t)),
     CTLoadError, r"(?s)not orthogonal unit vectors.*Re-export"),
    # ---- geometry a CT grid cannot hold: files, SimpleITK images, arrays
    ("ct-sheared-mha", lambda t: (lambda p: lambda: cs.load_ct(p))(_write(t, "s.mha", _image(direction=SHEAR))),
     CTLoadError, r"(?s)s\.mha' has sheared \(non-orthogonal\) voxel axes.*Resample it onto an orthogonal grid"),
    ("ct-sheared-nifti-sform", lambda t: (lambda p: lambda: cs.load_ct(p))(_sheared_nifti(t)), CTLoadError,
     r"(?s)sheared\.nii' has a sheared sform.*qform.*Resample"),
    ("ct-sheared-sitk-image", lambda t: lambda: cs.load_ct(_image(direction=SHEAR)), CTLoadError,
     "the SimpleITK image has sheared"),
    ("ct-sheared-array-direction", lambda t: lambda: cs.load_ct(synthetic_hu(), spacing=(1, 1, 1), direction=SHEAR),
     ValueError, "orthonormal.*sheared"),
    ("ct-nan-origin-sitk-image", lambda t: lambda: cs.load_ct(_image(origin=(0.0, float("nan"), 0.0))), CTLoadError,
     r"non-finite origin \(0, nan, 0\).*SetOrigin"),
    ("ct-nan-origin-nifti", lambda t: (lambda p: lambda: cs.load_ct(p))(
        _write(t, "n.nii.gz", _image(origin=(float("nan"), 0, 0)))),
     CTLoadError, r"n\.nii\.gz' has a non-finite origin"),
    ("ct-nan-offset-mha-header", lambda t: (lambda p: lambda: cs.load_ct(p))(_nan_offset_mha(t)), CTLoadError,
     r"nan\.mha' has a non-finite Offset \(0 nan 0\).*silently read it as 0"),
    ("ct-inf-spacing-sitk-image", lambda t: lambda: cs.load_ct(_image(spacing=(1.0, float("inf"), 1.0))),
     CTLoadError, r"voxel spacing \(1, inf, 1\).*finite number > 0"),
    ("ct-nan-origin-array", lambda t: lambda: cs.load_ct(synthetic_hu(), spacing=(1, 1, 1), origin=(np.nan, 0, 0)),
     ValueError, "origin must be three finite"),
    ("ct-inf-spacing-array", lambda t: lambda: cs.load_ct(synthetic_hu(), spacing=(1, np.inf, 1)), ValueError,
     "spacing must be three positive"),
    ("ct-nan-affine", lambda t: lambda: cs.load_ct(synthetic_hu(), affine=np.diag([1, 1, np.nan, 1])),
     ValueError, "NaN"),
    # ---- complex voxels
    ("ct-complex-array", lambda t: lambda: cs.load_ct(synthetic_hu().astype(np.complex64), spacing=(1, 1, 1)),
     TypeError, "complex.*np.abs"),
    ("ct-complex-from-array",
     lambda t: lambda: cs.CTVolume.from_array(synthetic_hu().astype(complex), spacing=(1, 1, 1)),
     TypeError, "complex"),
    ("ct-complex-sitk-image", lambda t: lambda: cs.load_ct(_image(synthetic_hu().astype(np.complex64))), CTLoadError,
     "complex voxels"),
    ("ct-complex-nifti", lambda t: (lambda p: lambda: cs.load_ct(p))(
        _write(t, "c.nii.gz", _image(synthetic_hu().astype(np.complex64)))),
     CTLoadError, r"c\.nii\.gz' has complex voxels"),
    ("ct-complex-mha", lambda t: (lambda p: lambda: cs.load_ct(p))(
        _write(t, "c.mha", _image(synthetic_hu().astype(np.complex64)))),
     CTLoadError, r"c\.mha' is a vector/RGB image with 2 components per voxel \(or complex"),
    ("ct-object-array-from-array",
     lambda t: lambda: cs.CTVolume.from_array(synthetic_hu().astype(object), spacing=(1, 1, 1)),
     TypeError, "dtype object"),
    # ---- label values: whole numbers 0..65535, never wrapped round
    ("labels-int64-2**32+5", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _ct(t), _labels(t, np.full(synthetic_hu().shape, 2**32 + 5, np.int64))),
     CTLoadError, r"lab\.nrrd' holds label value 4294967301 .*0\.\.65535"),
    ("labels-uint32-70000", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _ct(t), _labels(t, np.full(synthetic_hu().shape, 70000, np.uint32))),
     CTLoadError, "label value 70000"),
    ("labels-float-1e10", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _ct(t), _labels(t, np.full(synthetic_hu().shape, 1e10, np.float32))),
     CTLoadError, "label value 10000000000 "),
    ("labels-float-nan", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _ct(t), _labels(t, np.full(synthetic_hu().shape, np.nan, np.float32))),
     CTLoadError, "non-integer"),
    ("labels-nan-offset-header", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _ct(t), _nan_offset_mha(t, "lab.mha", np.zeros(synthetic_hu().shape, np.uint8))),
     CTLoadError, r"lab\.mha' has a non-finite Offset"),
    ("labels-sheared", lambda t: (lambda ct, p: lambda: cs.load_labels(p, like=ct))(
        _ct(t), _write(t, "lab.mha", _image(np.zeros(synthetic_hu().shape, np.uint8), direction=SHEAR))),
     CTLoadError, "sheared"),
    ("mask-to-image-int64-huge", lambda t: (lambda ct: lambda: mask_to_image(
        np.full(ct.shape, 2**32 + 5, np.int64), like=ct))(_ct(t)),
     ValueError, "0..65535.*never wrapped"),
    ("save-mask-int64-huge", lambda t: (lambda ct: lambda: cs.save_mask(
        np.full(ct.shape, 2**32 + 5, np.int64), like=ct, path=t / "m.nii.gz"))(_ct(t)),
     ValueError, "0..65535"),
    ("render-int64-huge",
     lambda t: (lambda ct: lambda: canonical_view(ct, np.full(ct.shape, 2**16 + 5, np.int64)))(_ct(t)),
     ValueError, "0..65535"),
    ("convert-labels-float-huge", lambda t: lambda: convert_labels(np.array([0.0, 1.0, 2.0**32 + 5]), "flare22"),
     ValueError, "4294967301 are not defined"),
    ("convert-labels-int64-huge", lambda t: lambda: convert_labels(np.array([0, 1, 2**32 + 5], np.int64), "flare22"),
     ValueError, "4294967301 are not defined"),
    # ---- checkpoints: a CheckpointError naming the file and the fix
    ("ckpt-missing", lambda t: lambda: load_checkpoint(t / "nope.pt"), CheckpointNotFoundError,
     r"checkpoint not found: '.*nope\.pt'.*working directory"),
    ("ckpt-html-page",
     lambda t: (t / "m.pt").write_text("<html>404 Not Found</html>") and (lambda: load_checkpoint(t / "m.pt")),
     CheckpointError, r"m\.pt' is not a checkpoint file: it begins with b'<html>40'.*failed download"),
    ("ckpt-empty-file", lambda t: (t / "m.pt").write_bytes(b"") or (lambda: load_model(t / "m.pt")), CheckpointError,
     r"m\.pt' is empty \(0 bytes\)"),
    ("ckpt-folder", lambda t: (t / "weights").mkdir() or (lambda: load_checkpoint(t / "weights")), CheckpointError,
     r"weights' is a folder, not a checkpoint file\. Pass the path of a \.pt"),
    ("ckpt-run-folder", lambda t: (lambda r: (lambda: load_model(r)))(
        _run_folder(t, last=False) and _model_ckpt(t / "run", "model.pt").parent),
     CheckpointError, r"run' is a folder.*load its checkpoint '.*run/model\.pt'"),
    ("ckpt-run-folder-last-only", lambda t: (lambda r: (lambda: load_model(r)))(_run_folder(t)), CheckpointError,
     r"is a folder.*last\.pt.*ctsam3d_nb\.training\.export"),
    ("ckpt-state-not-a-dict", lambda t: (lambda p: lambda: load_checkpoint(p))(
        _rewrite(t, "x.pt", lambda o: o.update(state_dict=[1, 2]))),
     CheckpointError, r"x\.pt' is malformed: its state_dict.*Re-export"),
    ("ckpt-state-values-not-tensors", lambda t: (lambda p: lambda: load_checkpoint(p))(
        _rewrite(t, "x.pt", lambda o: o.update(state_dict={"w": 1.0}))), CheckpointError, r"x\.pt' is malformed"),
    ("ckpt-metadata-a-list", lambda t: (lambda p: lambda: load_checkpoint(p))(
        _rewrite(t, "x.pt", lambda o: o.update(metadata="[]"))),
     CheckpointError, r"x\.pt' has unreadable metadata.*Re-export"),
    ("ckpt-metadata-not-text", lambda t: (lambda p: lambda: load_checkpoint(p))(
        _rewrite(t, "x.pt", lambda o: o.update(metadata=5))),
     CheckpointError, "unreadable metadata"),
    ("ckpt-config-not-a-dict", lambda t: (lambda p: lambda: load_model(p))(_rewrite(t, "x.pt", _meta(config="nano"))),
     CheckpointError, r"x\.pt' has malformed metadata: 'config' is a str"),
    ("ckpt-unknown-config", lambda t: (lambda p: lambda: load_model(p))(
        _rewrite(t, "x.pt", _meta(config={"name": "huge"}))),
     CheckpointError, r"unknown config 'huge'.*library version"),
    ("ckpt-nan-weights", lambda t: (lambda p: lambda: load_checkpoint(p))(
        _rewrite(t, "x.pt", _nonfinite(float("nan")))),
     CheckpointError, r"x\.pt' holds non-finite weights \(NaN or inf\) in 1 of .*diverged.*lower --lr"),
    ("ckpt-inf-weights-load-model", lambda t: (lambda p: lambda: load_model(p))(
        _rewrite(t, "x.pt", _nonfinite(float("inf")))),
     CheckpointError, "non-finite weights"),
    ("ckpt-training-state", lambda t: (lambda r: lambda: load_checkpoint(r / "last.pt"))(_nan_last(t)), CheckpointError,
     r"not a ctsam3d_nb checkpoint.*training run's last\.pt.*export"),
    ("model-bad-device", lambda t: (lambda p: lambda: load_model(p, device="gpu"))(_model_ckpt(t)), ValueError,
     "device='gpu' is not a device"),
    # ---- training out-dir: nothing the user owns is overwritten
    ("train-into-users-folder", lambda t: _train(_users_folder(t)), FileExistsError,
     r"(?s)mine' holds files, but it is not a training run's folder \(its config\.json is not a TrainConfig.*"
     r"Choose another --out-dir.*--overwrite"),
    ("train-into-users-model-only", lambda t: (t / "mine").mkdir() or (t / "mine" / "model.pt").write_bytes(b"mine")
     and _train(t / "mine"), FileExistsError, r"not a training run's folder \(no config\.json\)"),
    ("train-run-folder-with-foreign-files", lambda t: _train(_run_folder(t, extra=("notes.txt",)), resume=False),
     FileExistsError, r"files a training run did not write: \['notes\.txt'\]"),
    ("train-run-folder-with-subfolder",
     lambda t: (lambda r: (r / "eval").mkdir() or _train(r, resume=False))(_run_folder(t)),
     FileExistsError, r"did not write: \['eval/'\]"),
    ("train-out-dir-is-a-file", lambda t: (t / "f").write_text("x") and _train(t / "f"), FileExistsError, "is a file"),
    ("train-resume-other-model", lambda t: _train(_run_folder(t, model="tiny")), FileExistsError,
     r"holds a 'tiny' run; resuming it as a 'nano' model.*--model tiny"),
    ("train-no-data", lambda t: _train(t / "new", phantom_weight=0.0), ValueError, "no training data"),
    ("train-unknown-dataset", lambda t: _train(t / "new", dataset="nosuch", dataset_root=str(t)), KeyError,
     "unknown dataset 'nosuch'"),
    ("train-config-overwrite-not-bool", lambda t: lambda: TrainConfig(overwrite="yes"), ValueError,
     "TrainConfig.overwrite = 'yes'"),
]


def test_catalogue_is_large_enough():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gives_clear_error_and_writes_nothing(case, tmp_path):
    run_case(case, tmp_path)
