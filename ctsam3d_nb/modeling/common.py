"""Shared building blocks, and the CPU fast path for 3D convolutions.

Why the fast path exists: on CPU, PyTorch picks its convolution kernel with a
size heuristic. For a single small 3D input (batch 1 and roughly
``C * D * H <= 20480``, e.g. 16 channels at 32³) it runs the generic
``aten::slow_conv3d_forward`` instead of oneDNN (``aten::mkldnn_convolution``),
which is 5-15x slower on the 2-core machine this project targets (see
``../shared/METHOD.md``). Interactive clicks are exactly that case (batch 1,
narrow high-resolution decoder stages). :func:`conv3d` calls the oneDNN kernel
directly when it is safe to do so and falls back to :func:`torch.nn.functional.conv3d`
otherwise (CUDA, other dtypes, autocast, string padding, oneDNN disabled).
The oneDNN op has an autograd formula (``convolution_backward``), so training
through the fast path works and gives the same gradients.

All tensors are channels-first ``(B, C, D, H, W)`` with spatial axes in
``(z, y, x)`` order.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Conv3d",
    "UpConv3d",
    "LayerNorm3d",
    "MLP",
    "DropPath",
    "conv3d",
    "fast_conv",
    "fast_conv_enabled",
    "pixel_shuffle_3d",
    "pixel_unshuffle_3d",
]

_FAST_CONV = True


def fast_conv_enabled() -> bool:
    """Whether :func:`conv3d` may route CPU convolutions to oneDNN."""
    return _FAST_CONV


@contextlib.contextmanager
def fast_conv(enabled: bool = True) -> Iterator[None]:
    """Context manager switching the oneDNN routing on or off (for benchmarks and tests).

    Example:
        >>> with fast_conv(False):  # measure PyTorch's default kernel choice
        ...     y = conv3d(torch.zeros(1, 2, 4, 4, 4), torch.zeros(2, 2, 3, 3, 3), padding=1)
    """
    global _FAST_CONV
    previous = _FAST_CONV
    _FAST_CONV = bool(enabled)
    try:
        yield
    finally:
        _FAST_CONV = previous


def _triple(v) -> list[int]:
    if isinstance(v, int):
        return [v, v, v]
    return [int(i) for i in v]


def _can_route(x: torch.Tensor, weight: torch.Tensor, padding) -> bool:
    return (
        _FAST_CONV
        and x.device.type == "cpu"
        and x.dtype == torch.float32
        and weight.dtype == torch.float32
        and x.dim() == 5
        and not isinstance(padding, str)
        and not x.is_mkldnn
        and torch.backends.mkldnn.is_available()
        and torch.backends.mkldnn.enabled
        and not _cpu_autocast()
    )


#: Whether :func:`conv3d` runs a batch of one that needs gradients on the CPU as a batch of two (see there).
_PAD_SINGLE_FOR_BACKWARD = True


def _narrow(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """The convs whose batch-one backward was slow (4-32 input and at most 32 output channels on at least 16³
    voxels, docs/benchmarks.md session 23); for wider ones (16 -> 80, 1 -> 16) two samples cost more than one."""
    return 4 <= x.shape[1] and weight.shape[0] <= 32 and x.shape[1] <= 32 and x[0, 0].numel() >= 16 ** 3


#: Convs whose input has at most this many voxels per channel run float32 under CPU autocast (see conv3d).
SMALL_CONV_VOXELS = 8 ** 3


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def conv3d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride=1,
    padding=0,
    dilation=1,
    groups: int = 1,
) -> torch.Tensor:
    """Same signature and result as :func:`torch.nn.functional.conv3d`, faster on CPU.

    On CPU float32 it calls ``torch.ops.aten.mkldnn_convolution`` (oneDNN) directly;
    everywhere else it is ``F.conv3d``. Results agree to float32 round-off
    (different summation order), gradients included.
    """
    if (_PAD_SINGLE_FOR_BACKWARD and x.shape[0] == 1 and x.device.type == "cpu" and torch.is_grad_enabled()
            and (x.requires_grad or weight.requires_grad) and groups == 1 and _narrow(x, weight)):
        # oneDNN's backward of a batch of one took 2-10x as long as that of a batch of two for narrow 3D convolutions
        # such as the CPP net's (4 -> 1 channels at 64³: 150 ms against 16; torch 2.13, 2-core AVX2 CPU; training
        # runs the CPP net on one sample in about half its steps). A zero sample beside it adds exactly nothing to
        # the weight and bias gradients (its output is dropped, so its output gradient is zero).
        return conv3d(torch.cat([x, torch.zeros_like(x)]), weight, bias, stride, padding, dilation, groups)[:1]
    if x.device.type == "cpu" and _cpu_autocast() and (groups > 1 or x[0, 0].numel() <= SMALL_CONV_VOXELS):
        # Grouped (depthwise) convs and convs on small maps stay float32 under CPU bfloat16 autocast: oneDNN's
        # bf16 3D weight gradient came out inf, non-deterministic or ~1e30 instead of ~1e-4 there in training
        # steps (torch 2.13; depthwise on an AMX CPU, the decoder's 2³ level on an AVX512-BF16 CPU without AMX
        # in 10 of 16 steps: tests/test_training_step.py, docs/benchmarks.md). They are cheap in float32.
        with torch.autocast("cpu", enabled=False):
            return conv3d(x.float(), weight.float(), None if bias is None else bias.float(), stride, padding,
                          dilation, groups)
    if _can_route(x, weight, padding):
        return torch.ops.aten.mkldnn_convolution(
            x.contiguous(), weight, bias, _triple(padding), _triple(stride), _triple(dilation), groups
        )
    return F.conv3d(x, weight, bias, stride, padding, dilation, groups)


class Conv3d(nn.Conv3d):
    """``nn.Conv3d`` (same parameters and state dict) that runs through :func:`conv3d`."""

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
        if self.padding_mode != "zeros":
            return super()._conv_forward(x, weight, bias)
        return conv3d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def pixel_shuffle_3d(x: torch.Tensor, r: int) -> torch.Tensor:
    """3D pixel shuffle: ``(B, C*r³, D, H, W) -> (B, C, D*r, H*r, W*r)``.

    Channel ``c*r³ + (i*r + j)*r + k`` goes to offset ``(i, j, k)`` inside each
    ``r×r×r`` output block (the 3D analogue of ``nn.PixelShuffle``).
    """
    b, c, d, h, w = x.shape
    co = c // (r**3)
    x = x.reshape(b, co, r, r, r, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, co, d * r, h * r, w * r)


def pixel_unshuffle_3d(x: torch.Tensor, r: int) -> torch.Tensor:
    """Inverse of :func:`pixel_shuffle_3d` (space-to-depth): ``(B, C, D, H, W) -> (B, C*r³, D/r, H/r, W/r)``."""
    b, c, d, h, w = x.shape
    x = x.reshape(b, c, d // r, r, h // r, r, w // r, r)
    x = x.permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, c * r**3, d // r, h // r, w // r)


class UpConv3d(nn.Module):
    """Kernel-2, stride-2 transposed convolution (exact ×2 upsampling), fast on CPU.

    Parameters are laid out exactly like ``nn.ConvTranspose3d(cin, cout, 2, stride=2)``
    (``weight`` is ``(cin, cout, 2, 2, 2)``). Because the 2×2×2 output blocks do not
    overlap, the op equals a 1×1×1 convolution to ``cout*8`` channels followed by a
    3D pixel shuffle; on CPU that runs through oneDNN instead of PyTorch's
    ``slow_conv_transpose3d``. On other devices it is ``F.conv_transpose3d``.

    Shapes: ``(B, cin, D, H, W) -> (B, cout, 2D, 2H, 2W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__()
        ref = nn.ConvTranspose3d(in_channels, out_channels, 2, stride=2, bias=bias)
        self.weight = ref.weight
        self.bias = ref.bias
        self.in_channels, self.out_channels = in_channels, out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _can_route(x, self.weight, 0):
            return F.conv_transpose3d(x, self.weight, self.bias, stride=2)
        cin, cout = self.in_channels, self.out_channels
        # (cin, cout, i, j, k) -> (cout, i, j, k, cin): output channel order matches pixel_shuffle_3d.
        w = self.weight.permute(1, 2, 3, 4, 0).reshape(cout * 8, cin, 1, 1, 1)
        b = None if self.bias is None else self.bias.repeat_interleave(8)
        return pixel_shuffle_3d(conv3d(x, w, b), 2)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size=2, stride=2"


class LayerNorm3d(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, D, H, W)`` tensor, per voxel."""

    def __init__(self, num_channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None, None] * x + self.bias[:, None, None, None]


class MLP(nn.Module):
    """Token MLP ``Linear(dim, ratio*dim) -> GELU -> Linear(ratio*dim, dim)`` on ``(..., dim)``."""

    def __init__(self, dim: int, ratio: float = 4.0) -> None:
        super().__init__()
        hidden = int(dim * ratio)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample while training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

