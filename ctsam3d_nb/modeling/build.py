"""Model hyper-parameters and the ``nano`` / ``nano_deep`` / ``tiny`` / ``base`` registry.

Example:
    >>> model = build_model("nano")
    >>> model = build_model("tiny", decoder_image_skip=False)  # override a field
"""
from __future__ import annotations

import dataclasses

from .config import ModelConfig
from .cpp import CrossPatchPromptNet
from .ctsam3d import CTSAM3D
from .image_encoder import ImageEncoder3D
from .mask_decoder import SpadeMaskDecoder

__all__ = ["ModelConfig", "MODEL_CONFIGS", "build_model"]

# Trainable on a 2-core CPU in tens of minutes; ~50 ms per click.
_NANO = ModelConfig(
    name="nano",
    encoder_dims=(32, 64, 128, 256),
    encoder_depths=(1, 1, 2, 1),
    encoder_heads=(1, 2, 4, 8),
    encoder_out_channels=(32, 32, 64, 128),
    decoder_widths=(128, 64, 32, 32, 16, 16),
    decoder_spade_hidden=(32, 32, 16, 16, 8, 16),
    cpp_widths=(8, 16, 32, 64, 128),
)

MODEL_CONFIGS: dict[str, ModelConfig] = {
    "nano": _NANO,
    # nano with the paper's encoder depths (4.2 M encoder parameters instead of 2.5 M): grown from the trained nano
    # by modeling.grow.grow_model (the new blocks start as the identity), for the capacity run of
    # docs/model_card.md (session 24). A patch encodes in ~19 ms instead of 13 on the 2-core CPU.
    "nano_deep": dataclasses.replace(_NANO, name="nano_deep", encoder_depths=(1, 2, 6, 2)),
    # The paper's encoder (ResT-v2 tiny, ~37 M parameters) with our fast decoder.
    "tiny": ModelConfig(
        name="tiny",
        encoder_dims=(96, 192, 384, 768),
        encoder_depths=(1, 2, 6, 2),
        encoder_heads=(1, 2, 4, 8),
        encoder_out_channels=(64, 64, 128, 256),
        decoder_widths=(256, 128, 64, 32, 16, 16),
        decoder_spade_hidden=(64, 64, 32, 16, 8, 16),
        cpp_widths=(16, 32, 64, 128, 256),
    ),
    # Deeper encoder (ResT-v2 base depths) and a wider decoder, for GPU training.
    "base": ModelConfig(
        name="base",
        encoder_dims=(96, 192, 384, 768),
        encoder_depths=(2, 2, 18, 2),
        encoder_heads=(1, 2, 4, 8),
        encoder_out_channels=(128, 128, 128, 256),
        decoder_widths=(256, 128, 96, 48, 32, 32),
        decoder_spade_hidden=(64, 64, 48, 32, 16, 32),
        cpp_widths=(16, 32, 64, 128, 256),
        drop_path_rate=0.1,
    ),
}


def build_model(name_or_config: str | ModelConfig = "nano", **overrides) -> CTSAM3D:
    """Build a randomly initialised :class:`CTSAM3D`.

    Args:
        name_or_config: a key of :data:`MODEL_CONFIGS` or a :class:`ModelConfig`.
        **overrides: fields to replace (``dataclasses.replace``), e.g. ``decoder_image_skip=False``.

    Raises:
        KeyError: unknown name (the message lists the valid ones).
    """
    if isinstance(name_or_config, ModelConfig):
        cfg = name_or_config
    else:
        try:
            cfg = MODEL_CONFIGS[name_or_config]
        except KeyError:
            raise KeyError(
                f"unknown model config {name_or_config!r}; valid names: {', '.join(MODEL_CONFIGS)}"
            ) from None
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    encoder = ImageEncoder3D(
        in_chans=cfg.in_channels,
        dims=cfg.encoder_dims,
        depths=cfg.encoder_depths,
        heads=cfg.encoder_heads,
        sr_ratios=cfg.encoder_sr_ratios,
        out_channels=cfg.encoder_out_channels,
        mlp_ratio=cfg.encoder_mlp_ratio,
        drop_path_rate=cfg.drop_path_rate,
    )
    decoder = SpadeMaskDecoder(
        encoder_channels=cfg.encoder_out_channels,
        widths=cfg.decoder_widths,
        spade_hidden=cfg.decoder_spade_hidden,
        spade_kernel=cfg.decoder_spade_kernel,
        image_skip=cfg.decoder_image_skip,
        light_full_res=cfg.decoder_light_full_res,
    )
    cpp = CrossPatchPromptNet(cfg.cpp_widths, in_channels=2 * cfg.in_channels + 1, res_units=cfg.cpp_res_units)
    return CTSAM3D(cfg, encoder, decoder, cpp)
