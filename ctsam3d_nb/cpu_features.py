"""What this CPU computes in hardware, for the choices that depend on it (bfloat16 on the click path and
in training)."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

__all__ = ["NATIVE_BF16_FLAGS", "cpu_has_native_bf16"]

NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # x86 CPU flags of bfloat16 arithmetic in hardware


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when this CPU computes bfloat16 in hardware (x86: AVX512-BF16 or AMX; ARM: oneDNN's BF16 check).

    oneDNN's own check (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) also says yes on x86 CPUs with plain
    AVX512, where bfloat16 is emulated: there a bf16 training step took 1.37x as long as a float32 one
    (docs/benchmarks.md, session 10). So on x86 the CPU's flags decide, and an x86 CPU whose flags cannot be
    read counts as without (float32 is never the slower choice).
    """
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86"):
        try:
            text = Path(cpuinfo).read_text()
        except OSError:
            return False
        return any(NATIVE_BF16_FLAGS & set(line.split(":", 1)[1].split())
                   for line in text.splitlines() if line.startswith("flags") and ":" in line)
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a build without oneDNN
        return False
