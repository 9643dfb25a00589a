"""Training: losses, deterministic sampling, a real short run, exact resume, DDP on gloo.

The sampler's patch kinds are tested in test_training_patch_kinds.py."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from ctsam3d_nb.checkpoint import load_model
from ctsam3d_nb.training import TrainConfig, train
from ctsam3d_nb.training.data import PatchSampler, case_index, dataset_source, phantom_source
from ctsam3d_nb.modeling.cpp import cpp_target_heatmap
from ctsam3d_nb.training.losses import dice_score, focal_loss, heatmap_loss, mask_loss, soft_dice_loss

SMALL = (96, 96, 96)  # phantom grid for tests (1.5 mm)


def test_losses_behave():
    t = torch.zeros(2, 1, 8, 8, 8)
    t[:, :, 2:6, 2:6, 2:6] = 1
    perfect = t * 40 - 20
    assert soft_dice_loss(perfect, t) < 0.01 and focal_loss(perfect, t) < 1e-6
    wrong = -perfect
    assert soft_dice_loss(wrong, t) > 0.95
    assert mask_loss(wrong, t) > mask_loss(torch.zeros_like(t), t) > mask_loss(perfect, t)
    assert dice_score(t > 0, t > 0).tolist() == [1.0, 1.0]
    assert dice_score(torch.zeros(1, 5, dtype=torch.bool), torch.zeros(1, 5, dtype=torch.bool)).item() == 1.0


def test_peak_weighted_heatmap_loss_prefers_finding_the_peak():
    organ = np.zeros((64, 64, 64), bool)
    organ[20:50, 20:50, :40] = True  # continues from U into V across the face
    target = torch.from_numpy(cpp_target_heatmap(organ, sigma=2.0))[None, None]
    nothing = torch.zeros_like(target)
    peak_in_haze = torch.maximum(target, torch.full_like(target, 0.1))  # right peak, 0.1 everywhere else
    assert heatmap_loss(nothing, target, 0.0) == pytest.approx(torch.nn.functional.mse_loss(nothing, target).item())
    # plain MSE (the release's loss): predicting nothing beats finding the peak with a faint haze,
    # which is why the CPP net learned to output zeros
    assert heatmap_loss(nothing, target, 0.0) < heatmap_loss(peak_in_haze, target, 0.0) / 20
    # peak-weighted: missing the peak costs more than the haze
    assert heatmap_loss(nothing, target, 500.0) > 3 * heatmap_loss(peak_in_haze, target, 500.0)
    assert heatmap_loss(target, target, 500.0) == 0
    with pytest.raises(ValueError, match="pos_weight"):
        heatmap_loss(nothing, target, -1.0)


def _sampler(**kw):
    return PatchSampler([(phantom_source(123, SMALL), 1.0)], seed=5, **{"pool_size": 1, "refresh_every": 4, **kw})


def test_sampler_is_deterministic_by_count():
    a, b = _sampler(), _sampler()
    s1 = [a.sample(i) for i in range(3)]
    s2 = b.sample(2)  # jump straight to sample 2: same result (exact resume)
    np.testing.assert_array_equal(s1[2].image, s2.image)
    np.testing.assert_array_equal(s1[2].target, s2.target)
    for s in s1:
        assert s.image.shape == (64, 64, 64) and s.image.dtype == np.float32
        assert 0 <= s.image.min() and s.image.max() <= 1
        assert s.target.sum() >= 30
        if s.image_v is not None:
            assert s.face is not None and s.target_v.shape == (64, 64, 64)


def test_cpp_neighbour_is_the_adjacent_patch():
    s = None
    smp = _sampler(p_cpp=1.0, p_augment=0.0, p_domain_rand=0.0)
    for i in range(20):
        s = smp.sample(i)
        if s.image_v is not None:
            break
    assert s is not None and s.image_v is not None
    axis, direction = s.face
    # U and V overlap by 16 voxels: U's last 16 slices along the face are V's first 16
    idx_u = [slice(None)] * 3
    idx_v = [slice(None)] * 3
    idx_u[axis] = slice(48, 64) if direction > 0 else slice(0, 16)
    idx_v[axis] = slice(0, 16) if direction > 0 else slice(48, 64)
    np.testing.assert_array_equal(s.target[tuple(idx_u)], s.target_v[tuple(idx_v)])


def _touches(mask, axis, direction):
    idx = [slice(None)] * 3
    idx[axis] = slice(-2, None) if direction > 0 else slice(0, 2)
    return bool(mask[tuple(idx)].any())


def test_negative_cpp_pairs_lie_across_a_face_the_target_does_not_reach():
    smp = _sampler(p_cpp=1.0, p_cpp_negative=1.0, p_augment=0.0, p_domain_rand=0.0)
    got = [s for s in (smp.sample(i) for i in range(12)) if s.image_v is not None]
    assert len(got) >= 6
    for s in got:
        assert not _touches(s.target, *s.face)  # the target does not cross this face ...
        assert not s.target_v.any()  # ... so the heatmap target is empty: "no continuation"
    pos = [s for s in (_sampler(p_cpp=1.0, p_augment=0.0).sample(i) for i in range(6)) if s.image_v is not None]
    assert pos and all(_touches(s.target, *s.face) for s in pos)  # default: only positive pairs


def test_large_target_boost_draws_large_structures_more_often():
    def large_share(**kw):
        smp = _sampler(p_cpp=0.0, p_augment=0.0, p_domain_rand=0.0, refresh_every=1000, large_target_ml=40, **kw)
        labels = [smp.sample(i).label for i in range(60)]
        vol = next(iter(smp.pool.values()))  # one volume for all 60 samples
        assert 0 < np.mean([m >= 40 for m in vol.ml.values()]) < 0.5
        return np.mean([vol.ml[lab] >= 40 for lab in labels])

    plain, boosted = large_share(), large_share(large_target_boost=4.0)
    assert boosted > plain + 0.15, (plain, boosted)


def _cfg(tmp_path, **kw):
    base = dict(out_dir=str(tmp_path / "run"), steps=2, batch_size=1, click_rounds=2, log_every=1, save_every=1,
                phantom_shape=SMALL, pool_size=1, refresh_every=8, warmup_steps=2, threads=2, seed=3)
    base.update(kw)
    return TrainConfig(**base)


@pytest.mark.slow
def test_short_run_writes_everything_and_resumes_exactly(tmp_path):
    seen = []
    cfg = _cfg(tmp_path)
    model = train(cfg, callbacks=[lambda step, m: seen.append((step, m["loss"]))], progress=False)
    out = tmp_path / "run"
    assert json.loads((out / "config.json").read_text())["steps"] == 2
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2] and [s for s, _ in seen] == [1, 2]
    assert all(np.isfinite(l["loss"]) and "dice_r2" in l for l in lines)
    assert all(np.isfinite(l["grad_norm"]) and np.isfinite(l["grad_norm_cpp"]) for l in lines)
    shipped = load_model(out / "model.pt", device="cpu")  # a loadable library checkpoint
    for a, b in zip(model.state_dict().values(), shipped.state_dict().values()):
        assert torch.equal(a, b)

    # stop after 1 step, resume to 2: identical weights to the uninterrupted run
    cfg2 = _cfg(tmp_path, out_dir=str(tmp_path / "run2"), steps=1)
    train(cfg2, progress=False)
    resumed = train(dataclasses.replace(cfg2, steps=2), progress=False)
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), k


def test_resume_with_other_settings_needs_allow_changes_and_a_new_run_starts_a_new_log(tmp_path):
    """A resume that forgot a flag went on as another run (lr, recipe, no weight average) without a word, and
    --no-resume appended its metrics to the old run's (session 30 review)."""
    out = tmp_path / "run"
    cfg = _cfg(tmp_path, steps=1)
    train(cfg, progress=False)
    saved = (out / "config.json").read_text()
    with pytest.raises(ValueError, match=r"other settings than these \(lr: 0\.001 -> 0\.0005; p_slab: 0\.0 -> 0\.3\)"):
        train(dataclasses.replace(cfg, steps=2, lr=5e-4, p_slab=0.3), progress=False)
    assert (out / "config.json").read_text() == saved  # refused before anything was written
    train(dataclasses.replace(cfg, steps=2, threads=1, log_every=2), progress=False)  # run control may change
    train(dataclasses.replace(cfg, steps=3, lr=5e-4, allow_changes=True), progress=False)
    assert json.loads((out / "config.json").read_text())["lr"] == 5e-4
    assert "allow_changes" not in json.loads((out / "config.json").read_text())  # a permission, not a setting
    steps = lambda: [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]  # noqa: E731
    assert steps() == [1, 2, 3]
    train(dataclasses.replace(cfg, resume=False), progress=False)
    assert steps() == [1] and torch.load(out / "last.pt", weights_only=True)["step"] == 1


