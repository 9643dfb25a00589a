"""One click on what a structure holds (gas in a stomach, marrow in a humerus) against one at its deepest point.

For every TotalSegmentator structure of the held-out phantoms (with the arms down, so humeri and forearms are in
the field) and of the held-out real DICOM series that holds darker contents (`clicks.contents_click` on the [0, 1]
image the model sees: voxels 140 HU or more below the structure's median, one voxel in from their edge, at least 27
of them), one click on the contents' deepest voxel and, for the same target, one at the structure's deepest point
(the evaluation protocol's first click), each on a new object::

    python benchmarks/contents_clicks.py --model nano --out-dir docs/eval_session25/contents_shipped

writes ``clicks.csv`` (the columns `compare_evals.py` pairs on; the click kind is part of ``dataset``) and prints
the mean Dice per dataset and kind.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctsam3d_nb import Predictor, load_ct, load_labels, load_model, make_phantom
from ctsam3d_nb.anatomy import TS_V2_MAX_ID, by_id
from ctsam3d_nb.clicks import contents_click, first_click
from ctsam3d_nb.evaluation.metrics import dice
from ctsam3d_nb.grid import normalize_hu

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"


def probe(model, ct, labels, dataset: str, case, min_voxels: int = 200) -> list[dict]:
    """Rows of both clicks on every TotalSegmentator structure of ``labels`` (>= ``min_voxels``; not the phantoms'
    body-composition extras) that holds contents."""
    image = normalize_hu(ct.array)
    ids, counts = np.unique(labels, return_counts=True)
    targets = []
    for i in ids[(ids > 0) & (ids <= TS_V2_MAX_ID) & (counts >= min_voxels)]:
        gt = labels == i
        point = contents_click(gt, image, spacing=ct.spacing)
        if point is not None:
            targets.append((by_id(int(i)).name, gt, point))
    rows = []
    for kind in ("deep", "contents"):
        pred = Predictor(model, device="cpu").set_volume(ct)
        for name, gt, contents in targets:
            point = contents if kind == "contents" else first_click(gt, ct.spacing)
            pred.new_object(name)
            mask = np.asarray(pred.click(point, positive=True), bool)
            rows.append(dict(dataset=f"{dataset}, {kind} click", case=case, structure=name, click=1,
                             z=point[0], y=point[1], x=point[2], hu=float(ct.array[point]),
                             dice=dice(mask, gt), pred_voxels=int(mask.sum()), gt_voxels=int(gt.sum())))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano", help="shipped name or checkpoint path")
    ap.add_argument("--seeds", type=int, nargs="*", default=[900000, 900001, 900002],
                    help="held-out phantoms (never trained on), drawn with the arms down")
    ap.add_argument("--no-real", action="store_true", help="skip the real DICOM series")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out-dir", required=True, help="a new folder for clicks.csv")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    if (out / "clicks.csv").exists():
        print(f"error: {out / 'clicks.csv'} exists: choose another --out-dir", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    t0, rows = time.perf_counter(), []
    for seed in args.seeds:
        ct, labels, _ = make_phantom(seed, arms=True)
        rows += probe(model, ct, labels, "phantom (held out, arms down)", seed)
    if not args.no_real and (REAL / "dicom_series").exists():
        ct = load_ct(REAL / "dicom_series")
        rows += probe(model, ct, load_labels(REAL / "example_seg_dicom.nii.gz", ct), "real DICOM (held out)",
                      "dicom_series")
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "clicks.csv", index=False)
    df["ratio"] = df["pred_voxels"] / df["gt_voxels"]
    table = df.groupby("dataset").agg(n=("dice", "size"), dice=("dice", "mean"), median_ratio=("ratio", "median"))
    print(table.round(3).to_string())
    print(f"{args.model}: {len(df) // 2} targets in {time.perf_counter() - t0:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
