"""Pure functions behind the viewers: geometry and colours; no widgets, no matplotlib.

* :class:`Orientation` maps a CT array ``(z, y, x)`` onto its *canonical* LPS
  array ``(z', y', x')`` (z' feet → head, y' anterior → posterior, x' patient
  right → left) by an exact axis permutation and flips, as
  ``sitk.DICOMOrient(image, "LPS")`` does, but as numpy views (no copy).
* :func:`data_to_voxel` / :func:`voxel_to_data` convert between matplotlib data
  coordinates ``(xdata, ydata)`` of one view and voxel indices ``(z, y, x)`` of
  the ORIGINAL CT array.
* :func:`click_points`: where a view draws an object's click markers.
* :func:`predictor_labels` / :func:`check_labels` / :func:`label_colors`: what the overlays show, in
  which colours.
* :func:`downsample_mask` any-pools a mask for the 3D view; :func:`mask_surface` (from
  :mod:`ctsam3d_nb.meshes`: scikit-image marching cubes) turns it into a closed triangle mesh.

The three views show slices of the canonical array with ``imshow``'s default
extent, so pixel ``(row, col)`` is centred on data coordinates ``(col, row)``:

=========  =====  ======  ======  ======  ==========================================
view       slice  rows    cols    origin  what the user sees
=========  =====  ======  ======  ======  ==========================================
axial      z'     y'      x'      upper   anterior up, patient right on image left
coronal    y'     z'      x'      lower   head up, patient right on image left
sagittal   x'     z'      y'      lower   head up, anterior on image left
=========  =====  ======  ======  ======  ==========================================
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from ..anatomy import MAX_LABEL_VALUE, by_id, color_lut
from ..meshes import mask_surface

__all__ = [
    "VIEWS",
    "Orientation",
    "view_layout",
    "view_slice",
    "view_aspect",
    "canonical_to_data",
    "data_to_voxel",
    "voxel_to_data",
    "click_points",
    "predictor_labels",
    "check_labels",
    "label_colors",
    "predictor_legend",
    "labels_legend",
    "downsample_mask",
    "mask_surface",
]

VIEWS = ("axial", "coronal", "sagittal")

# view -> (slice axis, row axis, column axis) of the canonical (z', y', x') array, imshow origin
_LAYOUT = {
    "axial": (0, 1, 2, "upper"),
    "coronal": (1, 0, 2, "lower"),
    "sagittal": (2, 0, 1, "lower"),
}


def _check_view(view: str) -> tuple[int, int, int, str]:
    try:
        return _LAYOUT[view]
    except (KeyError, TypeError):
        raise ValueError(f"unknown view {view!r}; views are {VIEWS}") from None


@dataclass(frozen=True)
class Orientation:
    """How a CT array ``(z, y, x)`` maps onto its canonical LPS array ``(z', y', x')``.

    Attributes:
        ct_shape: shape of the original array ``(z, y, x)``.
        perm: canonical axis ``a`` is original numpy axis ``perm[a]``.
        flip: per canonical axis, True if it runs opposite to its original axis.
        spacing: canonical voxel size in mm ``(z', y', x')``.

    Example:
        >>> o = Orientation.from_direction(np.diag([-1.0, -1.0, 1.0]), (4, 5, 6), (3.0, 1.0, 1.0))  # RAS
        >>> o.perm, o.flip, o.canonical_index((0, 0, 0)).tolist()
        ((0, 1, 2), (False, True, True), [0, 4, 5])
    """

    ct_shape: tuple[int, int, int]
    perm: tuple[int, int, int]
    flip: tuple[bool, bool, bool]
    spacing: tuple[float, float, float]

    @classmethod
    def from_ct(cls, ct) -> "Orientation":
        """The orientation of a :class:`~ctsam3d_nb.volume.CTVolume`."""
        return cls.from_direction(ct.direction, ct.shape, ct.spacing)

    @classmethod
    def from_direction(cls, direction, shape, spacing_zyx=(1.0, 1.0, 1.0)) -> "Orientation":
        """From SimpleITK direction cosines (column ``c`` = physical direction of index axis
        ``c`` in (i, j, k) = (x, y, z) order), the array shape ``(z, y, x)`` and spacing ``(z, y, x)``.

        Each index axis is assigned the physical axis it is closest to (the assignment
        maximising the summed |cosines|, so oblique scans still get a permutation).
        """
        d = np.asarray(direction, dtype=np.float64).reshape(3, 3)
        sigma = max(itertools.permutations(range(3)), key=lambda s: sum(abs(d[s[c], c]) for c in range(3)))
        perm, flip = [], []
        for a in range(3):  # canonical numpy axis a <-> physical axis 2 - a (S, P, L)
            phys = 2 - a
            c = sigma.index(phys)  # index axis (i, j, k) lying along it
            perm.append(2 - c)  # numpy axis of that index axis
            flip.append(bool(d[phys, c] < 0))
        return cls(tuple(int(s) for s in shape), tuple(perm), tuple(flip),
                   tuple(float(spacing_zyx[n]) for n in perm))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Canonical array shape ``(z', y', x')``."""
        return tuple(self.ct_shape[n] for n in self.perm)

    def to_canonical(self, array: np.ndarray) -> np.ndarray:
        """The canonical view ``(z', y', x', ...)`` of an array on the CT grid (no copy)."""
        a = np.asarray(array)
        if a.shape[:3] != self.ct_shape:
            raise ValueError(f"array shape {a.shape[:3]} differs from the CT's {self.ct_shape} (z, y, x)")
        a = np.transpose(a, self.perm + tuple(range(3, a.ndim)))
        flips = tuple(ax for ax in range(3) if self.flip[ax])
        return np.flip(a, flips) if flips else a

    def canonical_index(self, voxel_zyx) -> np.ndarray:
        """Original voxel ``(z, y, x)`` (shape ``(..., 3)``) → canonical index ``(z', y', x')``."""
        v = np.asarray(voxel_zyx)
        c = v[..., list(self.perm)]
        n = np.asarray(self.shape) - 1
        return np.where(self.flip, n - c, c)

    def ct_index(self, canonical_zyx) -> np.ndarray:
        """Canonical index ``(z', y', x')`` (shape ``(..., 3)``) → original voxel ``(z, y, x)``."""
        c = np.asarray(canonical_zyx)
        c = np.where(self.flip, np.asarray(self.shape) - 1 - c, c)
        v = np.empty_like(c)
        v[..., list(self.perm)] = c
        return v


def view_layout(view: str) -> tuple[int, int, int, str]:
    """``(slice_axis, row_axis, col_axis, imshow_origin)`` of a view, axes of the canonical array."""
    return _check_view(view)


def view_slice(canonical: np.ndarray, view: str, k: int) -> np.ndarray:
    """The 2D image ``(rows, cols)`` a view shows at canonical slice ``k`` (a view, no copy)."""
    s = _check_view(view)[0]
    return canonical[(slice(None),) * s + (int(k),)]


def view_aspect(orient: Orientation, view: str) -> float:
    """imshow ``aspect``: row spacing / column spacing, so pixels have their physical shape."""
    _, r, c, _ = _check_view(view)
    return orient.spacing[r] / orient.spacing[c]


def canonical_to_data(view: str, canonical_zyx) -> tuple[int, float, float]:
    """Canonical index ``(z', y', x')`` → ``(slice_index, xdata, ydata)`` in ``view``."""
    s, r, c, _ = _check_view(view)
    return int(canonical_zyx[s]), float(canonical_zyx[c]), float(canonical_zyx[r])


def data_to_voxel(orient: Orientation, view: str, slice_index: int, xdata: float, ydata: float):
    """Matplotlib data coordinates in ``view`` at canonical slice ``slice_index`` → voxel ``(z, y, x)``.

    Args:
        orient: the CT's :class:`Orientation`.
        view: "axial", "coronal" or "sagittal".
        slice_index: canonical slice shown (the view's slider value).
        xdata, ydata: ``event.xdata``, ``event.ydata`` (pixel centres are integers).

    Returns:
        ``(z, y, x)`` ints: the voxel of the ORIGINAL CT array under the point.

    Raises:
        ValueError: the point or the slice lies outside the image.
    """
    s, r, c, _ = _check_view(view)
    if xdata is None or ydata is None or not (math.isfinite(xdata) and math.isfinite(ydata)):
        raise ValueError(f"no data coordinates ({xdata}, {ydata}): the point is not on the image")
    canon = [0, 0, 0]
    canon[s] = int(slice_index)
    canon[r] = int(math.floor(ydata + 0.5))
    canon[c] = int(math.floor(xdata + 0.5))
    for a, name in zip((s, r, c), ("slice", "row", "column")):
        if not 0 <= canon[a] < orient.shape[a]:
            raise ValueError(f"{name} {canon[a]} is outside the {view} image (0..{orient.shape[a] - 1})")
    return tuple(int(v) for v in orient.ct_index(np.asarray(canon)))


def voxel_to_data(orient: Orientation, view: str, voxel_zyx) -> tuple[int, float, float]:
    """Voxel ``(z, y, x)`` of the original CT → ``(slice_index, xdata, ydata)`` in ``view``.

    Fractional voxels are rounded to the nearest slice; ``xdata``/``ydata`` keep the fraction.
    """
    canon = orient.canonical_index(np.asarray(voxel_zyx, dtype=np.float64))
    s, xd, yd = canonical_to_data(view, canon)
    return int(math.floor(canon[_check_view(view)[0]] + 0.5)), xd, yd


def click_points(orient: Orientation, view: str, slice_index: int, clicks) -> tuple[np.ndarray, np.ndarray]:
    """Where ``view`` at canonical slice ``slice_index`` draws the markers of ``clicks``.

    Args:
        orient: the CT's :class:`Orientation`.
        view: "axial", "coronal" or "sagittal".
        slice_index: the canonical slice shown.
        clicks: :class:`~ctsam3d_nb.predictor_state.Click` records (``ct_zyx`` voxel of the CT, ``positive``).

    Returns:
        ``(positive, negative)``: ``(N, 2)`` float arrays of ``(xdata, ydata)``, the clicks on that slice only.
    """
    out = {True: [], False: []}
    for click in clicks:
        k, xd, yd = voxel_to_data(orient, view, click.ct_zyx)
        if k == slice_index:
            out[bool(click.positive)].append((xd, yd))
    return tuple(np.array(out[sign], float).reshape(-1, 2) for sign in (True, False))


# ---------------------------------------------------------------------------- labels and colours
def check_labels(labels, shape) -> tuple[np.ndarray, tuple[int, ...]]:
    """A label map or bool mask for the overlays, checked against the CT ``shape`` ``(z, y, x)``.

    Returns:
        ``(labels, ids)``: the array (a bool mask as uint8 0/1, a view) and the non-zero ids present, sorted.

    Raises:
        ValueError: another shape, negative ids or ids above 65535 (uint16, like every label map here).
        TypeError: neither bool nor integers.
    """
    lab = np.asarray(labels)
    if lab.shape != tuple(shape):
        raise ValueError(f"labels shape {lab.shape} differs from the CT's {tuple(shape)} (z, y, x)")
    if lab.dtype.kind not in "biu":
        raise TypeError(f"labels must be bool or integer ids, got dtype {lab.dtype}")
    if lab.dtype == bool:
        lab = lab.view(np.uint8)
    if not lab.size:
        return lab, ()
    if lab.min() < 0:
        raise ValueError(f"labels hold negative values ({lab.min()}): label ids must be >= 0")
    if lab.max() > MAX_LABEL_VALUE:
        raise ValueError(f"labels hold id {lab.max()}: label ids must be 0..{MAX_LABEL_VALUE} (uint16, like every "
                         "label map this package reads or writes); relabel the map to ids in that range")
    ids = np.flatnonzero(np.bincount(lab.ravel()))
    return lab, tuple(int(i) for i in ids if i > 0)


def predictor_labels(predictor):
    """The predictor's objects as ``(labels, colors)``, computed once per call.

    ``labels`` is on the CT grid ``(z, y, x)``: the bool mask when there is a single
    object (value 1; no label map needed), else ``predictor.label_map`` (ontology ids),
    or None without objects. ``colors`` maps label value → RGB.
    """
    objs = predictor.objects
    if not objs:
        return None, {}
    if len(objs) == 1:
        return predictor.mask, {1: objs[0].color}
    return predictor.label_map, {o.label_id: o.color for o in objs}


def predictor_legend(predictor) -> list[tuple[int, str, tuple[int, int, int], bool]]:
    """``(label value, name, rgb, is_current)`` per object, label values as :func:`predictor_labels` draws them."""
    objs = predictor.objects
    return [(1 if len(objs) == 1 else o.label_id, o.name, tuple(int(c) for c in o.color), i == predictor.current)
            for i, o in enumerate(objs)]


def labels_legend(ids, lut: np.ndarray, names: dict | None = None) -> list[tuple[int, str, tuple[int, int, int], bool]]:
    """``(label value, name, rgb, False)`` per non-zero id: names from ``names``, else the ontology, else "label i"."""
    out = []
    for i in sorted(int(i) for i in ids if i > 0):
        name = (names or {}).get(i)
        if name is None:
            try:
                name = by_id(i).name
            except KeyError:
                name = f"label {i}"
        rgb = tuple(int(c) for c in lut[i, :3]) if i < len(lut) else (255, 64, 64)
        out.append((i, str(name), rgb, False))
    return out


def label_colors(n: int, colors: dict | None = None, alpha: float = 0.45) -> np.ndarray:
    """RGBA uint8 lookup table ``(n, 4)``: ontology colours, ``colors`` overrides, 0 transparent."""
    base = color_lut()
    lut = np.zeros((max(int(n), 2), 4), np.uint8)
    k = min(len(lut), len(base))
    lut[:k, :3] = base[:k]
    if len(lut) > len(base):  # custom ids: stable random colours
        lut[len(base):, :3] = np.random.default_rng(0).integers(60, 255, (len(lut) - len(base), 3))
    for i, rgb in (colors or {}).items():
        if 0 < i < len(lut):
            lut[i, :3] = rgb
    lut[1:, 3] = int(round(255 * float(alpha)))
    return lut


# ---------------------------------------------------------------------------- meshes
def downsample_mask(mask: np.ndarray, factor: int) -> np.ndarray:
    """Any-pool a 3D bool mask by an integer ``factor``: voxel ``i`` of the result is True if
    any of voxels ``factor*i .. factor*i + factor-1`` is (edges padded with False)."""
    m = np.asarray(mask, bool)
    f = int(factor)
    if f <= 1:
        return m
    m = np.pad(m, [(0, (-n) % f) for n in m.shape])
    z, y, x = (n // f for n in m.shape)
    return m.reshape(z, f, y, f, x, f).any(axis=(1, 3, 5))
