"""Cross-patch prompt (CPP): grow a segmentation from patch U into a neighbouring patch V.

A small residual 3D U-Net reads ``[image U, U's mask probability, image V]``
(3 channels) and regresses a Gaussian heatmap in V that marks where the same
structure continues. At inference the heatmap's peaks become positive clicks
for V (:func:`heatmap_to_clicks`); in training the target is
:func:`cpp_target_heatmap`, a Gaussian at the deepest interior point of the
target's part inside V (zeros if the target does not reach V), with an MSE loss.

Arrays are ``(D, H, W)`` in ``(z, y, x)`` order; points are voxel indices ``(z, y, x)``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..clicks import deepest_point
from .common import Conv3d, UpConv3d
from .prompt import draw_gaussian_

__all__ = ["CrossPatchPromptNet", "cpp_target_heatmap", "heatmap_to_clicks"]


class _ResUnit(nn.Module):
    """``n`` × (conv3 → InstanceNorm → PReLU), the first one strided, plus a (strided) 1×1 skip."""

    def __init__(self, cin: int, cout: int, stride: int = 1, n: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [
                Conv3d(cin if i == 0 else cout, cout, 3, stride=stride if i == 0 else 1, padding=1),
                nn.InstanceNorm3d(cout, affine=True),
                nn.PReLU(),
            ]
        self.body = nn.Sequential(*layers)
        self.skip = (
            nn.Identity() if (cin == cout and stride == 1) else Conv3d(cin, cout, 1, stride=stride)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class _Up(nn.Module):
    """×2 transposed conv (norm, PReLU) then a one-layer residual unit."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = UpConv3d(cin, cout)
        self.norm = nn.InstanceNorm3d(cout, affine=True)
        self.act = nn.PReLU()
        self.res = _ResUnit(cout, cout, n=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res(self.act(self.norm(self.up(x))))


class CrossPatchPromptNet(nn.Module):
    """Residual 3D U-Net for the cross-patch heatmap.

    Args:
        widths: five widths (tiny: 16, 32, 64, 128, 256). The input goes down
            four times by stride-2 residual units (to 1/2, 1/4, 1/8, 1/16) with
            ``widths[0..3]``; ``widths[4]`` is the bottleneck at 1/16.
        in_channels: 3 for ``[image U, mask U, image V]``.
        res_units: conv layers per encoder residual unit.

    Shapes:
        ``(B, 3, D, H, W) -> (B, 1, D, H, W)`` heatmap values (no activation; the
        target is a Gaussian with peak 1). D, H, W must be multiples of 16.
    """

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128, 256), in_channels: int = 3,
                 res_units: int = 2) -> None:
        super().__init__()
        w = tuple(int(v) for v in widths)
        if len(w) != 5:
            raise ValueError(f"widths needs 5 values, got {w}")
        self.widths = w
        self.down = nn.ModuleList(
            [_ResUnit(in_channels if i == 0 else w[i - 1], w[i], stride=2, n=res_units) for i in range(4)]
        )
        self.bottom = _ResUnit(w[3], w[4], n=res_units)
        # Up path: level i takes [upsampled deeper output, skip from down[i]]; the
        # finest level goes back to full resolution with w[0]//2 channels.
        self.ups = nn.ModuleList()
        cin = w[4] + w[3]
        for i in (2, 1, 0):
            self.ups.append(_Up(cin, w[i]))
            cin = w[i] + w[i]
        self.final_up = UpConv3d(cin, max(w[0] // 2, 4))
        self.out = Conv3d(max(w[0] // 2, 4), 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or any(s % 16 for s in x.shape[2:]):
            raise ValueError(f"input must be (B, 3, D, H, W) with D, H, W multiples of 16, got {tuple(x.shape)}")
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        x = self.bottom(x)
        for up, skip in zip(self.ups, skips[::-1]):
            x = up(torch.cat([x, skip], 1))
        x = torch.cat([x, skips[0]], 1)
        return self.out(F.leaky_relu(self.final_up(x), 0.2))


def cpp_target_heatmap(gt_mask_v, sigma: float = 2.0, radius: int | None = None) -> np.ndarray:
    """Training target for CPP: a Gaussian at the deepest point of the target inside V.

    The deepest point is the maximum of the Euclidean distance transform of the
    mask, with the patch border counted as outside, so the point lies in the
    visible part of the structure and away from the cut as well as from the
    organ's boundary (first maximum in C order on ties).

    Args:
        gt_mask_v: ``(D, H, W)`` binary target mask in patch V (numpy or torch).
        sigma: Gaussian standard deviation in voxels.
        radius: cut-off radius in voxels; default ``ceil(4·sigma)``.

    Returns:
        ``(D, H, W)`` float32, peak 1 at the deepest point; all zeros if the
        target is absent from V.
    """
    m = np.asarray(gt_mask_v.detach().cpu() if isinstance(gt_mask_v, torch.Tensor) else gt_mask_v) > 0
    if m.ndim != 3:
        raise ValueError(f"gt_mask_v must be (D, H, W), got shape {m.shape}")
    out = torch.zeros(m.shape, dtype=torch.float32)
    if m.any():
        center = deepest_point(m)  # what the simulated first click takes (measured on the target's box only)
        r = int(np.ceil(4 * sigma)) if radius is None else int(radius)
        draw_gaussian_(out, center, sigma, r)
    return out.numpy()


def heatmap_to_clicks(heatmap, threshold: float = 0.5, min_distance: int = 4,
                      max_clicks: int | None = None) -> np.ndarray:
    """Peaks of a CPP heatmap as positive click positions.

    A voxel is a peak if it is above ``threshold`` and is the maximum of the
    ``(2·min_distance+1)³`` cube around it; on a plateau the first voxel in C order is kept.

    Args:
        heatmap: ``(D, H, W)`` (or with leading singleton axes), numpy or torch.
        threshold: minimum heatmap value of a peak.
        min_distance: peaks closer than this (Chebyshev, voxels) are merged.
        max_clicks: keep at most this many, highest first.

    Returns:
        ``(N, 3)`` int64 voxel indices ``(z, y, x)``, sorted by decreasing value.
    """
    h = torch.as_tensor(heatmap).detach().to("cpu", torch.float32)
    while h.dim() > 3 and h.shape[0] == 1:
        h = h[0]
    if h.dim() != 3:
        raise ValueError(f"heatmap must be (D, H, W), got shape {tuple(h.shape)}")
    k = 2 * int(min_distance) + 1
    pooled = F.max_pool3d(h[None, None], k, stride=1, padding=k // 2)[0, 0]
    cand = torch.nonzero((h >= pooled) & (h > threshold))
    if cand.numel() == 0:
        return np.zeros((0, 3), dtype=np.int64)
    vals = h[cand[:, 0], cand[:, 1], cand[:, 2]]
    order = torch.argsort(-vals, stable=True)
    kept: list[np.ndarray] = []
    for p in cand[order].numpy():  # drop plateau duplicates and too-close peaks
        if all(np.abs(p - q).max() > min_distance for q in kept):
            kept.append(p)
            if max_clicks is not None and len(kept) >= max_clicks:
                break
    return np.asarray(kept, dtype=np.int64).reshape(-1, 3)
