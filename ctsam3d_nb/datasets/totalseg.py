"""TotalSegmentator (v1: 104 structures, v2: 117) in its published layout.

    <root>/
      meta.csv                          (optional; image_id;...;split;... — for split=)
      s0000/
        ct.nii.gz
        segmentations/
          liver.nii.gz                  one binary mask per structure
          spleen.nii.gz
          ...
      s0001/ ...

Each case's binary files are merged into one label map. File names are
TotalSegmentator's structure names (`anatomy.TOTALSEG_FILE_NAMES`); v1 and v2
differ in a few names (v1 has ``heart_atrium_left`` etc., v2 ``heart``,
``sternum`` ...), which is how the version is detected. Files that are not
structures of the version's ``total`` task (``lung_vessels``, ``body`` ...)
are ignored. Where two files claim one voxel, the one later in the version's
label order wins (the files of the ``total`` task do not overlap).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import anatomy
from ..io import load_ct, load_labels
from ..volume import CTVolume
from .base import CaseDataset, nifti_files, strip_suffix, structures_of, to_ontology

__all__ = ["TotalSegmentator", "detect_totalseg_version"]

_V1 = set(anatomy.LABEL_CONVENTIONS["totalsegmentator_v1"].values())
_V2 = set(anatomy.LABEL_CONVENTIONS["totalsegmentator_v2"].values())
_V1_ONLY, _V2_ONLY = _V1 - _V2, _V2 - _V1


def detect_totalseg_version(stems) -> str:
    """"v1" or "v2" from the structure file names (without suffix) of one case.

    Names only one version uses decide (e.g. ``heart_atrium_left`` → v1,
    ``heart`` → v2); names both share give "v2" (their labels are the same
    structures, so the merged label map does not depend on the answer).

    Raises:
        ValueError: the names mix v1-only and v2-only structures.
    """
    stems = set(stems)
    v1, v2 = sorted(stems & _V1_ONLY), sorted(stems & _V2_ONLY)
    if v1 and v2:
        raise ValueError(f"structure files mix TotalSegmentator v1-only names {v1[:3]} and v2-only names {v2[:3]}; "
                         "pass version='v1' or 'v2'")
    return "v1" if v1 else "v2"


class TotalSegmentator(CaseDataset):
    """TotalSegmentator v1 or v2 (one folder per case, one file per structure).

    Args:
        root: the dataset folder (holding ``s0000/`` ...), or a single case folder.
        version: "v1", "v2", or None to detect it from the first case's file names.
        split: with ``meta.csv`` in the root, keep only cases of this split
            ("train", "val" or "test").

    Example:
        >>> ds = TotalSegmentator("~/data/Totalsegmentator_dataset_v201", split="test")  # doctest: +SKIP
        >>> ct, labels = ds.load(ds.cases()[0])                                          # doctest: +SKIP
    """

    title = "TotalSegmentator"
    layout = ("  <case>/ct.nii.gz\n"
              "  <case>/segmentations/<structure>.nii.gz   (one binary mask per structure, e.g. liver.nii.gz)\n"
              "  meta.csv                                  (optional, for split=)")

    splits = ("train", "val", "test")  # as meta.csv names them

    def __init__(self, root, version: str | None = None, split: str | None = None):
        super().__init__(root)
        if (self.root / "ct.nii.gz").is_file():  # a single case folder
            self._dirs = {self.root.name: self.root}
            self.root = self.root.parent
        else:
            self._dirs = {p.name: p for p in sorted(self.root.iterdir())
                          if p.is_dir() and (p / "ct.nii.gz").is_file()}
        if not self._dirs:
            raise self.layout_error(f"no case folders with a ct.nii.gz under '{self.root}'.")
        self.split = split
        if split is not None:
            self._dirs = {c: p for c, p in self._dirs.items() if c in self._split_ids(split)}
            if not self._dirs:
                raise self.layout_error(f"meta.csv lists no cases of split {split!r} that are present.")
        if version is None:
            first = next(iter(self._dirs.values()))
            version = detect_totalseg_version(strip_suffix(p.name) for p in nifti_files(first / "segmentations"))
        version = str(version).lower().lstrip("v")
        if version not in ("1", "2"):
            raise ValueError(f"version must be 'v1' or 'v2', got {version!r}")
        self.version = f"v{version}"
        self.convention = f"totalsegmentator_{self.version}"
        self.structures = structures_of(self.convention)
        labels = anatomy.LABEL_CONVENTIONS[self.convention]
        self._value_of = {name: value for value, name in labels.items()}

    def _split_ids(self, split: str) -> set[str]:
        import pandas as pd  # only to read meta.csv for a split: loading cases needs no pandas (~0.5 s)

        meta = self.root / "meta.csv"
        if not meta.is_file():
            raise self.layout_error(f"split={split!r} needs '{meta}', which is missing.")
        table = pd.read_csv(meta, sep=None, engine="python")
        if not {"image_id", "split"} <= set(table.columns):
            raise ValueError(f"'{meta}' lacks the columns image_id and split (it has {list(table.columns)})")
        return set(table.loc[table["split"].astype(str) == split, "image_id"].astype(str))

    def cases(self) -> list[str]:
        return sorted(self._dirs)

    def structure_files(self, case) -> dict[str, Path]:
        """``{ontology name: file}`` of the structure masks of a case that this version defines."""
        folder = self._dirs[self.check_case(case)] / "segmentations"
        files = nifti_files(folder)
        if not files:
            raise self.layout_error(f"case {case!r}: no structure files in '{folder}'.")
        out = {}
        for p in files:
            name = anatomy.TOTALSEG_FILE_NAMES.get(strip_suffix(p.name))  # None: not a structure file
            if name in self._value_of:
                out[name] = p
        return out

    def load(self, case) -> tuple[CTVolume, np.ndarray]:
        files = self.structure_files(case)
        ct = load_ct(self._dirs[str(case)] / "ct.nii.gz")
        raw = np.zeros(ct.shape, np.uint8)  # label values of the version's convention (<= 117)
        for name, path in sorted(files.items(), key=lambda kv: self._value_of[kv[0]]):
            mask = load_labels(path, like=ct)
            raw[mask > 0] = self._value_of[name]
        return ct, to_ontology(raw, self.convention, self._dirs[str(case)])
