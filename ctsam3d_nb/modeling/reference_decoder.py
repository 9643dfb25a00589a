"""The CT-SAM3D release's SPADE decoder, re-written for side-by-side benchmarks only.

Not used by the model. It reproduces the structure of the released
``MaskDecoderClickmap`` (``transformer_dim = 256``) so ``benchmarks/bench_model.py``
can measure what our click-path decoder saves, on the same machine, in the
same run:

* five SPADE residual blocks at 2³, 4³, 8³, 16³ (256 channels) and 32³ (128),
  each SPADE layer with its own 128-wide stem (conv 3→128, then 128→C convs
  for γ and β), on the prompt map trilinearly resized for every layer;
  a SPADE-modulated 1×1 shortcut where the width changes;
* between them a stride-2 transposed conv + LayerNorm + GELU, and
  concatenation of the next encoder feature (128 channels);
* a last transposed conv to 64 channels at 64³ and a 3×3×3 conv to the mask.
  (The release ends in 2 sigmoid channels and an unused IoU head; here one
  logit channel, to share our decoder's interface.)

About 32 M parameters and ≈ 250 GFLOP per 64³ click, most of it the 128-wide
SPADE stems and convs at 32³. Plain ``nn.Conv3d``, i.e. PyTorch's own kernel
choice, as the release runs.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm3d

__all__ = ["OriginalSpadeDecoder"]


class _Spade(nn.Module):
    def __init__(self, norm_nc: int, label_nc: int = 3, nhidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Conv3d(label_nc, nhidden, 3, padding=1), nn.ReLU())
        self.mlp_gamma = nn.Conv3d(nhidden, norm_nc, 3, padding=1)
        self.mlp_beta = nn.Conv3d(nhidden, norm_nc, 3, padding=1)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        normalized = F.instance_norm(x, eps=1e-5)
        seg = F.interpolate(seg, size=x.shape[2:], mode="trilinear", align_corners=False)
        actv = self.mlp_shared(seg)
        return normalized * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class _SpadeResBlock(nn.Module):
    def __init__(self, fin: int, fout: int, nhidden: int = 128) -> None:
        super().__init__()
        self.learned_shortcut = fin != fout
        fmid = min(fin, fout)
        self.conv_0 = nn.Conv3d(fin, fmid, 3, padding=1)
        self.conv_1 = nn.Conv3d(fmid, fout, 3, padding=1)
        self.norm_0 = _Spade(fin, nhidden=nhidden)
        self.norm_1 = _Spade(fmid, nhidden=nhidden)
        if self.learned_shortcut:
            self.conv_s = nn.Conv3d(fin, fout, 1, bias=False)
            self.norm_s = _Spade(fin, nhidden=nhidden)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        xs = self.conv_s(self.norm_s(x, seg)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg), 0.2))
        return xs + dx


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose3d(cin, cout, 2, stride=2), LayerNorm3d(cout), nn.GELU())


class OriginalSpadeDecoder(nn.Module):
    """The release's decoder: ``(features, prompt_map) -> logits (B, 1, D, H, W)``.

    Args:
        encoder_channels: encoder feature widths, finest (1/4) first; the release
            uses ``(128, 128, 128, 256)`` and ``dim = 256``.
        dim: width of the deep SPADE blocks (half of it at 32³, a quarter at 64³).
        nhidden: SPADE stem width.

    ``features`` is the encoder's list (finest first; extra entries are ignored),
    ``prompt_map`` is ``(B, 3, D, H, W)``.
    """

    def __init__(self, encoder_channels: Sequence[int] = (128, 128, 128, 256), dim: int = 256,
                 nhidden: int = 128) -> None:
        super().__init__()
        e = tuple(encoder_channels)
        half, quarter = dim // 2, dim // 4
        self.spades = nn.ModuleList([
            _SpadeResBlock(e[3], dim, nhidden),
            _SpadeResBlock(half + e[2], dim, nhidden),
            _SpadeResBlock(half + e[1], dim, nhidden),
            _SpadeResBlock(half + e[0], dim, nhidden),
            _SpadeResBlock(half, half, nhidden),
        ])
        self.ups = nn.ModuleList([_up(dim, half) for _ in range(4)] + [_up(half, quarter)])
        self.head = nn.Conv3d(quarter, 1, 3, padding=1)

    def forward(self, features: Sequence[torch.Tensor], prompt_map: torch.Tensor) -> torch.Tensor:
        x = features[3]
        for i, (spade, up) in enumerate(zip(self.spades, self.ups)):
            if 1 <= i <= 3:
                x = torch.cat([x, features[3 - i]], 1)
            x = up(spade(x, prompt_map))
        return self.head(x)
