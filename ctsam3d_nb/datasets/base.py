"""What every dataset adapter shares: case listing, loading, errors that show the layout.

An adapter knows one public dataset's folder layout and label convention. It
lists case ids (`cases`), loads one case as ``(CTVolume, label map)`` with the
label map on the CT's voxel grid and in ontology ids (`anatomy`), and names
the structures the dataset labels (`structures`).
"""
from __future__ import annotations

import difflib
from pathlib import Path

import numpy as np

from .. import anatomy
from ..io import load_ct, load_labels
from ..volume import CTVolume

__all__ = ["CaseDataset", "PairedDataset", "DatasetLayoutError", "nifti_files", "strip_suffix", "structures_of",
           "to_ontology"]

NIFTI_SUFFIXES = (".nii.gz", ".nii")


class DatasetLayoutError(FileNotFoundError):
    """A dataset folder does not have the expected layout, or a case's file is missing."""


def strip_suffix(name: str) -> str:
    """File name without ``.nii.gz`` / ``.nii``."""
    for s in NIFTI_SUFFIXES:
        if name.lower().endswith(s):
            return name[: -len(s)]
    return name


def nifti_files(folder: Path) -> list[Path]:
    """NIfTI files directly in ``folder`` (hidden files skipped), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(NIFTI_SUFFIXES))


def _listing(folder: Path, n: int = 8) -> str:
    try:
        items = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "(unreadable)"
    if not items:
        return "(empty)"
    return ", ".join(items[:n]) + (f", ... ({len(items)} entries)" if len(items) > n else "")


class CaseDataset:
    """Base class of the adapters.

    Subclasses set ``title`` (for messages), ``layout`` (the expected folder
    layout, printed in errors) and implement `cases` and `load`.

    Attributes:
        root: the dataset folder.
        structures: ontology names the dataset labels (a case may hold fewer).
        splits: the splits the adapter can select with ``split=`` (empty: it has none).
        split: the split selected; None when every case of every split is included.
    """

    title = "dataset"
    layout = ""
    splits: tuple[str, ...] = ()
    split: str | None = None

    def __init__(self, root):
        if root is None or str(root) == "":
            raise DatasetLayoutError(f"no {self.title} root given. Expected layout:\n{self.layout}")
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            what = "is a file, not a folder" if self.root.exists() else "does not exist"
            raise DatasetLayoutError(f"{self.title} root '{self.root}' {what}. Expected layout:\n{self.layout}")
        self.structures: list[str] = []

    def layout_error(self, what: str) -> DatasetLayoutError:
        """An error that names what is wrong, the expected layout, and what the root holds."""
        return DatasetLayoutError(f"{what}\nExpected {self.title} layout under '{self.root}':\n{self.layout}\n"
                                  f"The root holds: {_listing(self.root)}")

    def cases(self) -> list[str]:
        """Case ids, sorted."""
        raise NotImplementedError

    def load(self, case: str) -> tuple[CTVolume, np.ndarray]:
        """``(ct, labels)``: the CT and its label map ``(z, y, x)`` on the CT's grid, ontology ids."""
        raise NotImplementedError

    def check_case(self, case) -> str:
        case = str(case)
        known = self.cases()
        if case not in known:
            close = difflib.get_close_matches(case, known, n=3, cutoff=0.5)
            hint = (f"; did you mean {', '.join(map(repr, close))}?" if close
                    else f"; {len(known)} cases, e.g. {known[:3]}")
            raise KeyError(f"no case {case!r} in {self.title} at '{self.root}'{hint}")
        return case

    def __len__(self) -> int:
        return len(self.cases())

    def __iter__(self):
        return iter(self.cases())

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root='{self.root}', cases={len(self)})"


def structures_of(convention) -> list[str]:
    """Ontology names of a convention's labels, in label-value order, without repeats."""
    conv = anatomy.convention_for(convention)
    return list(dict.fromkeys(anatomy.by_name(n).name for n in conv.labels.values()))


def to_ontology(raw: np.ndarray, convention, path) -> np.ndarray:
    """Convert a label map from ``convention`` (None = already ontology ids), naming ``path`` on error."""
    if convention is None:
        present = np.unique(raw)
        bad = [int(v) for v in present if v != 0 and int(v) not in {s.id for s in anatomy.STRUCTURES}]
        if bad:
            raise ValueError(f"'{path}' holds label values {bad[:10]} that are not ontology ids "
                             f"(1..{anatomy.MAX_ID}); pass the dataset's convention, e.g. convention='amos22'")
        return raw.astype(np.min_scalar_type(anatomy.MAX_ID), copy=False)
    try:
        return anatomy.convert_labels(raw, convention)
    except ValueError as e:
        raise ValueError(f"'{path}': {e}") from None


class PairedDataset(CaseDataset):
    """A dataset of (image file, label file) pairs with one label convention.

    Subclasses implement `_find_pairs` → ``{case: (image path, label path)}``;
    a missing label file is reported when the case is loaded, not skipped.
    """

    convention: str | None = None

    def __init__(self, root):
        super().__init__(root)
        self._pairs = self._find_pairs()
        if not self._pairs:
            raise self.layout_error(f"no {self.title} cases found under '{self.root}'.")
        if self.convention is not None:
            self.structures = structures_of(self.convention)

    def _find_pairs(self) -> dict[str, tuple[Path, Path]]:
        raise NotImplementedError

    def cases(self) -> list[str]:
        return sorted(self._pairs)

    def paths(self, case) -> tuple[Path, Path]:
        """``(image path, label path)`` of a case."""
        return self._pairs[self.check_case(case)]

    def load(self, case) -> tuple[CTVolume, np.ndarray]:
        image, label = self.paths(case)
        for p, what in ((image, "image"), (label, "label")):
            if not p.is_file():
                raise self.layout_error(f"case {case!r}: {what} file '{p}' is missing.")
        ct = load_ct(image)
        raw = load_labels(label, like=ct)
        return ct, to_ontology(raw, self.convention, label)
