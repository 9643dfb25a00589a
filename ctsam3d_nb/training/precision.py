"""Training precision: bfloat16 autocast where the hardware computes it natively."""
from __future__ import annotations

import torch

from ..cpu_features import NATIVE_BF16_FLAGS, cpu_has_native_bf16

__all__ = ["use_bf16", "cpu_has_native_bf16", "NATIVE_BF16_FLAGS"]


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether a step runs under bfloat16 autocast (`TrainConfig.precision`).

    ``"auto"``: on CUDA, and on CPUs that run bfloat16 natively (oneDNN's AVX512-BF16/AMX
    kernels; elsewhere PyTorch emulates it and a step gets slower, not faster).
    """
    if precision == "auto":
        return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return precision == "bf16"
