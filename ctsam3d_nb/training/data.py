"""Training data: patch sampling from a pool of volumes, targets and augmentation.

A *source* (`~ctsam3d_nb.training.sources`) yields ``(image, labels)`` pairs on the 1.5 mm model grid
(``image`` float32 in [0, 1], ``labels`` integer ontology ids, both ``(z, y, x)``).
:class:`PatchSampler` keeps a small pool of such volumes and cuts training
samples from them: a randomly chosen structure as the binary target (or a union of structures,
a sub-part of one, or an inserted synthetic lesion), a 64³ patch around it with
translation/scale/rotation and intensity augmentation (real volumes: also elastic deformation and
contrast phases), optionally SynthSeg-style domain randomisation, and the neighbouring patch V
used to train the cross-patch prompt net.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..clicks import darker_contents
from ..grid import LEVEL_FACTORS
from ..patches import PATCH, STRIDE, crop
from ..phantom.lesions import LESION_HOSTS, insert_lesions
from .augment import ElasticWarp, contrast_phase
from .pool import Volume
from .sources import (  # noqa: F401  (re-exported: the sources lived here before)
    case_index, dataset_source, find_pairs, folder_source, load_on_grid, phantom_source)
from .targets import (  # noqa: F401  (SLAB_MM re-exported: it lived here before)
    SLAB_MM, coarse_prior, contents_in_patch, contents_index, leak_prior, neighbour_leak, paint_contents,
    pick_union, slab_keep, subpart, zoom_prior)

# target sampling weights: large background-like structures and the many ribs and
# vertebrae are drawn less often than organs and vessels
RARE_TARGETS = {118: 0.15, 119: 0.3, 120: 0.3, 121: 0.3, **{i: 0.3 for i in (*range(25, 51), *range(92, 116))}}


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
    #   error of the prior: a refine step with a click), "none" (a refine step without a click), "contents"
    #   (``click``, on what the target holds: `targets.contents_in_patch`; when None, as for "target")
    kind: str = "structure"  # "structure" (one label), "union" (several, `targets.UNION_GROUPS`), "subpart"
    #   (`targets.subpart`) or "lesion" (an inserted lesion; ``label`` is then its id in `LESION_KINDS`)
    click: tuple | None = None  # a "contents" sample's first click (z, y, x), or None
    leak: np.ndarray | None = None  # (64, 64, 64) bool, where a mask leaking from the target runs on
    #   (`targets.neighbour_leak`), for seeded rounds that carry a neighbour's leak; None unless the sampler
    #   was asked (``leaks``) or the target has no such neighbour


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
        p_leak_prior: probability that a sample starts from a mask that leaked into a neighbouring structure
            (`~ctsam3d_nb.training.targets.leak_prior`), its first click the negative one on the leak.
        p_lesion, p_subpart, p_union, p_contents: probabilities that the target is an inserted synthetic lesion
            (`~ctsam3d_nb.phantom.lesions.insert_lesions`, 1-3 per patch, one is the target), a sub-part
            of a structure, a union of structures or a structure clicked on its contents
            (`~ctsam3d_nb.training.targets`); the rest are single structures. Their sum is at most 1.
        p_elastic, elastic_mm: real volumes only: probability of a smooth elastic deformation
            (`~ctsam3d_nb.training.augment.ElasticWarp`) of up to ``elastic_mm``.
        p_contrast: real volumes only: probability of a contrast-phase change and gamma
            (`~ctsam3d_nb.training.augment.contrast_phase`).
        real_uniform_targets: on real volumes draw every labelled structure equally often
            (`RARE_TARGETS` and its down-weighting of vertebrae and ribs apply to phantoms only).
        p_slab: probability that the patch is cut to a scan of limited z coverage: only a slab of
            `SLAB_MM` thickness through the target is kept, the rest is what the predictor pads a scan
            with (0 after normalisation), the target too (partial-coverage scans, like the 40-mm
            DICOM series here; no CPP partner).
        leaks: give structure samples without a prior a ``leak`` (`Sample`; drawn from a random stream of its
            own, so the rest of the data is the same with and without).
        difficulty: a `~ctsam3d_nb.training.difficulty.TargetDifficulty` whose factors scale the structures'
            sampling weights (the training step updates it; None = off).
    """

    def __init__(self, sources, seed=0, rank=0, pool_size=3, refresh_every=48, p_augment=0.6,
                 max_shift_mm=20.0, p_domain_rand=0.3, p_cpp=0.5, min_target_voxels=30,
                 p_cpp_negative=0.0, large_target_boost=0.0, large_target_ml=150.0,
                 p_multiscale=0.0, max_scale=4.0, p_zoom_prior=0.5, p_refine_prior=0.0, min_coarse_voxels=300,
                 p_lesion=0.0, p_subpart=0.0, p_union=0.0, p_elastic=0.0, elastic_mm=6.0, p_contrast=0.0,
                 real_uniform_targets=False, p_slab=0.0, p_leak_prior=0.0, p_contents=0.0, leaks=False,
                 difficulty=None):
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
        self.p_leak_prior = float(p_leak_prior)
        self.min_coarse_voxels = int(min_coarse_voxels)
        self.p_kind = {"lesion": float(p_lesion), "subpart": float(p_subpart), "union": float(p_union),
                       "contents": float(p_contents)}
        if (total := sum(self.p_kind.values())) > 1 + 1e-9:
            raise ValueError(f"p_lesion + p_subpart + p_union + p_contents must be <= 1, got {total}")
        self.p_elastic, self.elastic_mm = float(p_elastic), float(elastic_mm)
        self.p_contrast, self.real_uniform_targets = float(p_contrast), bool(real_uniform_targets)
        self.p_slab, self.difficulty, self.leaks = float(p_slab), difficulty, bool(leaks)
        self.pool: dict[int, Volume] = {}
        self.count = 0
        self.rng = np.random.default_rng([self.seed, self.rank, 0])

    def _load(self, v: int) -> Volume:
        r = np.random.default_rng([self.seed, self.rank, v, 7])
        w = np.asarray([s[1] for s in self.sources], float)
        get = self.sources[r.choice(len(self.sources), p=w / w.sum())][0]
        image, labels = get(v * 1000 + self.rank)
        vol = Volume(image, labels, r)
        vol.real = bool(getattr(get, "real", False))
        return vol

    @classmethod
    def from_config(cls, cfg, sources, rank: int = 0, difficulty=None) -> "PatchSampler":
        """The sampler a `~ctsam3d_nb.training.TrainConfig` asks for (every sampling field); ``difficulty``: the
        run's `~ctsam3d_nb.training.difficulty.TargetDifficulty` when ``cfg.hard_targets`` is set."""
        return cls(sources, seed=cfg.seed, rank=rank, pool_size=cfg.pool_size, refresh_every=cfg.refresh_every,
                   p_augment=cfg.p_augment, p_domain_rand=cfg.p_domain_rand, p_cpp=cfg.p_cpp,
                   p_cpp_negative=cfg.p_cpp_negative, large_target_boost=cfg.large_target_boost,
                   large_target_ml=cfg.large_target_ml, p_multiscale=cfg.p_multiscale, max_scale=cfg.max_scale,
                   p_zoom_prior=cfg.p_zoom_prior, p_refine_prior=cfg.p_refine_prior, p_lesion=cfg.p_lesion,
                   p_subpart=cfg.p_subpart, p_union=cfg.p_union, p_elastic=cfg.p_elastic,
                   elastic_mm=cfg.elastic_mm, p_contrast=cfg.p_contrast,
                   real_uniform_targets=cfg.real_uniform_targets, p_slab=cfg.p_slab, p_leak_prior=cfg.p_leak_prior,
                   p_contents=cfg.p_contents, leaks=cfg.p_seeded_leak > 0, difficulty=difficulty)

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
    def _cut(vol: Volume, center, matrix, order, scale: float = 1.0, warp=None):
        """64³ resampled around ``center`` (index of the 1.5 mm grid) with output→input ``matrix``, at
        ``scale`` x 1.5 mm voxels (cut from the nearest finer level of the volume); out of volume: 0.
        ``warp``: an `ElasticWarp` (displacements in 1.5 mm voxels) applied on top, or None."""
        base = max(f for f in LEVEL_FACTORS if f <= scale + 1e-6)
        vol = vol.level(base)
        src = vol.image if order == 1 else vol.labels
        matrix = matrix * (scale / base)
        half = (PATCH - 1) / 2
        offset = np.asarray(center, float) / base - matrix @ np.full(3, half)
        if warp is not None:
            pts = warp.coords(matrix, offset, PATCH, base)
            out = ndimage.map_coordinates(src, pts, order=order, mode="constant", cval=0, prefilter=False)
            return out.reshape((PATCH,) * 3)
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

    def _prior(self, target: np.ndarray, scale: float, labels: np.ndarray):
        """The mask channel a sample starts from, and how its first click is chosen (see `Sample`)."""
        if scale > 1.5 and self.rng.random() < self.p_zoom_prior:
            prior = zoom_prior(target, self.rng)
            if prior is not None:
                return prior, "prior"
        if self.p_leak_prior > 0 and self.rng.random() < self.p_leak_prior:  # (no draw when off: streams stay)
            prior = leak_prior(target, labels, self.rng)
            if prior is not None:
                return prior, "error"
        if self.rng.random() < self.p_refine_prior:
            return coarse_prior(target, self.rng), ("none" if self.rng.random() < 0.5 else "error")
        return None, "target"

    def _intensity(self, img: np.ndarray, labels: np.ndarray, seed: int, real: bool = False) -> np.ndarray:
        rng = np.random.default_rng(seed)  # same seed for U and V: the pair looks alike
        if real and self.p_contrast > 0:
            r = np.random.default_rng([seed, 5])
            if r.random() < self.p_contrast:
                img = contrast_phase(img, labels, r)
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

    def _kind(self) -> str:
        """The kind of target of the next sample (no draw at all when only structures are asked for)."""
        if not any(self.p_kind.values()):
            return "structure"
        u = self.rng.random()
        for kind, p in self.p_kind.items():
            if u < p:
                return kind
            u -= p
        return "structure"

    def _pick_label(self, vol: Volume, among=None) -> int:
        ids = np.asarray(list(vol.points if among is None else among))
        w = np.asarray([1.0 if vol.real and self.real_uniform_targets else RARE_TARGETS.get(int(i), 1.0)
                        for i in ids])
        if self.large_target_boost:
            w = w * np.where([vol.ml[int(i)] >= self.large_target_ml for i in ids], 1 + self.large_target_boost, 1)
        if self.difficulty is not None:
            w = w * self.difficulty.factors(ids)
        return int(ids[self.rng.choice(len(ids), p=w / w.sum())])

    def _warp(self, vol: Volume):
        """An elastic deformation for this sample (real volumes, with probability ``p_elastic``), or None."""
        if not vol.real or self.p_elastic <= 0 or self.rng.random() >= self.p_elastic:
            return None
        return ElasticWarp(self.rng, self.elastic_mm)

    def _lesion_sample(self, vol: Volume) -> Sample | None:
        """1-3 lesions inserted into one host class in a patch; the first is the target (no CPP partner:
        a lesion fits in one patch). None when the volume or patch has no room for one."""
        hosts = {h: [i for i in ids if i in vol.points] for h, ids in LESION_HOSTS.items()}
        hosts = {h: ids for h, ids in hosts.items() if ids}
        if not hosts:
            return None
        host = list(hosts)[self.rng.integers(len(hosts))]
        label = hosts[host][self.rng.integers(len(hosts[host]))]
        pts = vol.points[label]
        center = pts[self.rng.integers(len(pts))] + self.rng.uniform(-self.shift, self.shift, 3) / 2
        m = self._affine()
        warp = self._warp(vol)
        lab_u = self._cut(vol, center, m, 0, 1.0, warp)
        img_u = self._cut(vol, center, m, 1, 1.0, warp)
        img_u, lesion_map, found = insert_lesions(img_u, lab_u, self.rng, n=1 + int(self.rng.integers(3)),
                                                  hosts=(host,), min_voxels=self.min_target_voxels)
        if not found:
            return None
        seed = int(self.rng.integers(2**31))
        # lesions get ids of their own, so domain randomisation paints them apart from their host
        img_u = self._intensity(img_u, np.where(lesion_map > 0, lesion_map, lab_u), seed, vol.real)
        return Sample(img_u, found[0].full_mask(lab_u.shape), None, None, None, found[0].id, kind="lesion")

    def sample(self, count: int | None = None) -> Sample:
        """Sample number ``count`` (default: the next one)."""
        if count is not None:
            self.count = int(count)
        self.rng = np.random.default_rng([self.seed, self.rank, self.count, 1])
        for _ in range(50):
            vol = self._volume()
            kind = self._kind()
            if kind == "lesion":
                got = self._lesion_sample(vol)
                if got is None:
                    continue
                self.count += 1
                return got
            members = pick_union(vol.points, self.rng) if kind == "union" else None
            held = contents_index(vol) if kind == "contents" else None  # {label: (its contents' points, median)}
            if members is None and not held:
                kind = "structure" if kind in ("union", "contents") else kind  # none in this volume: a structure
                label = self._pick_label(vol)
            else:
                label = self._pick_label(vol, held) if held else members[self.rng.integers(len(members))]
            pts = held[label][0] if held else vol.points[label]
            scale = 1.0 if held else self._scale(vol.ml[label])  # at the finest scale: coarser ones blur pockets
            center = pts[self.rng.integers(len(pts))] + self.rng.uniform(-self.shift, self.shift, 3) * scale
            m = self._affine()
            warp = self._warp(vol)
            lab_u = self._cut(vol, center, m, 0, scale, warp)
            target = lab_u == label if members is None else np.isin(lab_u, members)
            if target.sum() < self.min_target_voxels:
                continue
            prior = first = None
            if held:  # a structure, clicked on its contents
                first, kind = "contents", "structure"
            if kind == "union" and len(np.unique(lab_u[target])) < 2:
                continue  # one member in the patch: no union to learn here
            if kind == "subpart":
                got = subpart(target, self.rng, self.min_target_voxels)
                if got is None:
                    continue
                target, prior, first = got
            seed = int(self.rng.integers(2**31))
            img_u = self._cut(vol, center, m, 1, scale, warp)
            dark, click = contents_in_patch(target, img_u, held[label][1], self.rng) if held else (None, None)
            img_u = self._intensity(img_u, paint_contents(lab_u, dark), seed, vol.real)  # own id, as lesions have
            image_v = target_v = face = None
            if kind != "subpart" and self.rng.random() < self.p_cpp:  # a sub-part's extent is the prompt's
                touches = {(a, d): bool(target[(slice(None),) * a
                                               + ((slice(0, 2) if d < 0 else slice(-2, None)),)].any())
                           for a in range(3) for d in (-1, 1)}
                negative = self.p_cpp_negative > 0 and self.rng.random() < self.p_cpp_negative
                faces = [f for f, t in touches.items() if t != negative]
                if faces:
                    face = faces[self.rng.integers(len(faces))]
                    step = np.zeros(3)
                    step[face[0]] = face[1] * STRIDE * scale
                    c_v = center + m @ step
                    lab_v = self._cut(vol, c_v, m, 0, scale, warp)
                    hit = lab_v == label if members is None else np.isin(lab_v, members)
                    target_v = hit & (not negative)  # negative: nothing continues across this face
                    img_v = self._cut(vol, c_v, m, 1, scale, warp)  # its contents painted apart as in U
                    dark_v = None if dark is None else darker_contents(hit, img_v, erode=False, median=held[label][1])
                    image_v = self._intensity(img_v, paint_contents(lab_v, dark_v), seed, vol.real)
            if first is None:
                prior, first = self._prior(target, scale, lab_u)
            if self.p_slab > 0 and self.rng.random() < self.p_slab:
                keep = slab_keep(target, scale, self.rng, self.min_target_voxels, None if click is None else click[0])
                if keep is not None:  # the scan ends above and below: no neighbour to grow into along z either
                    img_u, target, lab_u = img_u * keep, target & keep, lab_u * keep
                    prior = None if prior is None else prior * keep
                    click = click if click is None or keep[click[0], 0, 0] else None
                    image_v = target_v = face = None
            leak = None
            if self.leaks and prior is None and kind == "structure":
                leak = neighbour_leak(target, lab_u, np.random.default_rng([self.seed, self.rank, self.count, 3]))
            self.count += 1
            return Sample(img_u, target, image_v, target_v, face, label, scale, prior, first, kind, click, leak)
        raise RuntimeError("could not find a patch with a big enough target in 50 tries; check the label maps")
