"""Reading label maps onto a CT's voxel grid (``load_labels``), exactly or not at all."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .anatomy import MAX_ID, MAX_LABEL_VALUE
from .errors import CTLoadError
from .image_checks import _check_geometry, _to_3d_scalar
from .image_files import _check_exists, _read_image
from .volume import CTVolume

__all__ = ["load_labels"]


def _signed_permutation(ct: CTVolume, lab: sitk.Image):
    """If ``lab``'s voxel grid is ``ct``'s grid with axes flipped/permuted, return
    (perm, flips) so that ``ct_array = flip(transpose(lab_array, perm), flips)``; else None."""
    s_ct = np.asarray(ct.image.GetSpacing())
    s_lab = np.asarray(lab.GetSpacing())
    d_lab = np.asarray(lab.GetDirection()).reshape(3, 3)
    a_ct = ct.direction * s_ct  # columns: physical step per ct index (i, j, k)
    a_lab = d_lab * s_lab
    m = np.linalg.solve(a_lab, a_ct)  # lab_ijk = m @ ct_ijk + t
    r = np.rint(m)
    if (not np.allclose(m, r, atol=1e-3) or sorted(np.abs(r).sum(0)) != [1, 1, 1]
            or abs(abs(np.linalg.det(r)) - 1) > 1e-6):
        return None
    t = np.linalg.solve(a_lab, np.asarray(ct.origin) - np.asarray(lab.GetOrigin()))
    if not np.allclose(t, np.rint(t), atol=1e-2):
        return None
    size_ct = np.asarray(ct.image.GetSize())
    # the ct index box must map exactly onto the label index box
    corners = np.array([[0, 0, 0], size_ct - 1])
    mapped = corners @ r.T + np.rint(t)
    lo, hi = mapped.min(0), mapped.max(0)
    if np.any(lo != 0) or np.any(hi != np.asarray(lab.GetSize()) - 1):
        return None
    # ct axis c (ijk) comes from lab axis src[c]; convert to numpy (z,y,x) axis order
    src = np.abs(r).argmax(0)
    sign = r[src, np.arange(3)]
    perm = tuple(2 - src[::-1])  # numpy axis of lab array feeding numpy axis a of ct array
    flips = tuple(a for a in range(3) if sign[::-1][a] < 0)
    return perm, flips


def _describe_geometry(img: sitk.Image) -> str:
    f = lambda v: "(" + ", ".join(f"{x:.4g}" for x in v) + ")"  # noqa: E731
    return (f"size(x,y,z)={img.GetSize()}, spacing={f(img.GetSpacing())}, origin={f(img.GetOrigin())}, "
            f"direction={f(img.GetDirection())}")


def load_labels(path, like: CTVolume) -> np.ndarray:
    """Load a label map and return it on ``like``'s voxel grid, ``(z, y, x)``.

    A label map whose grid coincides physically with the CT's but with axes
    flipped or permuted (common after NIfTI reorientation) is rearranged
    exactly, with no interpolation. Any other geometry is refused.

    Label values must be whole numbers in 0..65535 (uint16): every label convention and every
    ontology id (1..``anatomy.MAX_ID``) lies there, and ``save_mask`` writes that range. A larger value
    (e.g. an int64 2**32 + 5) is refused, never wrapped around to a small id; so are negative and
    non-integral values (a probability map, or labels resampled with linear interpolation). Which
    ids are ontology structures is checked where a convention applies (``anatomy.convert_labels``).

    Returns:
        Integer array (uint8, or uint16 for values above 255) of shape ``like.shape``.

    Raises:
        FileNotFoundError: the path does not exist.
        CTLoadError: not a readable 3D scalar image, values outside 0..65535 or not whole numbers,
            bad geometry (as load_ct), or a grid that is not the CT's.
    """
    if not isinstance(like, CTVolume):
        raise TypeError(f"like= must be the CTVolume the labels belong to (from load_ct), got {type(like).__name__}")
    path = _check_exists(path, "label map")
    image = _to_3d_scalar(_read_image(path, "a label map"), f"'{path}'")
    _check_geometry(image, f"label map '{path}'")
    arr = sitk.GetArrayFromImage(image)
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.rint(arr)):
            raise CTLoadError(f"'{path}' holds non-integer values: not a label map. Label maps must hold integer "
                              "structure ids (0 = background). Was it resampled with linear interpolation?")
    lo, hi = (arr.min(), arr.max()) if arr.size else (0, 0)
    if lo < 0:
        raise CTLoadError(f"'{path}' holds negative values ({lo:.0f}): label ids must be >= 0.")
    if hi > MAX_LABEL_VALUE:
        n = int(np.count_nonzero(arr > MAX_LABEL_VALUE))
        raise CTLoadError(f"'{path}' holds label value {hi:.0f} ({n} voxels above {MAX_LABEL_VALUE}): "
                          f"label ids lie in 0..{MAX_LABEL_VALUE} (ontology ids 1..{MAX_ID}), so this is not a label "
                          "map of structure ids (a CT or another image?) or its values overflowed when it was written. "
                          "Check that it is the right file; relabel it to ids <= 65535 if the values are real ids.")
    # all values are whole numbers in 0..65535 now: the cast is exact (never wraps 2**32 + 5 to 5)
    arr = arr.astype(np.uint8 if hi < 256 else np.uint16, copy=False)
    if like.same_geometry(image):
        out = arr
    else:
        sp = _signed_permutation(like, image)
        if sp is None:
            raise CTLoadError(
                f"label map '{path}' does not lie on the CT's voxel grid.\n  labels: {_describe_geometry(image)}\n"
                f"  CT:     {_describe_geometry(like.image)}\nResample it onto the CT with nearest-neighbour "
                "interpolation first (sitk.Resample(labels, ct.image, sitk.Transform(), sitk.sitkNearestNeighbor)), "
                "or check that it belongs to this CT.")
        perm, flips = sp
        out = np.transpose(arr, perm)
        if flips:
            out = np.flip(out, flips)
    return np.ascontiguousarray(out)
