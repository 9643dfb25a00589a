"""Where training volumes come from: a *source* is ``get(key) -> (image, labels)`` on the model grid.

``image`` is float32 in [0, 1] (HU clipped to the window and scaled), ``labels`` integer ontology ids,
both ``(z, y, x)`` on the 1.5 mm model grid. Sources of real scans (`folder_source`,
`dataset_source`) are marked ``get.real = True``: the sampler gives real volumes the augmentations
that a single real anatomy needs (elastic deformation, contrast phases), phantoms not.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from ..anatomy import convert_labels
from ..datasets import open_dataset
from ..grid import ModelGrid, normalize_hu
from ..io import load_ct, load_labels
from ..phantom import make_phantom

ARMS_GRID_X = 352  # left-right voxels (1.5 mm) of a training phantom with its arms down: a 528-mm field


def phantom_source(seed: int, shape=(320, 224, 224), p_arms: float = 0.0):
    """Volume ``v`` = the phantom of seed ``seed + v``, generated at 1.5 mm (identity direction,
    so its grid is the model grid).

    ``p_arms``: the share of volumes (drawn per seed) that are whole-body scans with the arms down beside the
    trunk (`make_phantom(arms=True)`): their grid is widened to `ARMS_GRID_X` voxels left-right (528 mm, about
    the field of view such scans use). The others have no arms, whatever their width."""
    def get(v: int):
        s = seed + int(v)
        arms = p_arms > 0 and float(np.random.default_rng([s, 4]).random()) < p_arms
        grid = (shape[0], shape[1], max(int(shape[2]), ARMS_GRID_X)) if arms else tuple(shape)
        ct, labels, _ = make_phantom(s, shape=grid, spacing=(1.5, 1.5, 1.5), arms=arms)
        return normalize_hu(ct.array), labels

    return get


def _on_grid(ct, labels):
    grid = ModelGrid.covering(ct)
    return grid.resample_ct(ct), grid.labels_to_grid(labels, ct)


def load_on_grid(ct_path, label_path, convention: str | None = None):
    """A CT and its label map resampled to the model grid (labels by nearest neighbour)."""
    ct = load_ct(ct_path)
    labels = load_labels(label_path, like=ct)
    if convention:
        labels = convert_labels(labels, convention)
    return _on_grid(ct, labels)


def case_index(key: int, n: int, seed: int = 0) -> int:
    """Which of ``n`` cases volume ``key`` (``v * 1000 + rank``, see `PatchSampler`) is.

    Volume numbers ``v`` are cut into epochs of ``n`` (``e·n … e·n + n − 1``); within an epoch
    each case comes once, in an order drawn from ``(seed, epoch, rank)`` (``key mod n`` would
    revisit one case forever when ``n`` divides 1000). With several sources `PatchSampler`
    draws the source per volume, so a dataset sees only some volume numbers of each epoch.
    """
    v, rank = divmod(int(key), 1000)
    epoch, i = divmod(v, n)
    return int(np.random.default_rng([int(seed), epoch, rank, 11]).permutation(n)[i])


def _cached(load, keep: int = 4):
    """``load(i)`` with the last ``keep`` results kept (one small case list is re-drawn often)."""
    cache: dict = {}

    def get(i):
        if i not in cache:
            if len(cache) >= keep:
                cache.pop(next(iter(cache)))
            cache[i] = load(i)
        return cache[i]

    return get


def _real(get):
    """Mark a source as real scans (see the module docstring)."""
    get.real = True
    return get


def folder_source(pairs, convention: str | None = None, seed: int = 0):
    """Volume ``key`` = pair `case_index` ``(key, len(pairs), seed)`` on the model grid."""
    load = _cached(lambda i: load_on_grid(*pairs[i], convention))
    return _real(lambda key: load(case_index(key, len(pairs), seed)))


def dataset_source(name: str, root, options: dict | None = None, seed: int = 0):
    """Volume ``key`` = a case of a dataset adapter (``open_dataset(name, root, **options)``) on the model grid.

    The adapters' labels are already ontology ids. Use the adapter's training split
    (e.g. ``options={"split": "train"}``) so its test cases stay held out.
    """
    if str(name).lower() == "phantom":
        raise ValueError("dataset='phantom': phantoms are generated on the fly; use phantom_weight instead")
    ds = open_dataset(name, root, **(options or {}))
    if ds.splits and ds.split is None:
        warnings.warn(f"training on every case of {ds.title}, its test split included; pass "
                      "dataset_options={'split': ...} to keep the held-out cases out of training", stacklevel=2)
    cases = ds.cases()
    if not cases:
        raise ValueError(f"{ds!r} has no cases (options {options or {}}); check dataset_root and the split")
    load = _cached(lambda i: _on_grid(*ds.load(cases[i])))
    return _real(lambda key: load(case_index(key, len(cases), seed)))


def find_pairs(root) -> list[tuple[Path, Path]]:
    """Image/label pairs in ``root/images`` + ``root/labels`` (same file names) or ``imagesTr``/``labelsTr``."""
    root = Path(root)
    for img_dir, lab_dir in (("images", "labels"), ("imagesTr", "labelsTr")):
        if (root / img_dir).is_dir():
            pairs = []
            for f in sorted((root / img_dir).glob("*.nii*")):
                name = f.name.replace("_0000.nii", ".nii")
                lab = root / lab_dir / name
                if not lab.exists():
                    raise FileNotFoundError(f"no label map for '{f}' (expected '{lab}')")
                pairs.append((f, lab))
            if pairs:
                return pairs
    raise FileNotFoundError(f"'{root}' has no images/ + labels/ (or imagesTr/ + labelsTr/) with .nii.gz pairs")
