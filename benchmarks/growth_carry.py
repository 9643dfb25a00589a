"""Does a grown patch complete what its neighbours carried into it, or copy their misses?

One click at the deepest point of each large target (held-out phantoms and the held-out real DICOM series), in the
predictor's default cross-patch growth. For every patch growth adds, the target's voxels it shares with patches
decoded before it (what its prompt carries) and its own new voxels are scored apart:

* ``carried_recall``: the share of the target in the shared part that the carried mask holds;
* ``new_recall``: the share of the target in the patch's new part that its mask holds;
* ``new_fp``: the mask's voxels off the target there, per target voxel there;
* ``carried_fp``: the carried mask's voxels off the target (a neighbour's leak carried in), per target voxel of the
  shared part; ``seed_on_target``: whether the click the predictor adds at the carried mask's deepest point lies on
  the target (off it, the patch is told to grow the leak).

A model that copies its neighbours' misses has ``new_recall`` follow ``carried_recall`` down; one that completes
them keeps ``new_recall`` high when the carried mask holds little (docs/model_card.md, session 26)::

    python benchmarks/growth_carry.py --model nano --out docs/eval_session26/growth_carry_shipped.csv
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctsam3d_nb import Predictor, load_ct, load_labels, load_model, make_phantom
from ctsam3d_nb import patches as P
from ctsam3d_nb.anatomy import by_name
from ctsam3d_nb.clicks import deepest_point, first_click

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"
PHANTOM_TARGETS = ["liver", "lung_right", "lung_left", "heart", "stomach", "aorta", "inferior_vena_cava",
                   "iliopsoas_left", "hip_left", "kidney_left", "kidney_right", "spleen"]
REAL_TARGETS = ["liver", "spleen", "stomach", "aorta", "inferior_vena_cava", "vertebrae_T12"]


def _covered(origin, others) -> np.ndarray:
    """Voxels of the patch at ``origin`` that the patches at ``others`` also cover."""
    cov = np.zeros((P.PATCH,) * 3, bool)
    for u in others:
        ov = P._overlap(tuple(np.subtract(u, origin)), P.PATCH, cov.shape)  # (in this patch, in u), None if apart
        if ov is not None:
            cov[ov[0]] = True
    return cov


def probe(model, ct, labels, names, case, min_voxels: int = 200) -> list[dict]:
    pred = Predictor(model).set_volume(ct)
    decode, seen = pred.net.decode, []

    def spy(origin, prompt, *a, **k):  # what each decode was given, and what it returned
        prob = decode(origin, prompt, *a, **k)
        seen.append((origin, prompt[0].numpy() > pred.threshold, _covered(origin, pred.object.masks.probs)))
        return prob

    pred.net.decode = spy
    rows = []
    for name in names:
        gt = labels == by_name(name).id
        if not gt.any():
            continue
        on_grid = np.asarray(pred.grid.labels_to_grid(gt.astype(np.uint8), ct)) > 0
        seen.clear()
        pred.new_object(name)
        pred.click(first_click(gt, ct.spacing), positive=True)
        kept = pred.object.masks.probs  # the patches growth kept, as the click left them
        for k, (origin, carried, cov) in enumerate(seen[1:], 1):  # the first decode is the clicked patch
            if origin not in kept:
                continue  # decoded and dropped (nothing of the object there)
            mask = kept[origin].astype(np.float32) > pred.threshold
            target = P.crop(on_grid, origin, fill=False)
            shared, new = target & cov, target & ~cov
            if shared.sum() < min_voxels or new.sum() < min_voxels:
                continue
            rows.append(dict(case=case, structure=name, patch=k, origin=" ".join(map(str, origin)),
                             carried_recall=round(float((carried & shared).sum() / shared.sum()), 3),
                             new_recall=round(float((mask & new).sum() / new.sum()), 3),
                             new_fp=round(float((mask & ~target & ~cov).sum() / new.sum()), 3),
                             carried_fp=round(float((carried & ~target & cov).sum() / shared.sum()), 3),
                             seed_on_target=bool(carried.any() and target[tuple(deepest_point(carried))])))
    return rows


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean recalls per dataset, and where the carried mask holds under 60 % of the target."""
    if df.empty:
        return pd.DataFrame()
    df = df.assign(dataset=np.where(df["case"].astype(str).str.startswith("dicom"), "real", "phantoms"),
                   low=df["carried_recall"] < 0.6)
    out = df.groupby("dataset").agg(patches=("new_recall", "size"), carried=("carried_recall", "mean"),
                                    new=("new_recall", "mean"), new_fp=("new_fp", "median"))
    if "carried_fp" in df:  # (CSVs before session 27 lack them)
        out = out.join(df.groupby("dataset").agg(carried_fp=("carried_fp", "median"),
                                                 seed_off=("seed_on_target", lambda x: float(1 - x.mean()))))
    low = df[df["low"]].groupby("dataset").agg(low_patches=("new_recall", "size"),
                                               carried_low=("carried_recall", "mean"), new_low=("new_recall", "mean"))
    return out.join(low).round(3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano", help="shipped name or checkpoint path")
    ap.add_argument("--seeds", type=int, nargs="*", default=[900000, 900001, 900002], help="held-out phantoms")
    ap.add_argument("--no-real", action="store_true", help="skip the real DICOM series")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", required=True, help="a new CSV, one row per grown patch")
    args = ap.parse_args(argv)
    if Path(args.out).exists():
        print(f"error: {args.out} exists: choose another --out", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rows = []
    for seed in args.seeds:
        ct, labels, _ = make_phantom(seed)
        rows += probe(model, ct, labels, PHANTOM_TARGETS, seed)
    if not args.no_real and (REAL / "dicom_series").exists():
        ct = load_ct(REAL / "dicom_series")
        rows += probe(model, ct, load_labels(REAL / "example_seg_dicom.nii.gz", ct), REAL_TARGETS, "dicom_series")
    df = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(args.out, index=False)
    print(summary(df).to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
