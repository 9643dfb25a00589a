"""Shared test helpers: the real CT folder and small seeded synthetic volumes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_CT = REPO.parent / "shared" / "data" / "real_ct"


@pytest.fixture(scope="session")
def real_ct_dir() -> Path:
    """``../shared/data/real_ct``; the test is skipped when it is absent."""
    if not (REAL_CT / "example_ct_sm.nii.gz").exists():
        pytest.skip(f"real CT data not found at {REAL_CT}")
    return REAL_CT


def synthetic_hu(shape=(12, 10, 8), seed=0) -> np.ndarray:
    """A small int16 HU volume: air around a soft-tissue block with a bright bone bar."""
    rng = np.random.default_rng(seed)
    a = np.full(shape, -1000, np.int16)
    z, y, x = shape
    a[1:-1, 1:-1, 1:-1] = 40
    a[:, y // 2, x // 3] = 800
    a += rng.integers(-20, 20, size=shape, dtype=np.int16)
    return a
