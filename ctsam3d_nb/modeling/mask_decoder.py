"""The click-path mask decoder: a U-shaped SPADE decoder built for CPU speed.

Semantics kept from CT-SAM3D: start at the deepest encoder feature; at every
scale a SPADE residual block modulates the features with the PSAP prompt map
at that scale; a stride-2 transposed conv goes up one scale and the next
encoder feature is concatenated; the last stage is at full resolution; a
3×3×3 conv gives the mask logits.

What differs, and why (the release's decoder costs ≈ 250 GFLOP per 64³ click,
seconds on the 2-core CPU; see ``reference_decoder.py`` and
``benchmarks/bench_model.py``):

* Narrow high-resolution stages. Cost grows with voxels × channels², and the
  1/2 and full-resolution grids hold 99 % of the voxels; the release runs 128
  channels at 32³ and 64 at 64³. Here the widths fall as resolution rises
  (``nano``: 128/64/32/32/16/16 from 1/32 to full resolution).
* The full-resolution stage runs in space-to-depth layout (see
  :class:`SpadeMaskDecoder`): lossless, but on 1/8 of the voxels. On this CPU
  a plain 64³ stage is memory-bound and hits oneDNN's slow few-channel shapes
  (≈ 50 ms for 8 channels), the same stage folded to 32³ takes ≈ 10 ms.
* One SPADE stem per scale. The release computes a 128-wide stem per SPADE
  layer (three per block, each on a freshly resized prompt). Here a
  :class:`SpadeStem` turns the prompt at one scale into a narrow hidden map
  once per click, and a single conv emits every (γ, β) pair used at that scale.
* The prompt pyramid is built once per click by :func:`prompt_pyramid`
  (average-pool for the mask, max-pool for clicks, so a click never vanishes
  at coarse scales, which the release's trilinear point sampling allows).
* Encoder features are an input: a click re-runs only this module.
* Every conv goes through :func:`conv3d` / :class:`UpConv3d`, which call
  oneDNN on CPU where PyTorch would fall back to its slow reference kernel.
* Image skip (``image_skip``, not in the release): the raw patch,
  space-to-depth, is concatenated at the two finest stages. The encoder's
  finest feature is at 1/4 resolution (6 mm cells at 1.5 mm voxels); narrow
  high-resolution stages cannot carry much sub-cell detail up from there, so
  the decoder reads boundaries from the image itself, for 8 extra channels on
  the 1/2 grid.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .common import Conv3d, UpConv3d, conv3d, pixel_shuffle_3d, pixel_unshuffle_3d
from .prompt import prompt_pyramid

__all__ = ["SpadeStem", "SpadeResBlock", "SpadeConvBlock", "SpadeMaskDecoder", "spade_modulate"]


def spade_modulate(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """SPADE: parameter-free instance norm of ``x``, then ``x̂ · scale + shift``.

    ``scale`` is ``1 + γ`` (:class:`SpadeStem` returns it that way), so this is
    the usual ``x̂ · (1 + γ) + β``. All three are ``(B, C, D, H, W)``.
    """
    return torch.addcmul(shift, F.instance_norm(x, eps=1e-5), scale)


class SpadeStem(nn.Module):
    """Prompt map at one scale -> ``(1 + γ, β)`` for every SPADE layer at that scale.

    ``conv(prompt_channels → hidden) → ReLU → conv(hidden → 2·Σ norm_channels)``,
    i.e. the SPADE ``mlp_shared`` followed by all ``mlp_gamma``/``mlp_beta``
    convs of the scale fused into one conv. Computed once per click and scale.

    Args:
        norm_channels: channel count of each SPADE layer fed by this stem, in order.
        hidden: width of the shared hidden map.
        kernel: kernel size of both convs.
        prompt_channels: 3 for ``[previous mask, positive, negative]``.
    """

    def __init__(self, norm_channels: Sequence[int], hidden: int, kernel: int = 3,
                 prompt_channels: int = 3) -> None:
        super().__init__()
        self.norm_channels = tuple(int(c) for c in norm_channels)
        self.shared = Conv3d(prompt_channels, hidden, kernel, padding=kernel // 2)
        self.head = Conv3d(hidden, 2 * sum(self.norm_channels), kernel, padding=kernel // 2)
        offset = torch.cat([torch.cat([torch.ones(c), torch.zeros(c)]) for c in self.norm_channels])
        self.register_buffer("_one_plus", offset, persistent=False)

    def forward(self, prompt: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(B, 3, d, h, w) -> [(scale_i, shift_i)]``, each ``(B, norm_channels[i], d, h, w)``."""
        hid = F.relu(self.shared(prompt), inplace=True)
        # "1 +" folded into the bias: the parameters still are γ and β, the add is free.
        out = conv3d(hid, self.head.weight, self.head.bias + self._one_plus, 1, self.head.padding)
        chunks = out.split([c for n in self.norm_channels for c in (n, n)], dim=1)
        return [(chunks[2 * i], chunks[2 * i + 1]) for i in range(len(self.norm_channels))]


