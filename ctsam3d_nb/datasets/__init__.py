"""Dataset adapters: public CT datasets in their own layouts, loaded in ontology ids.

    ds = open_dataset("flare22", "~/data/FLARE22Train")
    for case in ds.cases():
        ct, labels = ds.load(case)       # labels: (z, y, x) ontology ids on ct's grid

Every adapter has ``cases()``, ``load(case)`` and ``structures``; a wrong root
or a missing file raises `DatasetLayoutError` (a FileNotFoundError) that names
the path and prints the expected layout.
"""
from __future__ import annotations

import inspect

from .base import CaseDataset, DatasetLayoutError, PairedDataset
from .challenges import AMOS22, BTCV, FLARE22, WORD
from .folder import ImageLabelFolder, PhantomDataset
from .totalseg import TotalSegmentator, detect_totalseg_version

__all__ = [
    "AMOS22",
    "BTCV",
    "CaseDataset",
    "DATASETS",
    "DatasetLayoutError",
    "FLARE22",
    "ImageLabelFolder",
    "PairedDataset",
    "PhantomDataset",
    "TotalSegmentator",
    "WORD",
    "detect_totalseg_version",
    "open_dataset",
]

#: name -> adapter class; each is called as ``cls(root, **options)``.
DATASETS = {
    "totalsegmentator": TotalSegmentator,
    "flare22": FLARE22,
    "amos22": AMOS22,
    "btcv": BTCV,
    "word": WORD,
    "folder": ImageLabelFolder,
    "phantom": PhantomDataset,
}


def open_dataset(name: str, root=None, **options) -> CaseDataset:
    """Open a dataset by registry name (case-insensitive), e.g. ``open_dataset("amos22", root)``.

    Args:
        name: a key of `DATASETS`.
        root: the dataset folder (unused for "phantom").
        **options: adapter options, e.g. ``version="v1"`` (totalsegmentator), ``split="val"``
            (word), ``convention="btcv"`` (folder), ``seeds=[900000]`` (phantom).
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    takes = [n for n in inspect.signature(DATASETS[key]).parameters if n != "root"]
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ValueError(f"dataset {name!r} takes no option {unknown[0]!r}; its options: {', '.join(takes) or 'none'}")
    return DATASETS[key](root, **options)
