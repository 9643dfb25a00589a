"""Where do phantoms differ from real CT? Per-structure HU, noise/texture, edges, contrasts, phase.

Both kinds of scan are put on the model's 1.5 mm grid first (real scans resampled with linear
interpolation as the model sees them, labels nearest-neighbour; phantoms generated at 1.5 mm), then
measured with the same functions (`ctsam3d_nb.phantom.realism`):

* HU per structure: mean, std, percentiles over the structure eroded by 2 voxels (3 mm);
* noise/texture: std of a high-pass residual (HU minus a Gaussian blur of sigma 3 mm) inside
  liver, spleen and back muscle, its correlation with the next voxel, and the radially averaged
  axial power spectrum of 24 mm liver patches;
* edges: the 10-90 % rise distance (mm) of the mean HU profile across the body surface, the lung
  surface and organ surfaces;
* contrasts between neighbours (liver vs spleen, vessels vs liver and their surroundings, kidney spread);
* contrast phase, read off the aorta, portal vein and IVC.

Real scans: ``example_ct_sm`` (3 mm, non-contrast; the one real training scan) and the DICOM series
(0.98 x 0.98 x 2 mm, portal-venous). The DICOM series is held out from training; measuring its
statistics here does not train on it, but tuning is done against ``example_ct_sm`` first.

Usage:
    python benchmarks/compare_phantom_real.py --tag after --doc docs/synthetic_data.md \
        --json /tmp/after.json --compare /tmp/before.json
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real_ct"
SPACING = 1.5
PHANTOM_SHAPE = (160, 256, 256)  # 240 mm around T12/L1 at adult size: the abdomen of the real scans
ORGANS = ("liver", "spleen", "kidneys", "pancreas", "gallbladder", "stomach", "small_bowel", "aorta",
          "inferior_vena_cava", "portal_vein", "vertebrae", "ribs", "costal_cartilages", "spinal_cord",
          "autochthon", "iliopsoas", "lung", "fat")


def _imports():
    # after sys.path tweaks from --code-root, so an older phantom can be measured with today's yardstick
    from ctsam3d_nb.grid import ModelGrid
    from ctsam3d_nb.io import load_ct, load_labels
    from ctsam3d_nb.phantom import make_phantom
    from ctsam3d_nb.phantom import realism
    return ModelGrid, load_ct, load_labels, make_phantom, realism


def load_real(kind: str):
    """``(hu, labels)`` of a real scan on a 1.5 mm grid (float32 HU, uint8 labels)."""
    ModelGrid, load_ct, load_labels, _, _ = _imports()
    ct_path, lab_path = {"sm": ("example_ct_sm.nii.gz", "example_seg.nii.gz"),
                         "dicom": ("dicom_series", "example_seg_dicom.nii.gz")}[kind]
    ct = load_ct(REAL / ct_path)
    lab = load_labels(REAL / lab_path, like=ct)
    grid = ModelGrid.covering(ct, SPACING)
    return grid.resample_ct(ct, normalize=False), grid.labels_to_grid(lab, ct).astype(np.uint8)


def fat_stats(hu, labels, kind):
    """HU of fat in [-250, -20]. Fat has no label in real TotalSegmentator maps: there, voxels outside every
    labelled organ (ids 1-117); in a phantom, its subcutaneous_fat (119) and torso_fat (121) labels."""
    fat = np.isin(labels, (119, 121)) if kind == "phantom" else (labels == 0) | (labels > 117)
    v = hu[fat & (hu > -250) & (hu < -20)]
    return {"mean": float(v.mean()), "std": float(v.std()), "p5": float(np.percentile(v, 5)),
            "p50": float(np.median(v)), "p95": float(np.percentile(v, 95))}


def body_mask(hu):
    from scipy import ndimage as ndi
    m = hu > -400
    lab, n = ndi.label(m)
    if n > 1:
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        m = lab == sizes.argmax()
    return np.stack([ndi.binary_fill_holes(s) for s in m])


def measure(hu, labels, kind):
    """All statistics of one scan; ``kind``: "real" or "phantom"."""
    *_, realism = _imports()
    G = realism.GROUPS
    out = {"hu": {}, "noise": {}, "edges": {}, "contrast": {}, "nps": {}}
    for name in ORGANS:
        out["hu"][name] = (fat_stats(hu, labels, kind) if name == "fat"
                           else realism.hu_stats(hu, labels, G[name].ids(kind)))
    for name in ("liver", "spleen", "autochthon"):
        out["noise"][name] = realism.noise_stats(hu, labels, G[name].ids(kind))
    nps = realism.noise_power_spectrum(hu, labels, G["liver"].ids(kind), SPACING)
    if nps is not None:
        f, p = nps
        out["nps"] = {"freq": f.tolist(), "power": p.tolist(), "centroid": float((f * p).sum() / p.sum())}
    body = body_mask(hu)
    lung = np.isin(labels, G["lung"].ids(kind))
    edges = {"body/air": body, "lung": lung & (hu < -400) if lung.sum() > 500 else None}
    for name in ("liver", "spleen", "kidneys", "aorta", "vertebrae"):
        edges[name] = np.isin(labels, G[name].ids(kind))
    for name, m in edges.items():
        if m is None or m.sum() < 500:
            out["edges"][name] = float("nan")
            continue
        d, prof = realism.edge_profile(hu, m, SPACING)
        out["edges"][name] = realism.rise_distance_mm(d, prof)
    h = {k: v["p50"] for k, v in out["hu"].items()}
    ring = lambda g, excl=(): realism.ring_median(hu, labels, G[g].ids(kind), exclude=excl)  # noqa: E731
    bone = G["vertebrae"].ids(kind) + G["ribs"].ids(kind)
    out["contrast"] = {
        "liver - spleen": h["liver"] - h["spleen"],
        "liver - muscle": h["liver"] - h["autochthon"],
        "aorta - liver": h["aorta"] - h["liver"],
        "portal vein - liver": h["portal_vein"] - h["liver"],
        "IVC - aorta": h["inferior_vena_cava"] - h["aorta"],
        "aorta - its surroundings": h["aorta"] - ring("aorta", bone),
        "kidney - its surroundings": h["kidneys"] - ring("kidneys", bone),
        "pancreas - its surroundings": h["pancreas"] - ring("pancreas", bone),
        "kidney spread p95 - p5 (cortex/medulla)": out["hu"]["kidneys"]["p95"] - out["hu"]["kidneys"]["p5"],
    }
    a, p = h["aorta"], h["portal_vein"]
    out["phase"] = ("non_contrast" if a < 90 else "arterial" if a > 200 and a - p > 60 else "portal_venous")
    return out


def axial_slice(hu, labels, kind):
    """The axial slice through liver, spleen and kidneys (most voxels of the three together)."""
    *_, realism = _imports()
    G = realism.GROUPS
    score = sum(np.isin(labels, G[g].ids(kind)).sum(axis=(1, 2)) for g in ("liver", "spleen", "kidneys"))
    score = score * (np.isin(labels, G["kidneys"].ids(kind)).sum(axis=(1, 2)) > 0)
    return hu[int(np.argmax(score))]


def phantoms(seeds, phase):
    *_, make_phantom, _ = _imports()
    for s in seeds:
        ct, labels, _ = make_phantom(s, PHANTOM_SHAPE, (SPACING,) * 3, phase=phase)
        yield s, ct.array.astype(np.float32), labels


def _fmt(x, nd=0):
    return "–" if x is None or not np.isfinite(x) else f"{x:.{nd}f}"


def _agg(vals):
    """mean over phantoms, and min..max."""
    vals = np.array([v for v in vals if np.isfinite(v)])
    return (float("nan"),) * 3 if vals.size == 0 else (float(vals.mean()), float(vals.min()), float(vals.max()))


def tables(res, tag):
    """Markdown tables from the results dict."""
    real = res["real"]
    ph = res["phantom"]  # {phase: [results]}
    cols = [("real sm (non-contrast)", real["sm"], None), ("phantom non-contrast", None, "non_contrast"),
            ("real DICOM (portal-venous)", real["dicom"], None), ("phantom portal-venous", None, "portal_venous"),
            ("phantom arterial", None, "arterial")]
    lines = [f"Phantoms ({tag}): seeds {res['seeds']} per phase, {PHANTOM_SHAPE} at {SPACING} mm; "
             "phantom cells give the mean over seeds and [min..max] of the per-seed values.", "",
             "**HU per structure** (interior, eroded 3 mm): real mean ± std [p5, p95]; phantom mean of means "
             "[range of means] ± mean std", "", "| structure | " + " | ".join(c[0] for c in cols) + " |",
             "|---|" + "---|" * len(cols)]

    def cell(get, src, phase, nd=0):
        if src is not None:
            return _fmt(get(src), nd)
        m, lo, hi = _agg([get(r) for r in ph[phase]])
        return f"{_fmt(m, nd)} [{_fmt(lo, nd)}..{_fmt(hi, nd)}]"

    for name in ORGANS:
        row = []
        for _, src, phase in cols:
            if src is not None:
                s = src["hu"][name]
                row.append(f"{_fmt(s['mean'])} ± {_fmt(s['std'])} [{_fmt(s['p5'])}, {_fmt(s['p95'])}]")
            else:
                m, lo, hi = _agg([r["hu"][name]["mean"] for r in ph[phase]])
                sd = _agg([r["hu"][name]["std"] for r in ph[phase]])[0]
                row.append(f"{_fmt(m)} [{_fmt(lo)}..{_fmt(hi)}] ± {_fmt(sd)}")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "**Noise and texture**: std (HU) of the high-pass residual (HU − Gaussian σ 3 mm) / its "
              "correlation with the next voxel; liver power-spectrum centroid (cycles/mm, higher = finer grain)",
              "", "| measure | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name in ("liver", "spleen", "autochthon"):
        lines.append(f"| {name} high-pass std | " + " | ".join(
            cell(lambda r: r["noise"][name]["hp_std"], s, p, 1) for _, s, p in cols) + " |")
        lines.append(f"| {name} neighbour correlation | " + " | ".join(
            cell(lambda r: r["noise"][name]["acf1"], s, p, 2) for _, s, p in cols) + " |")
    lines.append("| liver spectrum centroid | " + " | ".join(
        cell(lambda r: r["nps"].get("centroid", np.nan), s, p, 3) for _, s, p in cols) + " |")
    lines += ["", "**Edges**: 10–90 % rise distance (mm) of the mean HU profile across the surface", "",
              "| surface | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name in real["sm"]["edges"]:
        lines.append(f"| {name} | " + " | ".join(cell(lambda r: r["edges"][name], s, p, 1) for _, s, p in cols) + " |")
    lines += ["", "**Contrast between neighbours** (HU, medians)", "",
              "| pair | " + " | ".join(c[0] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for name in real["sm"]["contrast"]:
        lines.append(f"| {name} | " + " | ".join(cell(lambda r: r["contrast"][name], s, p) for _, s, p in cols) + " |")
    lines += ["", "**Phase read off the vessels**: real sm " + real["sm"]["phase"] + ", real DICOM "
              + real["dicom"]["phase"] + "; phantoms " + ", ".join(
                  f"{ph_}: {sorted({r['phase'] for r in rs})}" for ph_, rs in ph.items()), ""]
    return "\n".join(lines)


def write_doc(doc: Path, tag: str, text: str):
    begin, end = f"<!-- measured:{tag}:begin -->", f"<!-- measured:{tag}:end -->"
    old = doc.read_text() if doc.exists() else "# Synthetic data versus real CT\n"
    block = f"{begin}\n{text}\n{end}"
    if begin in old:
        new = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, old, flags=re.S)
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    doc.write_text(new)


def figure(slices, path: Path, compare=None, current=None):
    """Axial slices side by side (same window, 1.5 mm pixels, same mm extent) + liver power spectra."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n = len(slices)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.0 * (n + 1), 3.2), dpi=80,
                             gridspec_kw={"width_ratios": [1] * n + [1.1]})
    half = 190.0  # mm: every panel shows 380 x 300 mm around the body's centre
    for ax, (title, sl) in zip(axes, slices):
        ys, xs = np.nonzero(sl > -400)
        cy, cx = (ys.min() + ys.max()) / 2 * SPACING, (xs.min() + xs.max()) / 2 * SPACING
        ext = (-cx, sl.shape[1] * SPACING - cx, sl.shape[0] * SPACING - cy, -cy)
        ax.imshow(sl, cmap="gray", vmin=-125, vmax=225, extent=ext, interpolation="nearest")
        ax.set_xlim(-half, half)
        ax.set_ylim(150, -150)
        ax.set_facecolor("black")
        ax.set_title(title, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = axes[-1]
    for label, res, style in (("before", compare, "--"), ("now", current, "-")):
        if res is None:
            continue
        for name, r, color in (("real sm", res["real"]["sm"], "k"), ("real DICOM", res["real"]["dicom"], "0.5")):
            if label == "now" or current is None:
                ax.semilogy(r["nps"]["freq"], r["nps"]["power"], color=color, lw=2, label=name)
        for phase, color in (("non_contrast", "C0"), ("portal_venous", "C1")):
            f = res["phantom"][phase][0]["nps"]["freq"]
            p = np.mean([r["nps"]["power"] for r in res["phantom"][phase]], axis=0)
            ax.semilogy(f, p, style, color=color, label=f"phantom {phase[:3]} ({label})")
    ax.set_xlabel("cycles/mm", fontsize=8)
    ax.set_title("liver noise power spectrum (HU² mm²)", fontsize=8)
    ax.legend(fontsize=6)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[900100, 900101, 900102])
    ap.add_argument("--tag", default="now", help="names the doc section and figure (e.g. before / after)")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "synthetic_data.md")
    ap.add_argument("--figure-dir", type=Path, default=REPO / "docs" / "figures")
    ap.add_argument("--json", type=Path, help="also write every number here")
    ap.add_argument("--compare", type=Path, help="JSON of an earlier run: its spectra go into the figure too")
    ap.add_argument("--code-root", type=Path, help="import ctsam3d_nb from here (an older checkout)")
    args = ap.parse_args(argv)
    if args.code_root:
        sys.path.insert(0, str(args.code_root))
    if not (REAL / "example_ct_sm.nii.gz").exists():
        print(f"error: real CT not found at {REAL}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    res = {"seeds": args.seeds, "real": {}, "phantom": {}}
    slices = []
    for kind in ("sm", "dicom"):
        hu, lab = load_real(kind)
        res["real"][kind] = measure(hu, lab, "real")
        slices.append((f"real {'example_ct_sm (3 mm)' if kind == 'sm' else 'DICOM (held out)'}",
                       axial_slice(hu, lab, "real")))
    for phase in ("non_contrast", "portal_venous", "arterial"):
        res["phantom"][phase] = []
        for seed, hu, lab in phantoms(args.seeds, phase):
            res["phantom"][phase].append(measure(hu, lab, "phantom"))
            if seed == args.seeds[0] and phase != "arterial":
                slices.append((f"phantom {seed} {phase} ({args.tag})", axial_slice(hu, lab, "phantom")))
    slices = [slices[0], slices[2], slices[1], slices[3]]  # real nc, phantom nc, real pv, phantom pv
    text = tables(res, args.tag)
    print(text)
    write_doc(args.doc, args.tag, text)
    args.figure_dir.mkdir(parents=True, exist_ok=True)
    compare = json.loads(args.compare.read_text()) if args.compare else None
    fig_path = args.figure_dir / f"synthetic_vs_real_{args.tag}.png"
    figure(slices, fig_path, compare, res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1))
    print(f"wrote {args.doc} and {fig_path} ({fig_path.stat().st_size // 1024} kB) in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
