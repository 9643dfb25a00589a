"""3D ResT-v2 image encoder (hierarchical transformer with spatial-reduction attention).

A 64³ patch (1 channel, intensities in [0, 1]) becomes four feature maps at
1/4, 1/8, 1/16 and 1/32 of its size (16³, 8³, 4³, 2³), each projected by a 1×1
convolution to the width the mask decoder expects.

Layout of one stage: an embedding (the conv stem for stage 1, a stride-2 3×3×3
conv for stages 2-4) followed by a pixel-attention gate and a LayerNorm, then
``depth`` pre-norm transformer blocks. Attention reduces keys and values with
a depthwise strided conv (ratio ``sr``: 16³ tokens attend to 2³ keys in stage 1),
and adds back the values upsampled to the query grid (ResT-v2's "up" branch,
trilinear as in the CT-SAM3D release), which restores what the reduction threw
away.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import MLP, Conv3d, DropPath

__all__ = ["ImageEncoder3D"]


class PixelAttention(nn.Module):
    """Positional gate ``x * sigmoid(depthwise_conv3x3x3(x))`` (ResT's PA)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = Conv3d(dim, dim, 3, padding=1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv(x))


def _to_tokens(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(2).transpose(1, 2)  # (B, C, D, H, W) -> (B, N, C)


def _to_grid(x: torch.Tensor, dhw: Sequence[int]) -> torch.Tensor:
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *dhw)


class ConvStem(nn.Module):
    """Stage-1 embedding: two stride-2 3×3×3 convs (BN, ReLU), 1×1 conv, PA gate, LayerNorm.

    ``(B, in_chans, D, H, W) -> tokens (B, D/4*H/4*W/4, dim)``.
    """

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        mid = dim // 2
        self.proj = nn.Sequential(
            Conv3d(in_chans, mid, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            Conv3d(mid, dim, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm3d(dim),
            nn.ReLU(inplace=True),
            Conv3d(dim, dim, 1),
        )
        self.pa = PixelAttention(dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        x = self.pa(self.proj(x))
        return self.norm(_to_tokens(x)), tuple(x.shape[2:])


class PatchEmbed(nn.Module):
    """Stage 2-4 embedding: stride-2 3×3×3 conv, PA gate, LayerNorm (halves D, H, W)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.proj = Conv3d(cin, cout, 3, stride=2, padding=1)
        self.pa = PixelAttention(cout)
        self.norm = nn.LayerNorm(cout, eps=1e-6)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int, int]]:
        x = self.pa(self.proj(x))
        return self.norm(_to_tokens(x)), tuple(x.shape[2:])


class ReducedAttention(nn.Module):
    """Multi-head attention whose keys/values come from a grid shrunk ``sr`` times per axis."""

    def __init__(self, dim: int, heads: int, sr: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads, self.sr = heads, sr
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        if sr > 1:
            # kernel sr+1, stride sr, padding sr//2: a grid of n (a multiple of sr) becomes n/sr.
            self.sr_conv = Conv3d(dim, dim, sr + 1, stride=sr, padding=sr // 2, groups=dim)
            self.sr_norm = nn.LayerNorm(dim, eps=1e-6)
        self.up_norm = nn.LayerNorm(dim, eps=1e-6)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, dhw: tuple[int, int, int]) -> torch.Tensor:
        b, n, c = x.shape
        h, hd = self.heads, c // self.heads
        q = self.q(x).reshape(b, n, h, hd).transpose(1, 2)
        kv_in, kv_dhw = x, dhw
        if self.sr > 1:
            g = self.sr_conv(_to_grid(x, dhw))
            kv_dhw = tuple(g.shape[2:])
            kv_in = self.sr_norm(_to_tokens(g))
        m = kv_in.shape[1]
        k, v = self.kv(kv_in).reshape(b, m, 2, h, hd).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c)
        v_grid = v.transpose(2, 3).reshape(b, c, *kv_dhw)
        if self.sr > 1:
            v_grid = F.interpolate(v_grid, size=dhw, mode="trilinear", align_corners=False)
        return self.proj(out + self.up_norm(_to_tokens(v_grid)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, sr: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ReducedAttention(dim, heads, sr)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, mlp_ratio)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, dhw: tuple[int, int, int]) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), dhw))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ImageEncoder3D(nn.Module):
    """Hierarchical 3D transformer encoder (ResT-v2 style).

    Args:
        in_chans: image channels (1 for CT).
        dims: widths of the four stages (tiny: 96, 192, 384, 768).
        depths: transformer blocks per stage (tiny: 1, 2, 6, 2).
        heads: attention heads per stage (1, 2, 4, 8).
        sr_ratios: key/value spatial reduction per stage (8, 4, 2, 1).
        out_channels: widths after the 1×1 projections, finest first (the release: 128, 128, 128, 256).
        mlp_ratio: hidden width of the token MLP relative to the stage width.
        drop_path_rate: stochastic depth, linearly increasing over all blocks.

    Shapes:
        ``(B, in_chans, D, H, W) -> [(B, out_channels[i], D/2**(i+2), H/2**(i+2), W/2**(i+2)) for i in 0..3]``.
        D, H and W must be multiples of ``32 * max(1, sr_ratios[3])``; for 64³ the
        outputs are 16³, 8³, 4³, 2³.
    """

    def __init__(
        self,
        in_chans: int = 1,
        dims: Sequence[int] = (96, 192, 384, 768),
        depths: Sequence[int] = (1, 2, 6, 2),
        heads: Sequence[int] = (1, 2, 4, 8),
        sr_ratios: Sequence[int] = (8, 4, 2, 1),
        out_channels: Sequence[int] = (128, 128, 128, 256),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        for name, v in (("dims", dims), ("depths", depths), ("heads", heads),
                        ("sr_ratios", sr_ratios), ("out_channels", out_channels)):
            if len(v) != 4:
                raise ValueError(f"{name} needs 4 values (one per stage), got {tuple(v)}")
        self.dims = tuple(dims)
        self.out_channels = tuple(out_channels)
        self.sr_ratios = tuple(sr_ratios)
        self.embeds = nn.ModuleList(
            [ConvStem(in_chans, dims[0])] + [PatchEmbed(dims[i - 1], dims[i]) for i in range(1, 4)]
        )
        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = nn.ModuleList()
        k = 0
        for i in range(4):
            self.stages.append(nn.ModuleList(
                [Block(dims[i], heads[i], sr_ratios[i], mlp_ratio, dpr[k + j]) for j in range(depths[i])]
            ))
            k += depths[i]
        self.projections = nn.ModuleList([Conv3d(dims[i], out_channels[i], 1) for i in range(4)])
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.dim() != 5:
            raise ValueError(f"image must be (B, C, D, H, W), got shape {tuple(x.shape)}")
        feats = []
        grid = x
        for embed, blocks, proj in zip(self.embeds, self.stages, self.projections):
            tokens, dhw = embed(grid)
            for blk in blocks:
                tokens = blk(tokens, dhw)
            grid = _to_grid(tokens, dhw)
            feats.append(proj(grid))
        return feats


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
