"""Static figures of a CT with masks: three orthogonal slices, radiological view.

Plain matplotlib (any backend), used by the demo, the docs and the viewers.
Slices are shown in the canonical LPS orientation whatever the file's axis
order: axial with anterior up and the patient's right on the left of the
image, coronal and sagittal with the head up.
"""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from .anatomy import color_lut
from .masks import mask_to_image
from .volume import CTVolume

__all__ = ["WINDOWS", "canonical_view", "render_orthogonal"]

WINDOWS = {  # name: (level, width) in HU; the usual teaching windows (e.g. Radiopaedia's "Windowing (CT)")
    "soft_tissue": (40, 400),  # abdomen and pelvis
    "lung": (-600, 1500),
    "bone": (400, 1800),
    "liver": (30, 150),  # narrow: small density differences of liver lesions
    "brain": (40, 80),
    "mediastinum": (50, 350),
    "model": (50, 350),  # what the model sees: [-125, 225]
}


def canonical_view(ct: CTVolume, labels: np.ndarray | None = None):
    """Arrays reoriented (exact flips/permutations, no interpolation) to LPS.

    ``labels``: a bool mask or integer label map of ``ct.shape`` with ids 0..65535 (else a
    ValueError/TypeError naming the problem, as ``mask_to_image``).

    Returns ``(hu, labels, spacing_zyx)``; ``hu``/``labels`` are ``(z, y, x)`` with z running
    feet → head, y anterior → posterior, x patient-right → patient-left.
    """
    img = sitk.DICOMOrient(ct.image, "LPS")
    hu = sitk.GetArrayFromImage(img)
    lab = None
    if labels is not None:
        limg = mask_to_image(labels, like=ct)  # bool or integer ids 0..65535 on ct's grid, else a clear error
        # (a bare astype(uint16) would wrap an id 65536 + 5 round to 5 and truncate float labels)
        lab = sitk.GetArrayFromImage(sitk.DICOMOrient(limg, "LPS"))
    return hu, lab, tuple(img.GetSpacing()[::-1])


def _window(hu, window):
    level, width = WINDOWS[window] if isinstance(window, str) else window
    return np.clip((hu.astype(np.float32) - (level - width / 2)) / width, 0, 1)


def render_orthogonal(ct: CTVolume, labels=None, center=None, window="soft_tissue", colors=None,
                      title=None, alpha=0.45, figsize=(12, 4.4)):
    """Axial, coronal and sagittal slices through ``center`` with a label overlay.

    Args:
        ct: the CT.
        labels: optional mask/label map on ``ct``'s grid ``(z, y, x)``.
        center: voxel ``(z, y, x)`` of ``ct`` to cut through (default: the middle,
            or the centroid of ``labels`` when given).
        window: a name in ``WINDOWS`` or ``(level, width)`` in HU.
        colors: ``(N, 3)`` uint8 lookup table label → RGB (default: the anatomy colours).
    Returns:
        The matplotlib Figure.
    """
    import matplotlib.pyplot as plt  # on first use: `import ctsam3d_nb` stays without pyplot (~0.8 s)

    if center is None:
        center = (np.argwhere(np.asarray(labels) > 0).mean(0) if labels is not None and np.any(labels)
                  else np.asarray(ct.shape) / 2)
    # where the centre lands in the canonical arrays
    canon = sitk.DICOMOrient(ct.image, "LPS")
    p = ct.index_to_physical(np.asarray(center, float))
    c = np.asarray(canon.TransformPhysicalPointToContinuousIndex(tuple(p)))[::-1]
    hu, lab, sp = canonical_view(ct, labels)
    c = np.clip(np.rint(c).astype(int), 0, np.asarray(hu.shape) - 1)
    if colors is None:
        colors = color_lut()
    views = [
        ("axial", hu[c[0]], None if lab is None else lab[c[0]], sp[1] / sp[2], "upper"),
        ("coronal", hu[:, c[1]], None if lab is None else lab[:, c[1]], sp[0] / sp[2], "lower"),
        ("sagittal", hu[:, :, c[2]], None if lab is None else lab[:, :, c[2]], sp[0] / sp[1], "lower"),
    ]
    fig, axes = plt.subplots(1, 3, figsize=figsize)
    for ax, (name, sl, lsl, aspect, origin) in zip(axes, views):
        ax.imshow(_window(sl, window), cmap="gray", vmin=0, vmax=1, aspect=aspect, origin=origin,
                  interpolation="nearest")
        if lsl is not None and lsl.any():
            lut = np.zeros((max(int(lsl.max()) + 1, len(colors)), 4), np.float32)
            lut[: len(colors), :3] = np.asarray(colors)[:, :3] / 255.0
            lut[1:, 3] = alpha
            lut[1:, :3] = np.where(lut[1:, :3].sum(1, keepdims=True) == 0, [1.0, 0.2, 0.2], lut[1:, :3])
            ax.imshow(lut[lsl], aspect=aspect, origin=origin, interpolation="nearest")
        ax.set_title(f"{name}")
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
