"""Synthetic lesions: tumour-like blobs inserted into the liver, kidneys, lungs and bones of a CT.

Lesions are the standard zero-shot test of a promptable model: no anatomy atlas knows where they
are, so only "the blob under the click, bounded by its edges" segments them. `insert_lesions`
draws each lesion from an rng, clipped to its host organ:

* shape: an ellipsoid (random axes and rotation, 6-40 mm) whose surface is pushed in and out by
  smooth noise (lobulated; lung nodules also spiculated), kept as one connected piece;
* intensity, by host (HU): liver hypodense masses (host - 25..80, often with a necrotic core and
  an enhancing rim), hyperdense masses (host + 25..70), cysts (0..20, homogeneous); kidney cysts
  (0..20, sometimes a thin capsule) and solid masses (host - 20..90, heterogeneous, necrosis);
  lung nodules, solid (10..60) and part-solid (a solid core in a halo at -115..-60 HU: real
  ground glass lies at -700..-300 HU, below the model window, where it would be invisible);
  bone lytic (10..70, sometimes a sclerotic rim) and sclerotic (host + 300..700, only where the
  host is dark enough for it to show in the model window, else a lytic lesion is drawn);
* internal texture (smooth noise), partial-volume (smooth) edges, and image noise where the host
  was clipped by the window (lung, bone) so the lesion is not noise-free.

Every lesion keeps ``min_contrast_hu`` to its host (mean HU), measured in the model window
(`~ctsam3d_nb.grid.HU_WINDOW`), so it is visible to the model.

Lesion ids (`LESION_KINDS`, 201..209) lie outside the ontology (1..137): they live in a separate
lesion label map and are never written into an ontology label map (`lesion_name` names them).

Example:
    >>> ct, labels, _ = make_phantom(900000)                             # doctest: +SKIP
    >>> img, lesion_map, found = insert_lesions(ct.array, labels, np.random.default_rng(1),
    ...                                         n=2, hosts=("liver",), hu=True)  # doctest: +SKIP
    >>> found[0].name, found[0].diameter_mm, lesion_map.max()               # doctest: +SKIP
    ('liver_hypodense', 21.3, 201)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..grid import HU_WINDOW

__all__ = ["LESION_HOSTS", "LESION_KINDS", "Lesion", "insert_lesions", "lesion_name"]

#: lesion kind -> id in a lesion label map (outside the ontology's 1..137; fits uint8)
LESION_KINDS: dict[str, int] = {
    "liver_hypodense": 201, "liver_hyperdense": 202, "liver_cyst": 203,
    "kidney_cyst": 204, "kidney_solid": 205,
    "lung_nodule_solid": 206, "lung_nodule_part_solid": 207,
    "bone_lytic": 208, "bone_sclerotic": 209,
}
_NAMES = {v: k for k, v in LESION_KINDS.items()}

#: host class -> ontology ids a lesion of that class may lie in
LESION_HOSTS: dict[str, tuple[int, ...]] = {
    "liver": (5,),
    "kidney": (2, 3),
    "lung": (10, 11, 12, 13, 14, 122, 123),  # lobes (TotalSegmentator) or whole lungs (phantom)
    "bone": (25, *range(26, 51), 69, 70, 75, 76, 77, 78),  # sacrum, vertebrae, humeri, femurs, hips
}
_KINDS_BY_HOST = {
    "liver": ("liver_hypodense", "liver_hypodense", "liver_hyperdense", "liver_cyst"),
    "kidney": ("kidney_cyst", "kidney_solid"),
    "lung": ("lung_nodule_solid", "lung_nodule_solid", "lung_nodule_part_solid"),
    "bone": ("bone_lytic", "bone_lytic", "bone_sclerotic"),
}


def lesion_name(id: int) -> str:
    """Name of a lesion id (201..209), e.g. ``lesion_name(201) == "liver_hypodense"``."""
    if int(id) not in _NAMES:
        raise KeyError(f"{id} is not a lesion id; lesion ids are {sorted(_NAMES)} (LESION_KINDS)")
    return _NAMES[int(id)]


@dataclass
class Lesion:
    """One inserted lesion.

    Attributes:
        name: its kind (a key of `LESION_KINDS`); ``id`` is its value in the lesion label map.
        host: ontology id of the structure it lies in.
        center: voxel index ``(z, y, x)`` of its centre.
        diameter_mm: equivalent-sphere diameter of the final (clipped) mask, mm.
        box: slices ``(z, y, x)`` of the image holding the mask; ``mask`` is bool of the box's shape.
        contrast_hu: mean HU inside minus mean HU of the host around it, both in the model window.
    """

    name: str
    id: int
    host: int
    center: tuple[int, int, int]
    diameter_mm: float
    box: tuple[slice, slice, slice]
    mask: np.ndarray
    contrast_hu: float

    def full_mask(self, shape) -> np.ndarray:
        """The lesion as a bool mask of the whole image (``shape`` = the image's ``(z, y, x)``)."""
        out = np.zeros(shape, bool)
        out[self.box] = self.mask
        return out


def _smooth_noise(rng, shape, sigma) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma, mode="wrap")
    return n / (n.std() + 1e-6)


