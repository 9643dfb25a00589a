"""Your own data (a folder of image/label pairs) and held-out synthetic phantoms."""
from __future__ import annotations

import numpy as np

from .. import anatomy
from ..phantom import make_phantom
from ..phantom.labels import PHANTOM_LABELS
from ..volume import CTVolume
from .base import CaseDataset, PairedDataset, _listing

__all__ = ["ImageLabelFolder", "PhantomDataset"]

_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd")


def _stem(name: str) -> str | None:
    low = name.lower()
    return next((name[: -len(s)] for s in _SUFFIXES if low.endswith(s)), None)


class ImageLabelFolder(PairedDataset):
    """A plain folder of CTs and label maps with the same file names.

        <root>/images/case_a.nii.gz    <root>/labels/case_a.nii.gz
        <root>/images/case_b.nii.gz    <root>/labels/case_b.nii.gz

    Args:
        root: the folder holding ``images/`` and ``labels/``.
        convention: the label values' convention ("amos22", "btcv", "flare22", "word",
            "totalsegmentator_v1", ...), or None when they are already ontology ids
            (TotalSegmentator v2 ``total`` multi-label maps are).
        images, labels: sub-folder names.

    With ``convention=None`` `structures` lists every ontology structure; each case
    holds whichever it holds.
    """

    title = "image/label folder"
    layout = ("  images/<name>.nii.gz   (any CT readable by load_ct: .nii.gz, .nii, .nrrd, .mha)\n"
              "  labels/<name>.nii.gz   the same file name; 0 = background, values in ontology ids or in convention=")

    def __init__(self, root, convention: str | None = None, images: str = "images", labels: str = "labels"):
        self.convention = None if convention in (None, "ontology") else anatomy.convention_for(convention).name
        self._dirs = (images, labels)
        super().__init__(root)
        if self.convention is None:
            self.structures = list(anatomy.names())

    def _find_pairs(self):
        img_dir, lab_dir = (self.root / d for d in self._dirs)
        if not img_dir.is_dir():
            return {}
        images = sorted(p for p in img_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        if not lab_dir.is_dir() and images:
            raise self.layout_error(f"'{lab_dir}' is missing (images are in '{img_dir}': {_listing(img_dir, 3)}).")
        return {_stem(p.name): (p, lab_dir / p.name) for p in images if _stem(p.name)}


class PhantomDataset(CaseDataset):
    """Synthetic whole-body phantoms from `ctsam3d_nb.phantom.make_phantom`, one case per seed.

    Use seeds never used in training (e.g. 900000 and up) to get a held-out set.
    Phantom labels are already ontology ids.

    Args:
        root: unused (phantoms are generated); accepted so all adapters open alike.
        seeds: the phantom seeds; case ids are their decimal strings.
        shape: array shape ``(z, y, x)`` of each phantom.
        spacing: voxel size in mm ``(z, y, x)``.
    """

    title = "phantom"
    layout = "  (none: phantoms are generated from seeds)"

    def __init__(self, root=None, seeds=(900000,), shape=(400, 256, 256), spacing=(1.5, 1.5, 1.5)):
        self.root = root
        seeds = [int(s) for s in np.atleast_1d(seeds)]
        if not seeds or min(seeds) < 0:
            raise ValueError(f"seeds must be non-negative integers, got {seeds}")
        self.seeds = list(dict.fromkeys(seeds))
        self.shape = tuple(int(s) for s in shape)
        self.spacing = tuple(float(s) for s in spacing)
        self._make = make_phantom
        self.structures = [n for n in PHANTOM_LABELS if n in set(anatomy.names())]

    def cases(self) -> list[str]:
        return [str(s) for s in self.seeds]

    def load(self, case) -> tuple[CTVolume, np.ndarray]:
        case = self.check_case(case)
        ct, labels, _names = self._make(int(case), shape=self.shape, spacing=self.spacing)
        return ct, np.asarray(labels)

    def __repr__(self) -> str:
        return f"PhantomDataset(seeds={self.seeds}, shape={self.shape}, spacing={self.spacing})"
