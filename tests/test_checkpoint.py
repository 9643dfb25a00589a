"""Checkpoints: safe loading, strict keys, metadata hash, config checks."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ctsam3d_nb.checkpoint import (RESERVED_METADATA, CheckpointError, load_checkpoint, load_model,
                                   save_checkpoint)
from ctsam3d_nb.modeling import build_model


@pytest.fixture(scope="module")
def nano():
    torch.manual_seed(1)
    return build_model("nano")


def test_round_trip_keeps_weights_and_metadata(nano, tmp_path):
    path = save_checkpoint(nano, tmp_path / "m.pt", metadata={"metrics": {"dice@1": 0.5}})
    model = load_model(path, device="cpu")
    for (k, a), (k2, b) in zip(nano.state_dict().items(), model.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    assert model.metadata["metrics"] == {"dice@1": 0.5}
    assert model.metadata["config"]["name"] == "nano"
    assert model.checkpoint_info["sha256"] == model.metadata["weights_sha256"]
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_checkpoint(nano, path)


def test_metadata_from_numpy_and_paths_is_stored_and_the_library_keys_are_refused(nano, tmp_path):
    """Metrics as numpy scalars and data folders as paths are what a training script has at hand; a user key
    named like the library's own ("config") made a checkpoint that no longer loaded (session 30 review)."""
    path = save_checkpoint(nano, tmp_path / "m.pt", metadata={
        "metrics": {"dice@1": np.float32(0.75), "n": np.int64(3)}, "data": Path("/data/flare22"),
        "curve": np.array([0.5, 0.75])})
    meta = load_model(path, device="cpu").metadata
    assert meta["metrics"] == {"dice@1": 0.75, "n": 3} and meta["data"] == "/data/flare22"
    assert meta["curve"] == [0.5, 0.75]
    for key in RESERVED_METADATA:
        with pytest.raises(ValueError, match=f"'{key}' is the checkpoint's own"):
            save_checkpoint(nano, tmp_path / f"{key}.pt", metadata={key: {"lr": 1e-3}})
        assert not (tmp_path / f"{key}.pt").exists()
    with pytest.raises(ValueError, match=r"metadata\['hook'\] cannot be stored as JSON"):
        save_checkpoint(nano, tmp_path / "hook.pt", metadata={"hook": {1, 2}})
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]  # nothing half-written beside it


def test_saving_onto_a_folder_names_a_file_to_use(nano, tmp_path):
    (tmp_path / "runs").mkdir()
    for overwrite in (False, True):
        with pytest.raises(IsADirectoryError, match="is a folder; pass a file in it, e.g. '.*runs/model.pt'"):
            save_checkpoint(nano, tmp_path / "runs", overwrite=overwrite)
    assert list((tmp_path / "runs").iterdir()) == []


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/ctsam3d_pwned",))


def test_pickled_code_is_refused_not_run(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "metadata": "{}", "x": Evil()}, path)
    if os.path.exists("/tmp/ctsam3d_pwned"):
        os.unlink("/tmp/ctsam3d_pwned")
    with pytest.raises(CheckpointError, match="pickled objects"):
        load_checkpoint(path)
    assert not os.path.exists("/tmp/ctsam3d_pwned")
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(CheckpointError):
        load_model(raw)
    assert not os.path.exists("/tmp/ctsam3d_pwned")


def test_tampered_weights_fail_the_hash(nano, tmp_path):
    path = save_checkpoint(nano, tmp_path / "m.pt")
    obj = torch.load(path, weights_only=True)
    k = next(iter(obj["state_dict"]))
    obj["state_dict"][k] = obj["state_dict"][k] + 1e-3
    torch.save(obj, path)
    with pytest.raises(CheckpointError, match="do not match the hash"):
        load_checkpoint(path)