def _shape(rng, r_vox: float, spiculated: bool):
    """Signed inside-ness ``s`` (> 0 inside, ~distance to the surface in units of the radius) of an
    irregular blob on a local grid of half-width ``R``; returns ``(s, R)``."""
    R = int(np.ceil(r_vox * 1.45)) + 3
    g = np.mgrid[-R:R + 1, -R:R + 1, -R:R + 1].reshape(3, -1).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = rng.uniform(0.75, 1.25, 3)
    axes = axes / np.prod(axes) ** (1 / 3) * r_vox
    rho = np.sqrt((((q.T @ g) / axes[:, None]) ** 2).sum(0)).reshape((2 * R + 1,) * 3)
    side = (2 * R + 1,) * 3
    s = 1 - rho - rng.uniform(0.06, 0.2) * _smooth_noise(rng, side, max(1.0, r_vox / 2.5))
    if spiculated:  # fine, sharp extensions at the surface (lung nodules)
        s = s - rng.uniform(0.05, 0.15) * _smooth_noise(rng, side, 0.8) * (rho > 0.7)
    return s, R


def _visible(hu, lo=HU_WINDOW[0], hi=HU_WINDOW[1]):
    return np.clip(hu, lo, hi)


def _lesion_hu(name, host_hu, rng, min_contrast):
    """Core HU of a lesion of kind ``name`` in a host of mean ``host_hu`` (window-clipped);
    None if it cannot keep ``min_contrast`` in the model window."""
    if name == "liver_hypodense":
        v = host_hu - rng.uniform(25, 80)
    elif name == "liver_hyperdense":
        v = host_hu + rng.uniform(25, 70)
    elif name in ("liver_cyst", "kidney_cyst"):
        v = rng.uniform(0, 20)
    elif name == "kidney_solid":
        v = host_hu - rng.uniform(20, 90)
    elif name in ("lung_nodule_solid", "lung_nodule_part_solid"):
        v = rng.uniform(10, 60)
    elif name == "bone_lytic":
        v = rng.uniform(10, 70)
    else:  # bone_sclerotic
        v = host_hu + rng.uniform(300, 700)
    c = float(_visible(v) - host_hu)
    if abs(c) < min_contrast:  # push away from the host, inside the window; give up if there is no room
        # a (water) cyst goes darker: pushed brighter, one in a dark non-contrast kidney came out hyperdense
        v = host_hu + (-1.0 if name.endswith("cyst") else np.sign(c or 1.0)) * min_contrast
        if abs(float(_visible(v)) - host_hu) < min_contrast - 1e-3:
            return None
    return float(v)


def _paint(name, s, r_vox, host_hu, core_hu, rng):
    """HU field of the lesion on its local grid (texture, necrosis, rim, part-solid halo)."""
    depth = s * r_vox  # ~voxels from the surface, inside > 0
    hu = np.full(s.shape, core_hu, np.float32)
    cyst = name.endswith("cyst")
    amp = rng.uniform(0, 3) if cyst else rng.uniform(4, 15)
    hu += amp * _smooth_noise(rng, s.shape, rng.uniform(0.8, 2.0))
    if name in ("liver_hypodense", "kidney_solid", "bone_lytic") and r_vox >= 4 and rng.random() < 0.4:
        core = (s > rng.uniform(0.35, 0.6)) & (_smooth_noise(rng, s.shape, 1.5) > -0.5)
        hu[core] = rng.uniform(5, 25)  # necrosis: fluid
    if name == "lung_nodule_part_solid":
        hu[s < rng.uniform(0.35, 0.6)] = rng.uniform(-115, -60)  # halo (window-visible ground glass)
    rim = {"liver_hypodense": (0.5, host_hu + rng.uniform(10, 50)),
           "kidney_solid": (0.5, host_hu + rng.uniform(10, 50)),
           "kidney_cyst": (0.3, min(core_hu + rng.uniform(15, 35), host_hu - 15)),  # a cyst's wall stays
           #   darker than the parenchyma (non-contrast kidneys are only ~30 HU: a brighter wall hid the cyst)
           "bone_lytic": (0.3, core_hu + rng.uniform(150, 300))}.get(name)
    if rim and r_vox >= 4 and rng.random() < rim[0]:
        width = rng.uniform(1.0, 2.0) if not cyst else rng.uniform(0.6, 1.0)
        hu[(depth > 0) & (depth < width)] = rim[1]
    return ndi.gaussian_filter(hu, 0.6)


