"""Abdominal CT challenge datasets: FLARE22, AMOS22, BTCV, WORD.

Each keeps its published folder layout and label values; `load` returns the
label map in ontology ids (`anatomy.convert_labels` with the dataset's
convention), e.g. FLARE22 1 → liver (5), AMOS22 9 → inferior_vena_cava (63),
BTCV 10 → portal_vein_and_splenic_vein (64), WORD 3 → kidney_left (3).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from .base import PairedDataset, nifti_files, strip_suffix

__all__ = ["FLARE22", "AMOS22", "BTCV", "WORD"]


def _by_stem(folder: Path) -> dict[str, Path]:
    return {strip_suffix(p.name): p for p in nifti_files(folder)}


def _label_path(folder: Path, stem: str, like: Path) -> Path:
    """The label file for ``stem`` in ``folder``; the image's suffix if none exists (reported on load)."""
    for suffix in (".nii.gz", ".nii"):
        if (folder / (stem + suffix)).is_file():
            return folder / (stem + suffix)
    return folder / (stem + like.name[len(strip_suffix(like.name)):])


class FLARE22(PairedDataset):
    """FLARE22 (13 abdominal organs), nnU-Net style layout.

    Args:
        root: the folder holding ``imagesTr/`` and ``labelsTr/``.
        images, labels: sub-folder names (e.g. "imagesTs", "labelsTs" for a labelled test set).
    """

    title = "FLARE22"
    layout = ("  imagesTr/<case>_0000.nii.gz   e.g. FLARE22_Tr_0001_0000.nii.gz\n"
              "  labelsTr/<case>.nii.gz        e.g. FLARE22_Tr_0001.nii.gz (values 1..13)")
    convention = "flare22"

    def __init__(self, root, images: str = "imagesTr", labels: str = "labelsTr"):
        self._dirs = (images, labels)
        super().__init__(root)

    def _find_pairs(self):
        img_dir, lab_dir = (self.root / d for d in self._dirs)
        pairs = {}
        for stem, img in _by_stem(img_dir).items():
            case = re.sub(r"_0000$", "", stem)
            if case != stem:
                pairs[case] = (img, _label_path(lab_dir, case, img))
        return pairs


def _amos_id(name: str) -> int | None:
    m = re.search(r"(\d+)$", strip_suffix(Path(name).name))
    return int(m.group(1)) if m else None


class AMOS22(PairedDataset):
    """AMOS22 (15 abdominal organs), CT cases only (ids 1-500; ids above 500 are MRI).

    Args:
        root: the folder holding ``dataset.json`` (or ``imagesTr/`` and ``labelsTr/``).
        split: "training" (``imagesTr``/``labelsTr``) or "validation" (``imagesVa``/``labelsVa``).
        include_mri: keep the MRI cases too (their intensities are not HU: the model is CT-only).
    """

    title = "AMOS22"
    layout = ("  dataset.json                  {\"training\": [{\"image\": \"./imagesTr/amos_0001.nii.gz\",\n"
              "                                  \"label\": \"./labelsTr/amos_0001.nii.gz\"}, ...],\n"
              "                                 \"validation\": [...]}\n"
              "  imagesTr/amos_NNNN.nii.gz     (without dataset.json: imagesTr/labelsTr, imagesVa/labelsVa)\n"
              "  labelsTr/amos_NNNN.nii.gz     values 1..15; NNNN <= 500 are CT, > 500 MRI")
    convention = "amos22"
    _SPLITS = {"training": ("imagesTr", "labelsTr"), "validation": ("imagesVa", "labelsVa")}

    splits = ("training", "validation")

    def __init__(self, root, split: str = "training", include_mri: bool = False):
        if split not in self._SPLITS:
            raise ValueError(f"AMOS22 split must be one of {list(self._SPLITS)}, got {split!r}")
        self.split, self.include_mri = split, bool(include_mri)
        super().__init__(root)

    def _find_pairs(self):
        meta = self.root / "dataset.json"
        pairs = {}
        if meta.is_file():
            try:
                entries = json.loads(meta.read_text()).get(self.split, [])
            except (json.JSONDecodeError, AttributeError) as e:
                raise self.layout_error(f"'{meta}' is not a valid dataset.json ({e}).") from None
            for e in entries:
                if not isinstance(e, dict) or "image" not in e or "label" not in e:
                    raise self.layout_error(f"'{meta}': {self.split!r} entries must be {{image, label}}, got {e!r}.")
                img, lab = (self.root / str(e[k]).removeprefix("./") for k in ("image", "label"))
                pairs[strip_suffix(img.name)] = (img, lab)
        else:
            img_dir, lab_dir = (self.root / d for d in self._SPLITS[self.split])
            pairs = {stem: (img, _label_path(lab_dir, stem, img)) for stem, img in _by_stem(img_dir).items()}
        if not self.include_mri:
            pairs = {c: p for c, p in pairs.items() if (_amos_id(c) or 0) <= 500}
        return pairs


class BTCV(PairedDataset):
    """BTCV / Synapse multi-organ (13 organs), the challenge's ``RawData`` layout.

    Args:
        root: the folder holding ``img/`` and ``label/``, or one above it
            (``Training/``, ``RawData/Training/`` are searched).
    """

    title = "BTCV"
    layout = ("  img/imgNNNN.nii.gz            e.g. img/img0001.nii.gz\n"
              "  label/labelNNNN.nii.gz        e.g. label/label0001.nii.gz (values 1..13)\n"
              "  (or the same under Training/ or RawData/Training/)")
    convention = "btcv"

    def _find_pairs(self):
        for base in (self.root, self.root / "Training", self.root / "RawData" / "Training"):
            if (base / "img").is_dir():
                break
        else:
            return {}
        pairs = {}
        for stem, img in _by_stem(base / "img").items():
            m = re.fullmatch(r"img(\d+)", stem)
            if m:
                pairs[m.group(1)] = (img, _label_path(base / "label", f"label{m.group(1)}", img))
        return pairs


class WORD(PairedDataset):
    """WORD (16 abdominal structures), nnU-Net style layout with train/val/test folders.

    Args:
        root: the folder holding ``imagesTr/`` (and ``imagesVal/``, ``imagesTs/``).
        split: "train", "val", "test", or None for every split present. Case ids are
            the file names (``word_0001``); if one repeats across splits they are
            prefixed with the split (``val/word_0001``).
    """

    title = "WORD"
    layout = ("  imagesTr/word_NNNN.nii.gz     labelsTr/word_NNNN.nii.gz   (values 1..16)\n"
              "  imagesVal/..., labelsVal/...  imagesTs/..., labelsTs/...  (optional)")
    convention = "word"
    _SPLITS = {"train": ("imagesTr", "labelsTr"), "val": ("imagesVal", "labelsVal"), "test": ("imagesTs", "labelsTs")}

    splits = ("train", "val", "test")

    def __init__(self, root, split: str | None = None):
        if split is not None and split not in self._SPLITS:
            raise ValueError(f"WORD split must be one of {list(self._SPLITS)} or None, got {split!r}")
        self.split = split
        super().__init__(root)

    def _find_pairs(self):
        found = []
        for split, (img_d, lab_d) in self._SPLITS.items():
            if self.split in (None, split):
                found += [(split, stem, img, _label_path(self.root / lab_d, stem, img))
                          for stem, img in _by_stem(self.root / img_d).items()]
        stems = [stem for _, stem, _, _ in found]
        clash = len(set(stems)) < len(stems)
        return {(f"{split}/{stem}" if clash else stem): (img, lab) for split, stem, img, lab in found}