def test_other_config_and_missing_keys(nano, tmp_path):
    path = save_checkpoint(nano, tmp_path / "m.pt")
    obj = torch.load(path, weights_only=True)
    meta = json.loads(obj["metadata"])
    meta["config"]["decoder_widths"] = [1, 2, 3, 4, 5, 6]
    obj["metadata"] = json.dumps(meta)
    torch.save(obj, tmp_path / "cfg.pt")
    with pytest.raises(CheckpointError, match="different 'nano' configuration.*decoder_widths"):
        load_model(tmp_path / "cfg.pt")
    state = dict(obj["state_dict"])
    state.pop(next(iter(state)))
    from ctsam3d_nb.checkpoint import weights_sha256

    meta = json.loads(torch.load(path, weights_only=True)["metadata"])
    meta["weights_sha256"] = weights_sha256(state)
    torch.save({"state_dict": state, "metadata": json.dumps(meta)}, tmp_path / "keys.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(tmp_path / "keys.pt")


def test_truncated_and_foreign_files(nano, tmp_path):
    path = save_checkpoint(nano, tmp_path / "m.pt")
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a ctsam3d_nb checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError, match="neither a model name"):
        load_model(tmp_path / "none.pt")


def test_unknown_name_and_random_weights():
    with pytest.raises(FileNotFoundError, match="neither a model name"):
        load_model("giant")
    m = load_model("nano", pretrained=False, device="cpu")
    assert m.config.name == "nano" and not m.training


def test_half_precision_storage_halves_size_and_loads_as_float32(nano, tmp_path):
    full = save_checkpoint(nano, tmp_path / "f32.pt")
    half = save_checkpoint(nano, tmp_path / "f16.pt", dtype=torch.float16)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    model = load_model(half, device="cpu")
    assert model.metadata["weights_dtype"] == "float16"
    for (k, a), b in zip(nano.state_dict().items(), model.state_dict().values()):
        assert b.dtype == a.dtype
        assert torch.equal(b, a.half().to(a.dtype)) if a.is_floating_point() else torch.equal(a, b)


def test_checkpoint_files_get_normal_permissions(nano, tmp_path):
    path = save_checkpoint(nano, tmp_path / "m.pt")
    assert path.stat().st_mode & 0o044  # readable by group/others (mkstemp alone gives 0600)


def test_shipped_checkpoint_loads_and_is_small():
    from ctsam3d_nb.checkpoint import shipped_checkpoint

    path = shipped_checkpoint("nano")
    if not path.exists():
        pytest.skip("no shipped nano checkpoint in this checkout")
    assert path.stat().st_size <= 20 * 2**20
    model = load_model("nano", device="cpu")
    meta = model.metadata
    assert meta["config"]["name"] == "nano" and meta["training"]["steps_done"] > 0


@pytest.mark.parametrize("device,match", [("gpu", "device='gpu' is not a device"),
                                          pytest.param("cuda", "torch finds no CUDA GPU here; use device='cpu'",
                                                       marks=pytest.mark.skipif(torch.cuda.is_available(),
                                                                                reason="this machine has CUDA"))])
def test_a_predictor_on_a_device_it_cannot_use_says_so_as_load_model_does(device, match):
    """Predictor(model, device=...) checks the device as load_model does (it raised torch's bare
    'Torch not compiled with CUDA enabled' on a CPU-only build)."""
    from ctsam3d_nb.predictor import Predictor

    model = build_model("nano")
    for make in (lambda: load_model("nano", device=device, pretrained=False), lambda: Predictor(model, device=device)):
        with pytest.raises(ValueError, match=match):
            make()


def test_every_candidate_checkpoint_loads_and_is_listed():
    """candidates/ keeps evaluated, unshipped weights in git (runs/ does not survive a change of machine): each must
    load (its weights hash checked) and be listed, with its evaluation, in candidates/README.md."""
    folder = Path(__file__).resolve().parent.parent / "candidates"
    files = sorted(folder.glob("*.pt"))
    if not files:
        pytest.skip("no candidate weights kept now")
    listed = (folder / "README.md").read_text()
    for f in files:
        model = load_model(f, device="cpu")
        assert model.config.name in ("nano", "nano_deep", "tiny") and model.metadata["training"]["steps_done"] > 0
        assert f"`{f.name}`" in listed and model.checkpoint_info["sha256"][:12] in listed