def insert_lesions(image, labels, rng: np.random.Generator, n: int = 1, hosts=None,
                   diameter_mm=(6.0, 40.0), spacing_mm: float = 1.5, hu: bool = False,
                   min_contrast_hu: float = 25.0, min_voxels: int = 30, tries: int = 8):
    """Insert up to ``n`` lesions into the host organs of a CT.

    Args:
        image: ``(z, y, x)`` CT, either normalised to [0, 1] (the training representation: HU clipped
            to `~ctsam3d_nb.grid.HU_WINDOW` and scaled; the default) or in HU with ``hu=True``.
        labels: ``(z, y, x)`` ontology label map of ``image`` (hosts are found here; not modified).
        rng: every draw comes from it: the same rng state gives the same lesions.
        n: lesions to insert (fewer when the hosts have no room: check the returned list).
        hosts: host classes to use (keys of `LESION_HOSTS`); default all present. Each lesion draws
            one of the classes present, then one structure of that class, then a kind.
        diameter_mm: range of the drawn diameter (log-uniform), capped by what fits in the host.
        spacing_mm: isotropic voxel size of ``image`` (1.5 on the model grid).
        hu: ``image`` is in HU (returned in HU, float32), not normalised.
        min_contrast_hu: least |mean lesion - mean host| HU in the model window.
        min_voxels: smallest lesion (voxels); smaller draws are retried.
        tries: attempts per lesion.

    Returns:
        ``(image, lesion_map, lesions)``: the new image (float32, same scale as the input), a uint8
        ``(z, y, x)`` map of lesion kind ids (`LESION_KINDS`, 0 elsewhere) and the list of `Lesion`.
        Lesions lie inside their host structure, never overlap, and never touch the array border.
    """
    image = np.asarray(image)
    labels = np.asarray(labels)
    if image.shape != labels.shape or image.ndim != 3:
        raise ValueError(f"image {image.shape} and labels {labels.shape} must be the same 3D (z, y, x) shape")
    lo, hi = HU_WINDOW
    work = image.astype(np.float32) if hu else image.astype(np.float32) * (hi - lo) + lo
    classes = tuple(LESION_HOSTS) if hosts is None else tuple(hosts)
    unknown = [h for h in classes if h not in LESION_HOSTS]
    if unknown:
        raise ValueError(f"unknown lesion hosts {unknown}; choose from {list(LESION_HOSTS)}")
    boxes = ndi.find_objects(labels.astype(np.int32, copy=False) if labels.dtype.kind != "u" else labels)
    present = {c: [i for i in LESION_HOSTS[c] if i <= len(boxes) and boxes[i - 1] is not None] for c in classes}
    present = {c: ids for c, ids in present.items() if ids}
    lesion_map = np.zeros(labels.shape, np.uint8)
    taken = np.zeros(labels.shape, bool)
    touched = np.zeros(labels.shape, bool)  # voxels a lesion changed (the rest is returned bit-exact)
    found: list[Lesion] = []
    for _ in range(int(n)):
        for _ in range(tries):
            if not present:
                break
            cls = list(present)[rng.integers(len(present))]
            host_id = int(present[cls][rng.integers(len(present[cls]))])
            les = _one(work, labels, taken, touched, boxes[host_id - 1], host_id, cls, rng, diameter_mm,
                       spacing_mm, min_contrast_hu, min_voxels)
            if les is not None:
                lesion_map[les.box][les.mask] = les.id
                taken[les.box] |= ndi.binary_dilation(les.mask, iterations=2)
                found.append(les)
                break
    if hu:
        return work, lesion_map, found
    out = np.array(image, np.float32)
    out[touched] = np.clip((work[touched] - lo) / (hi - lo), 0, 1)
    return out, lesion_map, found


