"""PSAP prompts: clicks as Gaussian maps, stacked with the previous mask.

A click is not embedded as a token: it is drawn into a full-resolution map
aligned voxel for voxel with the image patch, one channel for positive and one
for negative clicks. The previous prediction (probabilities) is a third
channel. The decoder sees this ``[previous mask, positive, negative]`` map at
every scale (:func:`prompt_pyramid`), hence "progressively and spatially
aligned prompts".

Coordinates are voxel indices ``(z, y, x)`` inside the patch, in numpy array
order, like the rest of ``ctsam3d_nb``. Maps are ``(C, D, H, W)`` float32.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "gaussian_kernel",
    "draw_gaussian_",
    "click_gaussians",
    "build_prompt_map",
    "build_prompt_maps",
    "prompt_pyramid",
]


def _size3(size) -> tuple[int, int, int]:
    if isinstance(size, (int, np.integer)):
        return (int(size),) * 3
    size = tuple(int(s) for s in size)
    if len(size) != 3:
        raise ValueError(f"size must be an int or a (D, H, W) triple, got {size}")
    return size


@functools.lru_cache(maxsize=16)
def _kernel_cpu(sigma: float, radius: int) -> torch.Tensor:
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    d2 = r[:, None, None] ** 2 + r[None, :, None] ** 2 + r[None, None, :] ** 2
    k = torch.exp(-d2 / (2.0 * sigma * sigma))
    k[d2 > radius * radius] = 0.0  # spherical cut: exactly zero beyond the radius
    return k.to(torch.float32)


def gaussian_kernel(sigma: float = 2.0, radius: int = 8) -> torch.Tensor:
    """The click stamp: ``(2r+1)³`` Gaussian, value 1 at the centre, 0 beyond ``radius`` voxels.

    Cached; do not modify the returned tensor in place.
    """
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 voxels, got {sigma}")
    if int(radius) != radius or radius < 0:
        raise ValueError(f"radius must be a non-negative integer number of voxels, got {radius}")
    return _kernel_cpu(float(sigma), int(radius))


def draw_gaussian_(
    channel: torch.Tensor, center_zyx: Sequence[float], sigma: float = 2.0, radius: int = 8
) -> torch.Tensor:
    """Max-combine one click Gaussian into ``channel`` (``(D, H, W)``), in place.

    Only the ``(2r+1)³`` box around the click is touched, so a click costs
    microseconds whatever the patch size. ``center_zyx`` is rounded to the
    nearest voxel; a centre outside the patch draws the part of its Gaussian
    that falls inside (nothing if it is farther than ``radius``).

    Returns:
        ``channel`` (for chaining).
    """
    if channel.dim() != 3:
        raise ValueError(f"channel must be (D, H, W), got shape {tuple(channel.shape)}")
    k = gaussian_kernel(sigma, radius)
    r = int(radius)
    c = [int(np.rint(float(v))) for v in center_zyx]
    if len(c) != 3:
        raise ValueError(f"a click needs 3 coordinates (z, y, x), got {len(c)}")
    dst, src = [], []
    for ci, n in zip(c, channel.shape):
        lo, hi = max(ci - r, 0), min(ci + r + 1, n)
        if lo >= hi:
            return channel  # the whole stamp lies outside the patch
        dst.append(slice(lo, hi))
        src.append(slice(lo - (ci - r), hi - (ci - r)))
    stamp = k[tuple(src)].to(device=channel.device, dtype=channel.dtype)
    view = channel[tuple(dst)]
    torch.maximum(view, stamp, out=view)
    return channel


def _points_labels(points_zyx, labels) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(points_zyx, dtype=np.float64).reshape(-1, 3) if len(points_zyx) else np.zeros((0, 3))
    lab = np.asarray(labels).reshape(-1)
    if lab.dtype == bool:
        lab = lab.astype(np.int64)
    if pts.shape[0] != lab.shape[0]:
        raise ValueError(f"got {pts.shape[0]} points but {lab.shape[0]} labels; give one label per point")
    bad = ~np.isin(lab, (-1, 0, 1))
    if bad.any():
        raise ValueError(
            f"labels must be 1/True (positive), 0/False (negative) or -1 (ignored), got {lab[bad][:5]}"
        )
    return pts, lab.astype(np.int64)


def click_gaussians(
    points_zyx,
    labels,
    size=64,
    sigma: float = 2.0,
    radius: int = 8,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Positive and negative click maps.

    Args:
        points_zyx: ``(N, 3)`` voxel indices ``(z, y, x)`` in the patch (rounded).
        labels: ``(N,)``; 1/True positive, 0/False negative, -1 ignored (padding).
        size: patch size, an int or ``(D, H, W)``.
        sigma: Gaussian standard deviation in voxels.
        radius: the Gaussian is cut (set to 0) beyond this distance in voxels.
        device: where to build the map (default CPU).

    Returns:
        ``(2, D, H, W)`` float32: channel 0 positive, channel 1 negative. Each
        channel is the voxel-wise max of its clicks' Gaussians, so it peaks at
        exactly 1 on every click voxel.

    Example:
        >>> m = click_gaussians([(32, 10, 40)], [1])
        >>> m.shape, float(m[0, 32, 10, 40]), float(m[1].max())
        (torch.Size([2, 64, 64, 64]), 1.0, 0.0)
    """
    pts, lab = _points_labels(points_zyx, labels)
    maps = torch.zeros((2,) + _size3(size), dtype=torch.float32, device=device)
    for p, label in zip(pts, lab):
        if label >= 0:
            draw_gaussian_(maps[0 if label == 1 else 1], p, sigma, radius)
    return maps