def test_device_cuda_gets_an_index_for_set_device(tmp_path, monkeypatch):
    """``--device cuda`` (the gpu-9min preset's) failed in torch.cuda.set_device, which needs an index."""
    seen = []

    def set_device(device):
        seen.append(device)
        raise RuntimeError("stop here")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(RuntimeError, match="stop here"):
        train(_cfg(tmp_path, device="cuda"), progress=False)
    assert seen == [torch.device("cuda", 0)] and not (tmp_path / "run").exists()


def test_weight_average_is_kept_resumed_and_exported(tmp_path):
    """ema_decay: last.pt carries the average, a resumed run continues it, model.pt and the export hold it."""
    from ctsam3d_nb.training.export import export_run

    out = tmp_path / "run"
    cfg = _cfg(tmp_path, steps=1, ema_decay=0.5)
    train(cfg, progress=False)
    s1 = torch.load(out / "last.pt", weights_only=True)
    assert int(s1["ema"]["n_averaged"]) == 1  # the first update copies the weights
    assert all(torch.equal(s1["ema"]["module." + k], v) for k, v in s1["model"].items())
    final = train(dataclasses.replace(cfg, steps=2), progress=False)  # resumed: the average goes on
    s2 = torch.load(out / "last.pt", weights_only=True)
    assert int(s2["ema"]["n_averaged"]) == 2
    avg = {k: s2["ema"]["module." + k] for k in s2["model"]}
    for k, v in s2["model"].items():  # weights and the stem's batch-norm statistics (not its int counters)
        if v.is_floating_point():
            torch.testing.assert_close(avg[k], 0.5 * s1["model"][k] + 0.5 * v)
    assert sum(not torch.equal(avg[k], v) for k, v in s2["model"].items()) > 10  # not the raw weights
    assert all(torch.equal(a, avg[k]) for k, a in final.state_dict().items())
    assert all(torch.equal(a, avg[k]) for k, a in load_model(out / "model.pt", device="cpu").state_dict().items())
    for raw, want in ((False, avg), (True, s2["model"])):
        path = export_run(out, tmp_path / f"export_{raw}.pt", raw=raw)
        got = load_model(path, device="cpu").state_dict()
        assert all(torch.equal(got[k], v.half().float()) for k, v in want.items()), raw
    with pytest.raises(ValueError, match="ema_decay"):
        TrainConfig(ema_decay=1.0)