def _one(work, labels, taken, touched, hbox, host_id, cls, rng, diameter_mm, spacing_mm, min_contrast, min_voxels):
    """Draw and paint one lesion into ``work`` (HU, in place); None if it does not fit."""
    lo_win, hi_win = HU_WINDOW
    d = float(np.exp(rng.uniform(np.log(diameter_mm[0]), np.log(diameter_mm[1]))))
    # host region with a margin, so distances to the host's edge are exact
    box = tuple(slice(max(s.start - 2, 0), min(s.stop + 2, n)) for s, n in zip(hbox, labels.shape))
    host = (labels[box] == host_id) & ~taken[box]
    if host.sum() < min_voxels:
        return None
    dist = ndi.distance_transform_edt(host)
    grids = np.ogrid[box]
    mz, my, mx = (np.minimum(g, n - 1 - g) for g, n in zip(grids, labels.shape))
    edge = np.minimum(np.minimum(mz, my), mx)  # voxels to the array border
    room = np.minimum(dist, (edge - 2) / 1.45)  # radius a lesion centred here can have
    r = min(d / 2 / spacing_mm, 1.1 * float(room.max()))
    if r * spacing_mm * 2 < diameter_mm[0] * 0.8:
        return None
    cand = np.argwhere(room >= 0.85 * r)
    if len(cand) == 0:
        return None
    center = tuple(int(c + s.start) for c, s in zip(cand[rng.integers(len(cand))], box))
    name = _KINDS_BY_HOST[cls][rng.integers(len(_KINDS_BY_HOST[cls]))]
    s, R = _shape(rng, r, spiculated=name.startswith("lung"))
    lbox = tuple(slice(max(c - R, 0), min(c + R + 1, n)) for c, n in zip(center, labels.shape))
    s = s[tuple(slice(b.start - (c - R), b.stop - (c - R)) for b, c in zip(lbox, center))]
    host_l = (labels[lbox] == host_id) & ~taken[lbox]
    comp, _ = ndi.label((s > 0) & host_l, np.ones((3, 3, 3)))
    piece = comp[tuple(c - b.start for c, b in zip(center, lbox))]
    if piece == 0:
        return None
    mask = ndi.binary_fill_holes(comp == piece) & host_l  # one connected piece, inside the host
    touches = any(mask.take(0, a).any() and b.start == 0 or mask.take(-1, a).any() and b.stop == n
                  for a, (b, n) in enumerate(zip(lbox, labels.shape)))
    if mask.sum() < min_voxels or touches:
        return None
    region = work[lbox]
    # the host right around the lesion (a 1-4 voxel shell): its contrast is what a reader and the model see;
    # a whole-box median missed darker neighbourhoods (renal sinus) where cysts then vanished
    around = host_l & ndi.binary_dilation(mask, iterations=4) & ~ndi.binary_dilation(mask, iterations=1)
    if around.sum() < 10:
        around = host_l & ~mask
    raw = region[around] if around.sum() >= 10 else work[box][host]
    host_raw = float(np.median(raw))  # median: vessels inside an organ's label do not shift it
    host_hu = float(np.median(_visible(raw)))
    if name == "bone_sclerotic" and host_hu > hi_win - min_contrast:
        name = "bone_lytic"  # a sclerotic lesion would not show against bright bone in the model window
    core = _lesion_hu(name, host_hu, rng, min_contrast)
    if core is None:
        return None
    field = _paint(name, s, r, host_hu, core, rng)
    # the host's own texture and noise carry over into the lesion (no smoother-than-tissue shortcut);
    # where the window flattened the host (lung, bone) fresh noise stands in for it
    resid = np.clip(region - host_raw, -60, 60)
    flat = float(np.mean((_visible(raw) <= lo_win) | (_visible(raw) >= hi_win)))
    resid = resid + rng.uniform(8, 20) * flat * _smooth_noise(rng, s.shape, 0.7)
    # partial-volume weight: 1 inside, smooth over ~1 voxel at the surface, 0 outside the host and the piece
    w = np.clip(0.5 + s * r / rng.uniform(0.6, 1.4), 0, 1) * ndi.binary_dilation(mask, iterations=2) * host_l
    w[mask] = np.maximum(w[mask], 0.5)
    new = (1 - w) * region + w * (field + resid)
    contrast = float(_visible(new[mask]).mean() - host_hu)
    if abs(contrast) < 0.8 * min_contrast or contrast * (float(_visible(core)) - host_hu) <= 0:
        return None  # a rim, halo or necrosis ate (or turned) the contrast of a small lesion
    region[...] = new
    touched[lbox] |= w > 0
    diameter = float((6 * mask.sum() / np.pi) ** (1 / 3) * spacing_mm)
    return Lesion(name, LESION_KINDS[name], host_id, center, round(diameter, 1), lbox, mask, round(contrast, 1))
