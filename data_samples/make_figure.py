"""Draw docs/figures/sample_phantom.png from the bundled sample phantom (package data in ctsam3d_nb/data/).

    python data_samples/make_figure.py [--data-dir ctsam3d_nb/data] [--out docs/figures/sample_phantom.png]

An axial slice through the liver and kidneys and a coronal slice, CT in a
soft-tissue window (W 400 / L 40) beside the same slice with the labels
overlaid. Radiological convention: the patient's right is on the image left.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import SimpleITK as sitk  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "ctsam3d_nb" / "data"  # the bundled sample (package data)
# structures named in the legend, with clearly distinct colours (the rest: a fixed random palette)
LEGEND = {
    "liver": "#c0504d", "spleen": "#8064a2", "kidney_right": "#f79646", "kidney_left": "#f79646",
    "stomach": "#4bacc6", "pancreas": "#ffd966", "gallbladder": "#9bbb59", "aorta": "#ff0000",
    "inferior_vena_cava": "#1f5fbf", "portal_vein_and_splenic_vein": "#d943d9", "heart": "#e06666",
    "lung_right": "#6fa8dc", "lung_left": "#6fa8dc", "iliopsoas_left": "#45818e", "iliopsoas_right": "#45818e",
    "autochthon_left": "#7f6000", "autochthon_right": "#7f6000", "colon": "#a67c52", "small_bowel": "#d5a6bd",
    "duodenum": "#93c47d", "urinary_bladder": "#ffe599",
}


def _colours(ids: dict[str, int], n: int = 256) -> np.ndarray:
    """RGB (0..1) per label id."""
    lut = np.random.default_rng(7).uniform(0.35, 1.0, (n, 3))
    for name, hexcol in LEGEND.items():
        if name in ids:
            lut[ids[name]] = matplotlib.colors.to_rgb(hexcol)
    for name, i in ids.items():
        if name.startswith(("vertebrae_", "rib_", "hip_", "femur_", "sacrum", "sternum", "clavicula")):
            lut[i] = matplotlib.colors.to_rgb("#f3f3a0")
    return lut


def _window(img: np.ndarray, level: float = 40.0, width: float = 400.0) -> np.ndarray:
    return np.clip((img - (level - width / 2)) / width, 0.0, 1.0)


def _overlay(ax, ct2d, lab2d, colours, aspect, origin):
    ax.imshow(_window(ct2d), cmap="gray", aspect=aspect, origin=origin, interpolation="nearest")
    rgba = np.zeros(lab2d.shape + (4,))
    rgba[..., :3] = colours[lab2d]
    rgba[..., 3] = np.where(lab2d > 0, 0.45, 0.0)
    rgba[np.isin(lab2d, [118, 119, 120, 121]), 3] = 0.0  # leave fat / muscle / body unpainted: easier to read
    ax.imshow(rgba, aspect=aspect, origin=origin, interpolation="nearest")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", default=str(DATA))
    p.add_argument("--out", default=str(HERE.parent / "docs" / "figures" / "sample_phantom.png"))
    args = p.parse_args(argv)
    data = Path(args.data_dir)
    ct_img = sitk.ReadImage(str(data / "phantom_ct.nii.gz"))
    ct = sitk.GetArrayFromImage(ct_img).astype(np.float32)
    lab = sitk.GetArrayFromImage(sitk.ReadImage(str(data / "phantom_labels.nii.gz")))
    names = {int(k): v for k, v in json.loads((data / "phantom_labels.json").read_text()).items()}
    ids = {v: k for k, v in names.items()}
    sx, sy, sz = ct_img.GetSpacing()

    # axial slice where both kidneys are largest (the liver beside them); coronal slice
    # halfway between the aorta and the kidneys: vertebral bodies, psoas, kidneys, liver, spleen
    area = {n: (lab == ids.get(n, -1)) for n in ("kidney_left", "kidney_right", "liver", "aorta")}
    z = int(np.argmax(np.minimum(area["kidney_left"].sum(axis=(1, 2)), area["kidney_right"].sum(axis=(1, 2)))
                      + 0.05 * area["liver"].sum(axis=(1, 2))))
    kidney_y = np.argwhere(area["kidney_left"] | area["kidney_right"])[:, 1].mean()
    aorta_y = np.argwhere(area["aorta"][z])[:, 0].mean() if area["aorta"][z].any() else kidney_y
    y = int(round(0.5 * (kidney_y + aorta_y)))

    colours = _colours(ids)
    fig, axes = plt.subplots(2, 2, figsize=(11, 12.5), gridspec_kw={"height_ratios": [1, 1.25]})
    views = [(ct[z], lab[z], sy / sx, "upper", f"axial z={z}"),
             (ct[:, y], lab[:, y], sz / sx, "lower", f"coronal y={y}")]
    for row, (c2d, l2d, aspect, origin, title) in enumerate(views):
        axes[row, 0].imshow(_window(c2d), cmap="gray", aspect=aspect, origin=origin, interpolation="nearest")
        _overlay(axes[row, 1], c2d, l2d, colours, aspect, origin)
        axes[row, 0].set_title(f"{title}: CT, W 400 / L 40", fontsize=10)
        axes[row, 1].set_title(f"{title}: labels", fontsize=10)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=12, va="center")
            ax.text(0.95, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=12, va="center")
    visible = set(np.unique(lab[z]).tolist()) | set(np.unique(lab[:, y]).tolist())
    shown = [n for n in LEGEND if ids.get(n) in visible and not n.endswith("_right")]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[ids[n]]) for n in shown] + [
        plt.Rectangle((0, 0), 1, 1, color="#f3f3a0")]
    labels = [n.replace("_left", "") for n in shown] + ["bones (each its own label)"]
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9, frameon=False)
    what = "bundled sample" if data.resolve() == DATA.resolve() else data.name
    fig.suptitle(f"Synthetic phantom ({what}): {lab.shape[0]}x{lab.shape[1]}x{lab.shape[2]} voxels (z, y, x), "
                 f"{sz:g} x {sy:g} x {sx:g} mm, {len(names)} labels", fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 0.97), h_pad=3.0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