class SpadeResBlock(nn.Module):
    """SPADE residual block: ``skip(x) + conv1(act(SPADE(conv0(act(SPADE(x))))))``.

    ``act`` is LeakyReLU(0.2); ``skip`` is the identity, or a 1×1 conv when
    ``fin != fout``. Its two SPADE layers take ``fin`` and ``fout`` channels
    (see :attr:`norm_channels`); their modulations come from the scale's stem.
    """

    def __init__(self, fin: int, fout: int) -> None:
        super().__init__()
        self.conv0 = Conv3d(fin, fout, 3, padding=1)
        self.conv1 = Conv3d(fout, fout, 3, padding=1)
        self.shortcut = Conv3d(fin, fout, 1, bias=False) if fin != fout else None
        self.norm_channels = (fin, fout)

    def forward(self, x: torch.Tensor, mods: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        skip = x if self.shortcut is None else self.shortcut(x)
        dx = self.conv0(F.leaky_relu_(spade_modulate(x, *mods[0]), 0.2))
        dx = self.conv1(F.leaky_relu_(spade_modulate(dx, *mods[1]), 0.2))
        return dx.add_(skip)


class SpadeConvBlock(nn.Module):
    """Light full-resolution stage: ``conv(act(SPADE(x)))``, one SPADE layer of ``fin`` channels.

    Optional replacement for the full-resolution residual block
    (``light_full_res``): one SPADE layer and one conv instead of two each.
    """

    def __init__(self, fin: int, fout: int) -> None:
        super().__init__()
        self.conv = Conv3d(fin, fout, 3, padding=1)
        self.norm_channels = (fin,)

    def forward(self, x: torch.Tensor, mods: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        return self.conv(F.leaky_relu_(spade_modulate(x, *mods[0]), 0.2))


class SpadeMaskDecoder(nn.Module):
    """U-shaped SPADE decoder from cached encoder features to 64³ mask logits.

    Scales, coarsest first: 1/32, 1/16, 1/8 and 1/4 (each with the matching
    encoder feature concatenated), 1/2, and full resolution. The full-resolution
    stage runs in space-to-depth layout: its input, the prompt map and the image
    are folded losslessly from ``P³ × C`` to ``(P/2)³ × 8C``, and the head is a
    sub-voxel conv (ESPCN-style) emitting 8 logits per ``2³`` block, shuffled
    back to ``P³``. All full-resolution detail is kept, but every conv runs on
    1/8 of the voxels: on this CPU any op on a 64³ tensor costs milliseconds in
    memory traffic alone, and oneDNN is far less efficient on the few-channel,
    many-voxel shapes a plain 64³ stage would need (measured: a 64³ SPADE stage
    of 8 channels ≈ 50 ms; the same stage in space-to-depth form ≈ 10 ms).

    Args:
        encoder_channels: widths of the encoder features, finest (1/4) first.
        widths: decoder width at each of the six scales, coarsest first
            (1/32, 1/16, 1/8, 1/4, 1/2, 1/1); the 1/1 width is the width of the
            space-to-depth stage on the 1/2 grid.
        spade_hidden: hidden width of the SPADE stem at each scale (int or 6 values).
        spade_kernel: kernel size of the SPADE stem convs.
        image_skip: concatenate the image, space-to-depth (8 channels on the 1/2
            grid), at the two finest scales; ``features`` must then end with the image.
        light_full_res: one SPADE + conv (:class:`SpadeConvBlock`) instead of a
            residual block at full resolution.

    Call:
        ``decoder(features, prompt_map)`` with ``features`` the encoder's list of
        four maps (finest first), plus the ``(B, 1, D, H, W)`` image as a fifth
        entry when ``image_skip``, and ``prompt_map`` ``(B, 3, D, H, W)``
        ``[previous mask, positive, negative]``. Returns logits ``(B, 1, D, H, W)``.
    """

    n_scales = 6

    def __init__(
        self,
        encoder_channels: Sequence[int] = (32, 32, 64, 128),
        widths: Sequence[int] = (128, 64, 32, 32, 16, 16),
        spade_hidden: int | Sequence[int] = (32, 32, 16, 16, 8, 16),
        spade_kernel: int = 3,
        image_skip: bool = True,
        light_full_res: bool = False,
    ) -> None:
        super().__init__()
        if len(encoder_channels) != 4:
            raise ValueError(f"encoder_channels needs 4 values (1/4 .. 1/32), got {tuple(encoder_channels)}")
        if len(widths) != self.n_scales:
            raise ValueError(f"widths needs {self.n_scales} values (1/32 .. 1/1), got {tuple(widths)}")
        if isinstance(spade_hidden, int):
            spade_hidden = (spade_hidden,) * self.n_scales
        self.encoder_channels, self.widths = tuple(encoder_channels), tuple(widths)
        self.image_skip = bool(image_skip)
        # Up-convs into scales 1/16 .. 1/2; the full-resolution stage stays on the 1/2 grid.
        self.ups = nn.ModuleList([UpConv3d(widths[i - 1], widths[i]) for i in range(1, 5)])
        self.blocks, self.stems = nn.ModuleList(), nn.ModuleList()
        img = 8 if self.image_skip else 0
        for lvl in range(self.n_scales):
            if lvl == 0:
                fin = encoder_channels[3]
            elif lvl <= 3:
                fin = widths[lvl] + encoder_channels[3 - lvl]
            else:  # 1/2 and the full-resolution stage: previous output + image (space-to-depth)
                fin = widths[4] + img
            light = light_full_res and lvl == self.n_scales - 1
            block = (SpadeConvBlock if light else SpadeResBlock)(fin, widths[lvl])
            self.blocks.append(block)
            prompt_channels = 3 * 8 if lvl == self.n_scales - 1 else 3
            self.stems.append(SpadeStem(block.norm_channels, spade_hidden[lvl], spade_kernel, prompt_channels))
        self.head = Conv3d(widths[-1], 8, 3, padding=1)  # 8 sub-voxel logits per 2³ block

    def forward(self, features: Sequence[torch.Tensor], prompt_map: torch.Tensor) -> torch.Tensor:
        need = 5 if self.image_skip else 4
        if len(features) < need:
            raise ValueError(
                f"the decoder needs {need} feature maps (the encoder's four"
                + (", then the image" if self.image_skip else "")
                + f"), got {len(features)}; pass the output of CTSAM3D.encode"
            )
        if prompt_map.dim() != 5 or prompt_map.shape[1] != 3:
            raise ValueError(f"prompt_map must be (B, 3, D, H, W), got {tuple(prompt_map.shape)}")
        prompt_map = prompt_map.to(features[0].dtype)
        pyramid = prompt_pyramid(prompt_map, self.n_scales)  # pyramid[k]: 1/2**k resolution
        image_s2d = pixel_unshuffle_3d(features[4], 2) if self.image_skip else None
        x = features[3]
        for lvl in range(self.n_scales):
            if 1 <= lvl <= 4:
                x = self.ups[lvl - 1](x)
            if 1 <= lvl <= 3:
                x = torch.cat([x, features[3 - lvl]], 1)
            elif lvl >= 4 and image_s2d is not None:
                x = torch.cat([x, image_s2d], 1)
            if lvl == self.n_scales - 1:
                prompt = pixel_unshuffle_3d(prompt_map, 2)
            else:
                prompt = pyramid[self.n_scales - 1 - lvl]
            x = self.blocks[lvl](x, self.stems[lvl](prompt))
        return pixel_shuffle_3d(self.head(F.leaky_relu_(x, 0.2)), 2)
