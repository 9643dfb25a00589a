"""Training data: volumes on the model grid, patch sampling, augmentation.

A *source* yields ``(image, labels)`` pairs on the 1.5 mm model grid
(``image`` float32 in [0, 1], ``labels`` integer ontology ids, both ``(z, y, x)``).
:class:`PatchSampler` keeps a small pool of such volumes and cuts training
samples from them: a randomly chosen structure as the binary target, a 64³
patch around it with translation/scale/rotation and intensity augmentation,
optionally SynthSeg-style domain randomisation, and the neighbouring patch V
used to train the cross-patch prompt net.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..datasets import open_dataset
from ..grid import LEVEL_FACTORS, ModelGrid, downsample, normalize_hu
from ..patches import PATCH, STRIDE, crop

# target sampling weights: large background-like structures and the many ribs and
# vertebrae are drawn less often than organs and vessels
RARE_TARGETS = {118: 0.15, 119: 0.3, 120: 0.3, 121: 0.3}
RARE_TARGETS.update({i: 0.3 for i in range(25, 51)})  # sacrum, vertebrae
RARE_TARGETS.update({i: 0.3 for i in range(92, 116)})  # ribs


def phantom_source(seed: int, shape=(320, 224, 224)):
    """Volume ``v`` = the phantom of seed ``seed + v``, generated at 1.5 mm (identity direction,
    so its grid is the model grid)."""
    from ..phantom import make_phantom

    def get(v: int):
        ct, labels, _ = make_phantom(seed + int(v), shape=tuple(shape), spacing=(1.5, 1.5, 1.5))
        return normalize_hu(ct.array), labels

    return get


def _on_grid(ct, labels):
    grid = ModelGrid.covering(ct)
    return grid.resample_ct(ct), grid.labels_to_grid(labels, ct)


def load_on_grid(ct_path, label_path, convention: str | None = None):
    """A CT and its label map resampled to the model grid (labels by nearest neighbour)."""
    from ..io import load_ct, load_labels

    ct = load_ct(ct_path)
    labels = load_labels(label_path, like=ct)
    if convention:
        from ..anatomy import convert_labels

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


def folder_source(pairs, convention: str | None = None, seed: int = 0):
    """Volume ``key`` = pair `case_index` ``(key, len(pairs), seed)`` on the model grid."""
    load = _cached(lambda i: load_on_grid(*pairs[i], convention))
    return lambda key: load(case_index(key, len(pairs), seed))


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
    return lambda key: load(case_index(key, len(cases), seed))


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


@dataclass
class Sample:
    image: np.ndarray  # (64, 64, 64) float32, patch U
    target: np.ndarray  # (64, 64, 64) bool, the structure in U
    image_v: np.ndarray | None  # neighbouring patch V (for CPP), or None
    target_v: np.ndarray | None
    face: tuple[int, int] | None  # (axis, direction) from U to V
    label: int  # ontology id of the target
    scale: float = 1.0  # voxel size of the patch in units of the 1.5 mm model grid (2 = 3 mm, 4 = 6 mm)
    prior: np.ndarray | None = None  # (64, 64, 64) float32 start of the mask channel, or None (empty)
    first: str = "target"  # first click: "target" (deepest point of the target), "prior" (deepest point
    #   of the prior: a zoom-out step, the finer level's mask is inside the target), "error" (largest
    #   error of the prior: a refine step with a click), "none" (a refine step without a click)


class Volume:
    """One volume of the pool with a per-label index of voxel positions (for fast target sampling)."""

    def __init__(self, image, labels, rng, max_points=4000):
        self.image = np.ascontiguousarray(image, np.float32)
        self.labels = labels
        sub = labels[::2, ::2, ::2]
        flat = sub.ravel()
        order = np.argsort(flat, kind="stable")
        ids, starts = np.unique(flat[order], return_index=True)
        self.points = {}
        self.ml = {}  # volume of each label in mL (from the 2x-subsampled counts; 1.5 mm grid)
        bounds = list(starts[1:]) + [len(order)]
        for i, a, b in zip(ids, starts, bounds):
            if i == 0 or b - a < 8:
                continue
            self.ml[int(i)] = (b - a) * 8 * 1.5 ** 3 / 1000
            pick = order[a:b]
            if len(pick) > max_points:
                pick = rng.choice(pick, max_points, replace=False)
            self.points[int(i)] = np.stack(np.unravel_index(pick, sub.shape), 1) * 2
        self._levels = {1: self}

    def level(self, factor: int) -> "Volume":
        """This volume ``factor`` times coarser (:func:`~ctsam3d_nb.grid.downsample`; labels: nearest), cached."""
        if factor not in self._levels:
            v = Volume.__new__(Volume)
            v.image = downsample(self.image, factor)
            v.labels = np.ascontiguousarray(self.labels[::factor, ::factor, ::factor])
            self._levels[factor] = v
        return self._levels[factor]


class PatchSampler:
    """Cuts augmented training samples from a pool of volumes.

    Everything is a pure function of ``(seed, rank, count)``: which volumes are in the
    pool and every random draw, so training resumes exactly and ranks see different data.

    Args:
        sources: list of ``(get, weight)``; ``get(v)`` returns volume ``v`` as ``(image, labels)``.
        seed, rank: seed the draws.
        pool_size: volumes held at once; the pool moves on by one every ``refresh_every`` samples.
        p_augment: probability of a geometric augmentation (scale 0.9–1.1, rotation ±10°).
        max_shift_mm: random translation of the patch centre (±20 mm in the release).
        p_domain_rand: probability of replacing the intensities (SynthSeg-style).
        p_cpp: probability that a sample carries a neighbouring patch for CPP training.
        p_cpp_negative: of those, the share whose V lies across a face the target does not reach,
            with an all-zero heatmap target ("no continuation here").
        large_target_boost, large_target_ml: structures of at least ``large_target_ml`` mL are
            drawn ``1 + large_target_boost`` times as often (large organs need cross-patch context).
        p_multiscale: probability that a sample is cut at a coarser voxel size, drawn log-uniformly
            in ``[1, max_scale]`` x 1.5 mm (the predictor's zoom levels and in between), limited so the
            target keeps ``min_coarse_voxels`` voxels.
        p_zoom_prior: of the coarse samples, the share that starts like a zoom-out step: the mask
            channel holds the target inside the finer level's field (the central ``64 / scale`` voxels).
        p_refine_prior: probability that a sample starts like a refine step: the mask channel holds the
            target as a coarser level would see it (down- and up-sampled, shifted a little); its first
            click goes to the largest error or (half of them) there is none.
    """

    def __init__(self, sources, seed=0, rank=0, pool_size=3, refresh_every=48, p_augment=0.6,
                 max_shift_mm=20.0, p_domain_rand=0.3, p_cpp=0.5, min_target_voxels=30,
                 p_cpp_negative=0.0, large_target_boost=0.0, large_target_ml=150.0,
                 p_multiscale=0.0, max_scale=4.0, p_zoom_prior=0.5, p_refine_prior=0.0, min_coarse_voxels=300):
        self.sources = sources
        self.seed, self.rank = int(seed), int(rank)
        self.pool_size, self.refresh_every = pool_size, refresh_every
        self.p_augment, self.shift = p_augment, max_shift_mm / 1.5
        self.p_domain_rand, self.p_cpp = p_domain_rand, p_cpp
        self.min_target_voxels = min_target_voxels
        self.p_cpp_negative = float(p_cpp_negative)
        self.large_target_boost, self.large_target_ml = float(large_target_boost), float(large_target_ml)
        self.p_multiscale, self.max_scale = float(p_multiscale), float(max_scale)
        self.p_zoom_prior, self.p_refine_prior = float(p_zoom_prior), float(p_refine_prior)
        self.min_coarse_voxels = int(min_coarse_voxels)
        self.pool: dict[int, Volume] = {}
        self.count = 0
        self.rng = np.random.default_rng([self.seed, self.rank, 0])

    def _load(self, v: int) -> Volume:
        r = np.random.default_rng([self.seed, self.rank, v, 7])
        w = np.asarray([s[1] for s in self.sources], float)
        get = self.sources[r.choice(len(self.sources), p=w / w.sum())][0]
        image, labels = get(v * 1000 + self.rank)
        return Volume(image, labels, r)

    def _volume(self) -> Volume:
        first = self.count // self.refresh_every
        wanted = range(first, first + self.pool_size)
        for v in list(self.pool):
            if v not in wanted:
                del self.pool[v]
        for v in wanted:
            if v not in self.pool:
                self.pool[v] = self._load(v)
        return self.pool[wanted[self.rng.integers(self.pool_size)]]

    def _affine(self):
        if self.rng.random() >= self.p_augment:
            return np.eye(3)
        axis = self.rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        angle = np.deg2rad(self.rng.uniform(-10, 10))
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        rot = np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k
        return rot * self.rng.uniform(0.9, 1.1)

    @staticmethod
    def _cut(vol: Volume, center, matrix, order, scale: float = 1.0):
        """64³ resampled around ``center`` (index of the 1.5 mm grid) with output→input ``matrix``, at
        ``scale`` x 1.5 mm voxels (cut from the nearest finer level of the volume); out of volume: 0."""
        base = max(f for f in LEVEL_FACTORS if f <= scale + 1e-6)
        vol = vol.level(base)
        src = vol.image if order == 1 else vol.labels
        matrix = matrix * (scale / base)
        half = (PATCH - 1) / 2
        offset = np.asarray(center, float) / base - matrix @ np.full(3, half)
        if np.allclose(matrix, np.eye(3)):  # plain crop: exact and fast
            o = np.rint(offset).astype(int)
            return crop(src, tuple(o), PATCH, 0)
        return ndimage.affine_transform(src, matrix, offset, output_shape=(PATCH,) * 3, order=order,
                                        mode="constant", cval=0, prefilter=False)

    def _scale(self, ml: float) -> float:
        """Voxel size of the next sample (units of 1.5 mm): 1, or coarser for a target that stays big enough."""
        if self.p_multiscale <= 0 or self.rng.random() >= self.p_multiscale:
            return 1.0
        most = min(self.max_scale, (ml * 1000 / 1.5 ** 3 / self.min_coarse_voxels) ** (1 / 3))
        if most <= 1.0:
            return 1.0
        return float(np.exp(self.rng.uniform(0, np.log(most))))

    def _prior(self, target: np.ndarray, scale: float):
        """The mask channel a sample starts from, and how its first click is chosen (see `Sample`)."""
        if scale > 1.5 and self.rng.random() < self.p_zoom_prior:
            # zoom-out: the finer level (half this voxel size in the predictor) found the part of the target
            # inside its field, the central PATCH / 2 voxels here (drawn 26..43 for robustness)
            side = int(round(PATCH / self.rng.uniform(1.5, 2.5)))
            lo = (PATCH - side) // 2
            prior = np.zeros_like(target)
            box = (slice(lo, lo + side),) * 3
            prior[box] = target[box]
            if 8 <= prior.sum() < target.sum():  # (a target inside the finer field needed no zoom-out)
                return prior.astype(np.float32), "prior"
        if self.rng.random() < self.p_refine_prior:
            # refine: the target as a level 2-4x coarser sees it, blurred back up and shifted a little
            k = int(self.rng.choice([2, 4]))
            coarse = ndimage.zoom(target.astype(np.float32), 1 / k, order=1)
            up = ndimage.zoom(coarse, np.asarray(target.shape) / np.asarray(coarse.shape), order=1)
            up = ndimage.shift(up, self.rng.uniform(-1, 1, 3) * k / 2, order=1, mode="constant")
            prior = np.clip(up, 0, 1).astype(np.float32)
            return prior, ("none" if self.rng.random() < 0.5 else "error")
        return None, "target"

    def _intensity(self, img: np.ndarray, labels: np.ndarray, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)  # same seed for U and V: the pair looks alike
        if rng.random() < self.p_domain_rand:
            lut = rng.uniform(0, 1, 1024).astype(np.float32)  # per-id intensity, same draw for U and V
            img = lut[labels]
            img = ndimage.gaussian_filter(img, rng.uniform(0.3, 1.2))
            img = img + rng.normal(0, rng.uniform(0.01, 0.08), img.shape).astype(np.float32)
            zz = np.linspace(-1, 1, PATCH, dtype=np.float32)
            bias = 1 + rng.uniform(-0.2, 0.2) * zz[:, None, None] + rng.uniform(-0.2, 0.2) * zz[None, :, None]
            img = img * bias
        else:
            img = img * rng.uniform(0.85, 1.15) + rng.uniform(-0.08, 0.08)
            if rng.random() < 0.5:
                img = img + rng.normal(0, rng.uniform(0.0, 0.04), img.shape).astype(np.float32)
            if rng.random() < 0.3:
                img = ndimage.gaussian_filter(img, rng.uniform(0.3, 0.9))
        return np.clip(img, 0, 1).astype(np.float32)

    def sample(self, count: int | None = None) -> Sample:
        """Sample number ``count`` (default: the next one)."""
        if count is not None:
            self.count = int(count)
        self.rng = np.random.default_rng([self.seed, self.rank, self.count, 1])
        for _ in range(50):
            vol = self._volume()
            ids = np.asarray(list(vol.points))
            w = np.asarray([RARE_TARGETS.get(int(i), 1.0) for i in ids])
            if self.large_target_boost:
                w = w * np.where([vol.ml[int(i)] >= self.large_target_ml for i in ids], 1 + self.large_target_boost, 1)
            label = int(ids[self.rng.choice(len(ids), p=w / w.sum())])
            pts = vol.points[label]
            scale = self._scale(vol.ml[label])
            center = pts[self.rng.integers(len(pts))] + self.rng.uniform(-self.shift, self.shift, 3) * scale
            m = self._affine()
            lab_u = self._cut(vol, center, m, 0, scale)
            target = lab_u == label
            if target.sum() < self.min_target_voxels:
                continue
            seed = int(self.rng.integers(2**31))
            img_u = self._intensity(self._cut(vol, center, m, 1, scale), lab_u, seed)
            image_v = target_v = face = None
            if self.rng.random() < self.p_cpp:
                touches = {(a, d): bool(target[(slice(None),) * a + ((slice(0, 2) if d < 0 else slice(-2, None)),)].any())
                           for a in range(3) for d in (-1, 1)}
                negative = self.p_cpp_negative > 0 and self.rng.random() < self.p_cpp_negative
                faces = [f for f, t in touches.items() if t != negative]
                if faces:
                    face = faces[self.rng.integers(len(faces))]
                    step = np.zeros(3)
                    step[face[0]] = face[1] * STRIDE * scale
                    c_v = center + m @ step
                    lab_v = self._cut(vol, c_v, m, 0, scale)
                    target_v = (lab_v == label) & (not negative)  # negative: nothing continues across this face
                    image_v = self._intensity(self._cut(vol, c_v, m, 1, scale), lab_v, seed)
            prior, first = self._prior(target, scale)
            self.count += 1
            return Sample(img_u, target, image_v, target_v, face, label, scale, prior, first)
        raise RuntimeError("could not find a patch with a big enough target in 50 tries; check the label maps")