@pytest.mark.slow
def test_torchrun_two_cpu_processes_gloo(tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "ctsam3d_nb.train", "--out-dir", str(out), "--steps", "2", "--batch-size", "1",
           "--click-rounds", "1", "--phantom-shape", json.dumps(list(SMALL)), "--pool-size", "1",
           "--log-every", "1", "--save-every", "2", "--threads", "1", "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [1, 2]  # rank 0 logs once per step
    assert (out / "model.pt").exists()
    # DDP kept the replicas in sync: rank 0's weights are a valid, loadable checkpoint
    load_model(out / "model.pt", device="cpu")


def test_config_round_trip_and_unknown_fields(tmp_path):
    cfg = TrainConfig(steps=7, model="nano")
    cfg.save(tmp_path / "c.json")
    back = TrainConfig.load(tmp_path / "c.json")
    assert back.steps == 7
    d = json.loads((tmp_path / "c.json").read_text())
    d["stepz"] = 1
    (tmp_path / "bad.json").write_text(json.dumps(d))
    with pytest.raises(ValueError, match="stepz"):
        TrainConfig.load(tmp_path / "bad.json")


@pytest.mark.parametrize("n", [1, 7, 250, 1000])
def test_case_index_visits_every_case_once_per_epoch(n):
    for rank in (0, 1):
        for epoch in (0, 1):
            seen = [case_index(v * 1000 + rank, n) for v in range(epoch * n, (epoch + 1) * n)]
            assert sorted(seen) == list(range(n))  # `key % n` gave one case forever for n = 250 or 1000
    if n > 3:
        order = [case_index(v * 1000, n) for v in range(n)]
        assert [case_index(v * 1000, n, seed=1) for v in range(n)] != order  # the run's seed matters


def test_training_from_a_dataset_adapter(tmp_path):
    from test_datasets import blob_labels, ct_array, write

    root = tmp_path / "flare"
    for i, case in enumerate(["FLARE22_Tr_0001", "FLARE22_Tr_0002"]):
        write(ct_array(i), root / "imagesTr" / f"{case}_0000.nii.gz")
        write(blob_labels([1, 13, 5]), root / "labelsTr" / f"{case}.nii.gz")
    get = dataset_source("flare22", root)
    image, labels = get(0)
    assert image.dtype == np.float32 and 0 <= image.min() and image.max() <= 1
    assert {5, 3, 52} <= set(np.unique(labels).tolist())  # FLARE 1/13/5 -> liver, kidney_left, aorta
    assert image.shape == labels.shape and abs(image.shape[0] - 24 * 2.5 / 1.5) <= 1.5  # 1.5 mm grid
    with pytest.raises(ValueError, match="phantom_weight"):
        dataset_source("phantom", None)

    cfg = _cfg(tmp_path, steps=1, phantom_weight=0.0, dataset="flare22", dataset_root=str(root))
    train(cfg, progress=False)
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert np.isfinite(line["loss"]) and line["step"] == 1
    assert json.loads((tmp_path / "run" / "config.json").read_text())["dataset"] == "flare22"


def test_training_on_a_dataset_with_splits_warns_without_a_split(tmp_path):
    from test_datasets import blob_labels, ct_array, write

    for sub, case, values in (("Tr", "word_0001", [3, 12]), ("Val", "word_0101", [16])):
        write(ct_array(), tmp_path / f"images{sub}" / f"{case}.nii.gz")
        write(blob_labels(values), tmp_path / f"labels{sub}" / f"{case}.nii.gz")
    with pytest.warns(UserWarning, match="split"):
        dataset_source("word", tmp_path)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        get = dataset_source("word", tmp_path, {"split": "train"})
    from ctsam3d_nb.anatomy import by_name

    for v in range(3):  # only the train case: kidney_left (WORD 3), never the val case's femoral head (16)
        labels = get(v * 1000)[1]
        assert by_name("kidney_left").id in labels and by_name("femoral_head_right").id not in labels


def test_train_cli_parses_dataset_options():
    from ctsam3d_nb.train import _parser

    args = _parser().parse_args(["--dataset", "word", "--dataset-root", "/data/WORD",
                                 "--dataset-options", '{"split": "train"}'])
    assert args.dataset == "word" and args.dataset_options == {"split": "train"}


def test_train_cli_help_explains_every_field():
    """`python -m ctsam3d_nb.train --help` shows each TrainConfig field's comment, continuation lines included."""
    from ctsam3d_nb._fields import field_comments
    from ctsam3d_nb.train import _parser

    comments = field_comments(TrainConfig)
    assert set(comments) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert comments["grad_rounds"].endswith("each round still trained 1/click_rounds of the time")  # 4 lines
    text = " ".join(_parser().format_help().split())
    assert "(default: None)" not in text
    assert "the earlier ones without gradient (they only place the next click" in text
    assert "--p-elastic" in text and "one real anatomy becomes many" in text


def test_exported_wall_time_leaves_out_pauses_between_sessions():
    from ctsam3d_nb.training.export import active_wall_time

    log = [{"time": t} for t in (1000.0, 1020.0, 1040.5, 90000.0, 90030.0)]  # stopped, resumed a day later
    assert active_wall_time(log) == 70.5
    assert active_wall_time(log, pause_s=10**6) == 89030.0


@pytest.mark.parametrize("field, value, match", [("cpp_pos_weight", -1.0, "cpp_pos_weight"),
                                                 ("p_cpp_negative", 1.5, "p_cpp_negative"),
                                                 ("large_target_boost", -0.5, "large_target_boost")])
def test_bad_sampling_options_are_refused_before_training(tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        train(_cfg(tmp_path, **{field: value}), progress=False)
    assert not (tmp_path / "run").exists()  # refused before anything was written


@pytest.mark.slow
def test_gpu_preset_smoke_on_cpu_with_workers_and_a_time_limit(tmp_path):
    """The one-GPU preset, shrunk to run on CPU: data workers, a time limit, timed checkpoints, model.pt."""
    from ctsam3d_nb.train import main
    from ctsam3d_nb.training.config import PRESETS

    assert PRESETS["gpu-9min"]["device"] == "cuda" and PRESETS["gpu-9min"]["max_minutes"] <= 9
    out = tmp_path / "gpu"
    argv = ["--preset", "gpu-9min", "--device", "cpu", "--out-dir", str(out), "--steps", "2", "--batch-size", "1",
            "--workers", "1", "--phantom-shape", "[96,96,96]", "--pool-size", "1", "--log-every", "1",
            "--real-weight", "0", "--save-every-s", "0.001", "--click-rounds", "2"]
    assert main(argv) == 0
    state = torch.load(out / "last.pt", weights_only=True)
    assert state["step"] == 2 and state["trained_s"] > 0
    model = load_model(out / "model.pt", device="cpu")
    assert model.config.name == "nano"
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    # a time limit stops the run early, with last.pt and model.pt written; the schedule follows the time
    limited = tmp_path / "limited"
    assert main(argv[:5] + [str(limited)] + argv[6:] + ["--steps", "50", "--max-minutes", "0.0001"]) == 0
    assert torch.load(limited / "last.pt", weights_only=True)["step"] == 1 and (limited / "model.pt").exists()
