"""Session-12 training options: difficulty-aware target sampling (hard_targets) and click-free rounds (p_self_round)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from ctsam3d_nb.training import TrainConfig, train
from ctsam3d_nb.training.data import PatchSampler, phantom_source
from ctsam3d_nb.training.difficulty import TargetDifficulty

SMALL = (96, 96, 96)


def test_running_error_and_factors():
    d = TargetDifficulty(power=1.0, max_factor=4.0)
    d.update([5, 5, 7, 0, 300], [0.2, 0.4, 0.9, 0.0, 0.0])  # id 0 (not a structure) and 300 are ignored
    err, count = d.table[0].numpy(), d.table[1].numpy()
    assert count[5] == 2 and count[7] == 1 and count[0] == 0 and count.sum() == 3
    assert err[5] == pytest.approx(0.7) and err[7] == pytest.approx(0.1)  # plain mean while few samples
    f = d.factors([5, 7, 9])  # mean error 0.4: pancreas-like 5 is drawn more, lung-like 7 less, unseen 9 as before
    assert f[0] == pytest.approx(0.7 / 0.4) and f[1] == pytest.approx(0.1 / 0.4) and f[2] == 1.0
    d.update([7] * 200, [1.0] * 200)  # a perfect structure: its factor is clipped, not 0
    assert d.factors([7])[0] == pytest.approx(0.25)
    d.update([5] * 200, [0.0] * 200)  # later samples weigh more than the first ones (a running mean)
    assert d.table[0, 5] > 0.99
    assert np.all(TargetDifficulty(power=0.0).factors([5, 7]) == 1)
    d.update([118], [0.0])  # the residual "body" label: never drawn more often, however wrong
    assert d.factors([118])[0] == 1.0
    e = TargetDifficulty(power=1.0)
    e.load_state_dict(d.state_dict())
    assert torch.equal(e.table, d.table)
    for bad in (dict(power=-1.0), dict(power=1.0, max_factor=0.5), dict(power=1.0, decay=1.0)):
        with pytest.raises(ValueError, match="power >= 0"):
            TargetDifficulty(**bad)
    with pytest.raises(ValueError, match="hard_targets"):
        TrainConfig(hard_targets=-0.5)


def _read_after(table, ready, out):
    ready.wait(30)
    out.put(float(table[0, 9]))


def test_a_data_worker_sees_what_the_step_writes_after_it_started():
    """The table lives in shared memory: a process started before the update reads the updated value."""
    d = TargetDifficulty(power=1.0)
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    ready, out = ctx.Event(), ctx.Queue()
    p = ctx.Process(target=_read_after, args=(d.table, ready, out))
    p.start()
    d.update([9], [0.25])
    ready.set()
    assert out.get(timeout=60) == pytest.approx(0.75)
    p.join(30)


def test_hard_structures_are_drawn_more_often():
    """With a table that calls one structure hard, the sampler draws it far more often; power 0 changes nothing."""
    def draws(difficulty):
        smp = PatchSampler([(phantom_source(123, SMALL), 1.0)], seed=5, pool_size=1, refresh_every=10**6,
                           difficulty=difficulty)
        vol = smp._volume()
        return vol, [smp._pick_label(vol) for _ in range(400)]

    vol, plain = draws(None)
    hard = min(vol.points, key=lambda i: abs(plain.count(i) - 20))  # one drawn about 20 times in 400
    table = TargetDifficulty(power=1.0)
    easy = [i for i in vol.points if i != hard]
    table.update([hard] * 5 + easy, [0.0] * 5 + [0.9] * len(easy))
    _, weighted = draws(table)
    assert weighted.count(hard) > 2 * plain.count(hard), (plain.count(hard), weighted.count(hard))
    _, same = draws(TargetDifficulty(power=0.0))
    assert same == plain  # no factor, same random stream


def test_training_keeps_the_table_and_resumes_it(tmp_path):
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), steps=2, batch_size=2, click_rounds=2, log_every=1,
                      save_every=1, phantom_shape=SMALL, pool_size=1, refresh_every=8, warmup_steps=2, threads=2,
                      seed=3, hard_targets=1.0, p_lesion=0.0, p_union=0.0, p_subpart=0.0)
    train(cfg, progress=False)
    s1 = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    t1 = s1["difficulty"]["table"]
    assert t1[1].sum() == 4  # 2 steps x 2 structure samples, each clicked at its deepest point
    assert torch.all((t1[0] >= 0) & (t1[0] <= 1))
    assert "first_dices" not in (tmp_path / "run" / "metrics.jsonl").read_text()  # kept out of the log
    train(dataclasses.replace(cfg, steps=3), progress=False)
    t2 = torch.load(tmp_path / "run" / "last.pt", weights_only=True)["difficulty"]["table"]
    assert t2[1].sum() == 6  # resumed: the counts went on from the saved table


def test_self_rounds_place_no_click_and_still_train(monkeypatch):
    """TrainConfig.p_self_round: a round after the first may add no click (the model refines its own mask, as
    ClickSettings.self_rounds does at inference); 0 keeps a click in every round."""
    import ctsam3d_nb.training.loop as loop
    from ctsam3d_nb.modeling import build_model

    sampler = PatchSampler([(phantom_source(11, SMALL), 1.0)], seed=2, pool_size=1, p_cpp=0.0)
    samples = [sampler.sample(i) for i in range(2)]
    torch.manual_seed(0)
    model = build_model("nano")
    placed = []
    real_next = loop.next_click
    monkeypatch.setattr(loop, "next_click", lambda *a, **k: placed.append(1) or real_next(*a, **k))
    for p, want in ((0.0, 2 * 2), (1.0, 0)):  # 3 rounds: 2 later rounds x 2 samples get a click, or none
        cfg = TrainConfig(batch_size=2, click_rounds=3, grad_rounds="all", p_seeded=0.0, p_self_round=p)
        batch = loop._collate(samples, cfg, np.random.default_rng(0), "cpu", model.config.cpp_sigma)
        placed.clear()
        loss, metrics = loop.TrainStep(model, cfg)(batch, np.random.default_rng(1))
        assert len(placed) == want and metrics["rounds"] == 3 and torch.isfinite(loss)
    with pytest.raises(ValueError, match="p_self_round"):
        TrainConfig(p_self_round=1.5)
