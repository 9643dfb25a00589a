"""Grow a trained model into a deeper encoder without changing what it computes.

The shipped ``nano`` stopped improving with more training of the same recipe (docs/model_card.md, sessions
21-22) while it still underfits its own training distribution (one click: patch Dice 0.651 on training samples,
session 12): the signs of a model short of capacity. :func:`grow_model` gives it more encoder blocks *and*
keeps every trained weight: the blocks a stage gains are appended after its trained ones with their two
residual branches' output layers (``attn.proj`` and ``mlp.fc2``) set to zero, so each new block is the
identity and the grown model's masks are exactly the small one's until training moves them (a Net2Net /
zero-init-residual start).
The extra blocks sit at the coarse scales (1/8 to 1/32 of the patch), where a block costs little:
``nano_deep`` encodes a patch in about 1.5x the time of ``nano`` (19 vs 13 ms on the 2-core CPU), a small
share of a click (the decoder takes 80-120 ms).

Only ``encoder_depths`` (and the name) may differ between the two configurations, and no stage may shrink.
"""
from __future__ import annotations

import torch

from .build import MODEL_CONFIGS, build_model
from .config import ModelConfig
from .ctsam3d import CTSAM3D

__all__ = ["grow_model", "growable"]


def _config(config: ModelConfig | str) -> ModelConfig:
    return MODEL_CONFIGS[config] if isinstance(config, str) else config


def growable(src: ModelConfig, dst: ModelConfig | str) -> str | None:
    """``None`` when a ``src`` model can be grown into ``dst`` (a config or a name of ``MODEL_CONFIGS``; an
    unknown name is a KeyError), else why not (one sentence)."""
    dst = _config(dst)
    a, b = src.to_dict(), dst.to_dict()
    differ = sorted(k for k in a if k not in ("name", "encoder_depths") and a[k] != b[k])
    if differ:
        return (f"'{src.name}' and '{dst.name}' differ in more than encoder depth ({', '.join(differ)}); "
                "only extra encoder blocks can be added to trained weights")
    if any(n < o for o, n in zip(src.encoder_depths, dst.encoder_depths)):
        return (f"'{dst.name}' has fewer encoder blocks in a stage than '{src.name}' "
                f"({dst.encoder_depths} vs {src.encoder_depths}); a trained model is only grown, never cut")
    return None


def grow_model(src: CTSAM3D, config: ModelConfig | str) -> CTSAM3D:
    """A ``config`` model that computes exactly what ``src`` computes (float32, on the CPU, in ``src``'s mode).

    Every weight of ``src`` is copied; each stage's extra blocks come after its trained ones, initialised as
    usual except the output layers of their attention and MLP branches, which are zero (identity blocks).

    Raises:
        ValueError: the configurations differ in more than ``encoder_depths``, or a stage would lose blocks.
    """
    why = growable(src.config, config)
    if why is not None:
        raise ValueError(why)
    dst = build_model(_config(config))
    state = dst.state_dict()
    state.update({k: v.detach().float().cpu() for k, v in src.state_dict().items()})
    for stage, (old, new) in enumerate(zip(src.config.encoder_depths, dst.config.encoder_depths)):
        for j in range(old, new):
            for layer in ("attn.proj", "mlp.fc2"):
                for p in ("weight", "bias"):
                    state[f"image_encoder.stages.{stage}.{j}.{layer}.{p}"] = torch.zeros_like(
                        state[f"image_encoder.stages.{stage}.{j}.{layer}.{p}"])
    dst.load_state_dict(state, strict=True)  # strict: a key of src the grown model lacks is an error
    return dst.train(src.training)  # eval stays eval: the stem's BatchNorm must not switch to batch statistics