def build_prompt_map(
    prev_mask_prob,
    points_zyx,
    labels,
    size=64,
    sigma: float = 2.0,
    radius: int = 8,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The 3-channel PSAP map ``[previous mask, positive clicks, negative clicks]``.

    Args:
        prev_mask_prob: ``(D, H, W)`` (or ``(1, D, H, W)``) probabilities of the
            previous prediction on this patch, numpy or torch; ``None`` before the
            first click (the channel is then zeros).
        points_zyx, labels, size, sigma, radius: as in :func:`click_gaussians`.
        device: defaults to the device of ``prev_mask_prob`` if it is a tensor, else CPU.

    Returns:
        ``(3, D, H, W)`` float32.
    """
    shape = _size3(size)
    if device is None and isinstance(prev_mask_prob, torch.Tensor):
        device = prev_mask_prob.device
    out = torch.zeros((3,) + shape, dtype=torch.float32, device=device)
    if prev_mask_prob is not None:
        m = torch.as_tensor(prev_mask_prob)
        if m.dim() == 4 and m.shape[0] == 1:
            m = m[0]
        if tuple(m.shape) != shape:
            raise ValueError(f"prev_mask_prob must have shape {shape}, got {tuple(m.shape)}")
        out[0] = m.to(device=out.device, dtype=torch.float32)
    out[1:] = click_gaussians(points_zyx, labels, shape, sigma, radius, device=out.device)
    return out


def build_prompt_maps(
    prev_masks,
    points_list: Sequence,
    labels_list: Sequence,
    size=64,
    sigma: float = 2.0,
    radius: int = 8,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Batched :func:`build_prompt_map`.

    Args:
        prev_masks: ``(B, D, H, W)`` or ``(B, 1, D, H, W)`` probabilities, or ``None``
            (zeros for every sample).
        points_list: ``B`` arrays of ``(N_b, 3)`` voxel indices ``(z, y, x)``.
        labels_list: ``B`` arrays of ``(N_b,)`` labels (1 pos, 0 neg, -1 ignored).

    Returns:
        ``(B, 3, D, H, W)`` float32.
    """
    if len(points_list) != len(labels_list):
        raise ValueError(f"{len(points_list)} point sets but {len(labels_list)} label sets")
    b = len(points_list)
    if prev_masks is not None:
        pm = torch.as_tensor(prev_masks)
        if pm.dim() == 5:
            pm = pm[:, 0]
        if pm.shape[0] != b:
            raise ValueError(f"prev_masks has batch {pm.shape[0]} but {b} point sets were given")
        if device is None:
            device = pm.device
    maps = [
        build_prompt_map(None if prev_masks is None else pm[i], points_list[i], labels_list[i],
                         size, sigma, radius, device)
        for i in range(b)
    ]
    return torch.stack(maps)


def prompt_pyramid(prompt_map: torch.Tensor, n_levels: int) -> list[torch.Tensor]:
    """Resize a ``(B, 3, D, H, W)`` PSAP map to ``n_levels`` scales, finest first.

    Level ``k`` has spatial size ``(D, H, W) / 2**k``. The channels are reduced
    differently on purpose:

    * previous mask (channel 0): average over each ``2^k`` cell, i.e. exact
      area interpolation. The value is the fraction of the cell the previous
      mask covers, so a coarse level sees a soft, unbiased occupancy.
    * clicks (channels 1, 2): maximum over each cell. A σ = 2 Gaussian holds
      about 125 voxel-units of mass; averaged into a 16³ or 32³ cell it would
      shrink to 0.03 or less, and point sampling (trilinear, what the release
      does) can miss the peak entirely. Max-pooling keeps the peak at 1 in the
      cell that contains the click, so a click is equally visible, and at the
      right place, at every scale.

    Each level is computed from the previous one (avg of avg = avg, max of max =
    max), so the pyramid costs little more than one pass over the full map.
    """
    if prompt_map.dim() != 5 or prompt_map.shape[1] != 3:
        raise ValueError(f"prompt_map must be (B, 3, D, H, W), got {tuple(prompt_map.shape)}")
    levels = [prompt_map]
    mask, clicks = prompt_map[:, :1], prompt_map[:, 1:]
    for _ in range(1, n_levels):
        mask = F.avg_pool3d(mask, 2)
        clicks = F.max_pool3d(clicks, 2)
        levels.append(torch.cat([mask, clicks], 1))
    return levels
