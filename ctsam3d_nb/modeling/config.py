"""`ModelConfig`: every hyper-parameter of a :class:`~ctsam3d_nb.modeling.ctsam3d.CTSAM3D`.

A file of its own so that both the model (which keeps its config) and the builders in
:mod:`.build` (which read it) import it, without importing each other.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["ModelConfig"]

Ints = tuple[int, ...]


@dataclass(frozen=True)
class ModelConfig:
    name: str  # registry name, stored with checkpoints
    encoder_dims: Ints  # widths of the 4 transformer stages (paper/tiny: 96, 192, 384, 768)
    encoder_depths: Ints  # blocks per stage (tiny: 1, 2, 6, 2)
    encoder_heads: Ints  # attention heads per stage (1, 2, 4, 8)
    encoder_out_channels: Ints  # 1×1 projections of the 4 features, finest first (release: 128,128,128,256)
    decoder_widths: Ints  # decoder width per scale, coarsest first: 1/32, 1/16, 1/8, 1/4, 1/2, 1/1
    decoder_spade_hidden: Ints  # SPADE stem width per scale, same order
    cpp_widths: Ints  # cross-patch U-Net widths, finest first (release: 16, 32, 64, 128, 256)
    encoder_sr_ratios: Ints = (8, 4, 2, 1)  # key/value spatial reduction per stage
    encoder_mlp_ratio: float = 4.0  # token-MLP hidden width / stage width
    drop_path_rate: float = 0.0  # stochastic depth of the encoder (0 = off)
    decoder_spade_kernel: int = 3  # kernel of the SPADE stem convs
    decoder_image_skip: bool = True  # feed the raw image to the 2 finest decoder scales (not in the release)
    decoder_light_full_res: bool = False  # True: one SPADE+conv instead of a residual block at full resolution (-4 ms)
    cpp_res_units: int = 2  # conv layers per CPP encoder residual unit
    patch_size: int = 64  # cubic patch edge in voxels (1.5 mm each: 96 mm)
    in_channels: int = 1  # image channels (CT: 1)
    sigma: float = 2.0  # click Gaussian std in voxels
    click_radius: int = 8  # click Gaussian cut-off radius in voxels
    cpp_sigma: float = 2.0  # std of the CPP target heatmap in voxels (like a click)

    def __post_init__(self) -> None:
        lengths = {"encoder_dims": 4, "encoder_depths": 4, "encoder_heads": 4, "encoder_sr_ratios": 4,
                   "encoder_out_channels": 4, "decoder_widths": 6, "decoder_spade_hidden": 6,
                   "cpp_widths": 5}
        for field, n in lengths.items():
            value = tuple(getattr(self, field))
            object.__setattr__(self, field, value)
            if len(value) != n:
                raise ValueError(f"ModelConfig.{field} needs {n} values, got {value}")
        if self.patch_size % 32:
            raise ValueError(f"patch_size must be a multiple of 32, got {self.patch_size}")

    def to_dict(self) -> dict:
        """Plain dict (JSON-friendly) of all fields; ``ModelConfig(**d)`` rebuilds it."""
        return dataclasses.asdict(self)
