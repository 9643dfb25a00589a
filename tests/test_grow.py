"""Growing a trained model into a deeper encoder (modeling/grow.py): the same masks at the start, trainable after."""
from __future__ import annotations

import json

import pytest
import torch

from ctsam3d_nb.checkpoint import load_model
from ctsam3d_nb.modeling import MODEL_CONFIGS, build_model
from ctsam3d_nb.modeling.grow import grow_model, growable
from ctsam3d_nb.training import TrainConfig, train, loop

P = 64


def test_grown_model_computes_exactly_what_the_trained_one_did():
    small = load_model("nano", device="cpu")  # the shipped weights, in eval mode
    big = grow_model(small, "nano_deep")
    assert big.config.name == "nano_deep" and big.config.encoder_depths == (1, 2, 6, 2)
    assert [len(s) for s in big.image_encoder.stages] == [1, 2, 6, 2] and not big.training
    n_small, n_big = (sum(p.numel() for p in m.image_encoder.parameters()) for m in (small, big))
    assert n_big > 1.5 * n_small  # real extra capacity: 2.5 M -> 4.2 M encoder parameters
    torch.manual_seed(1)
    x, prompt = torch.rand(2, 1, P, P, P), torch.rand(2, 3, P, P, P)
    with torch.inference_mode():
        fa, fb = small.encode(x), big.encode(x)
        for a, b in zip(fa, fb):
            assert torch.equal(a, b)
        assert torch.equal(small.decode(fa, prompt), big.decode(fb, prompt))
    # the new blocks are not dead: one SGD step on a new block's parameters alone changes the features
    block = big.image_encoder.stages[2][5]
    opt = torch.optim.SGD(block.parameters(), lr=0.1)
    big.encode(x)[2].square().mean().backward()
    assert block.attn.proj.weight.grad.abs().sum() > 0
    opt.step()
    with torch.inference_mode():
        assert not torch.equal(big.encode(x)[2], fa[2])


def test_growing_refuses_other_widths_and_shrinking():
    nano, deep = MODEL_CONFIGS["nano"], MODEL_CONFIGS["nano_deep"]
    assert growable(nano, deep) is None and growable(nano, "nano") is None
    why = growable(nano, "tiny")
    assert "encoder_dims" in why and "decoder_widths" in why
    assert "never cut" in growable(deep, nano)
    with pytest.raises(ValueError, match="never cut"):
        grow_model(build_model("nano_deep"), "nano")


def test_training_a_deeper_encoder_from_the_shipped_weights(tmp_path, monkeypatch):
    cfg = TrainConfig(out_dir=str(tmp_path / "run"), model="nano_deep", init="nano", steps=1, batch_size=1,
                      click_rounds=1, log_every=1, save_every=1, phantom_shape=(96, 96, 96), pool_size=1,
                      refresh_every=8, warmup_steps=1, threads=2, seed=3, lr=1e-9)
    train(cfg, progress=False)  # lr 1e-9: the saved model is the grown start, to float16 storage
    grown = load_model(str(tmp_path / "run" / "model.pt"), device="cpu").state_dict()
    start = load_model("nano", device="cpu").state_dict()
    trained = [k for k in start if "running_" not in k and "num_batches" not in k]  # BatchNorm stats move in a step
    assert all(torch.allclose(start[k], grown[k], atol=1e-6) for k in trained)
    new = [k for k in grown if k not in start]
    assert len(new) > 50 and not any(k.startswith(("mask_decoder", "cpp_net")) for k in new)
    zero = [k for k in new if ".attn.proj." in k or ".mlp.fc2." in k]
    assert len(zero) == 4 * 6 and all(grown[k].abs().max() < 1e-6 for k in zero)  # 6 new blocks, still identity
    assert json.loads((tmp_path / "run" / "config.json").read_text())["model"] == "nano_deep"

    def no_growing(*a, **k):
        raise AssertionError("a resumed run must continue from last.pt, not grow the init weights again")

    monkeypatch.setattr(loop, "grow_model", no_growing)
    train(TrainConfig(**{**cfg.__dict__, "steps": 2}), progress=False)  # resumes at step 1
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    monkeypatch.undo()
    with pytest.raises(ValueError, match="cannot be grown"):
        train(TrainConfig(**{**cfg.__dict__, "out_dir": str(tmp_path / "run2"), "model": "tiny"}), progress=False)
