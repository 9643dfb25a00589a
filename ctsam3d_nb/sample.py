"""The bundled sample: one synthetic whole-body phantom CT with its label map, shipped as package data.

``load_sample()`` works after any install (``pip install ctsam3d_nb``, a wheel, or ``pip install -e .``),
from any working directory: the files live in ``ctsam3d_nb/data/`` inside the package. How the
phantom was made, its geometry and its labels: ``data_samples/README.md`` in the source tree.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .io import load_ct, load_labels
from .volume import CTVolume

__all__ = ["Sample", "load_sample", "sample_paths"]

_FILES = {"ct": "phantom_ct.nii.gz", "labels": "phantom_labels.nii.gz", "names": "phantom_labels.json"}
DATA_DIR = Path(__file__).resolve().parent / "data"


class Sample(NamedTuple):
    """The bundled phantom. Unpacks as ``ct, labels, names = load_sample()``.

    Attributes:
        ct: the CT (int16 HU, ``(z, y, x)`` = (128, 160, 160), spacing (2.5, 2.0, 2.0) mm).
        labels: ``(z, y, x)`` uint8 label map on ``ct``'s grid (ontology ids, 0 = background); your own copy.
        names: ``{label id: structure name}`` of the labels present.
    """

    ct: CTVolume
    labels: np.ndarray
    names: dict[int, str]


def sample_paths() -> dict[str, Path]:
    """Paths of the bundled files: ``{"ct": ..., "labels": ..., "names": ...}`` (read them, never write there).

    Raises:
        FileNotFoundError: a file is missing from the installed package (a broken install).
    """
    paths = {key: DATA_DIR / name for key, name in _FILES.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"the bundled sample is missing from the installed package: {missing}. "
                                "Reinstall ctsam3d_nb (pip install --force-reinstall --no-deps ctsam3d_nb, or "
                                "pip install -e . from a complete source checkout).")
    return paths


def load_sample() -> Sample:
    """Load the bundled synthetic phantom: ``Sample(ct, labels, names)``.

    A 320 mm torso (lung bases to the sacrum) with 72 labelled structures, synthetic (no patient data).
    Each call reads the files again, so the label array is yours to change.

    Example:
        >>> import ctsam3d_nb as cs
        >>> ct, labels, names = cs.load_sample()
        >>> ct.shape, labels.shape, names[5]
        ((128, 160, 160), (128, 160, 160), 'liver')
    """
    paths = sample_paths()
    ct = load_ct(paths["ct"])
    labels = load_labels(paths["labels"], like=ct)
    names = {int(k): str(v) for k, v in json.loads(paths["names"].read_text(encoding="utf-8")).items()}
    return Sample(ct, labels, names)
