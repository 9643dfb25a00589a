"""Where one click goes wrong: each target's missed voxels and its false positives by the label they fall on.

One click at the deepest point of each target of the held-out phantoms (as `evaluate_shipped.py` clicks first),
then the mask is split into what it missed (FN), its z extent against the target's, and its false positives per
label of the phantom's label map (which neighbour it leaked into). ``--real`` adds the held-out real DICOM series
(its TotalSegmentator label map), clicked the same way::

    python benchmarks/first_click_errors.py --model nano --structures aorta inferior_vena_cava pancreas \\
        --out docs/eval_session12/first_click_errors_shipped.csv
"""
from __future__ import annotations

import argparse
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctsam3d_nb import Predictor, load_ct, load_labels, load_model, make_phantom
from ctsam3d_nb.anatomy import by_id, by_name
from ctsam3d_nb.clicks import first_click
from ctsam3d_nb.evaluation.metrics import dice

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"


def _z_range(mask: np.ndarray) -> str:
    z = np.flatnonzero(mask.any((1, 2)))
    return f"{z.min()}-{z.max()}" if len(z) else "-"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano", help="shipped name or checkpoint path")
    ap.add_argument("--seeds", type=int, nargs="*", default=[900000, 900001, 900002],
                    help="held-out phantoms (none, with --real: the real series only)")
    ap.add_argument("--structures", nargs="+", required=True, help="ontology names, e.g. aorta pancreas")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=4, help="false-positive labels listed per target")
    ap.add_argument("--real", action="store_true", help="also the held-out real DICOM series (case dicom_series)")
    ap.add_argument("--out", help="CSV of every target (optional)")
    args = ap.parse_args(argv)
    if not args.seeds and not args.real:
        ap.error("nothing to click: give --seeds, --real or both")
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    rows = []
    cases = ((seed, *make_phantom(seed)[:2]) for seed in args.seeds)
    if args.real:
        if not (REAL / "dicom_series").exists():
            ap.error(f"--real: {REAL / 'dicom_series'} not found")
        ct = load_ct(REAL / "dicom_series")
        real = ("dicom_series", ct, load_labels(REAL / "example_seg_dicom.nii.gz", ct))
        cases = itertools.chain(cases, [real])  # phantoms one at a time, as before
    for seed, ct, labels in cases:
        pred = Predictor(model).set_volume(ct)
        for name in args.structures:
            gt = labels == by_name(name).id
            if not gt.any():
                continue
            pred.new_object(name)
            point = first_click(gt, ct.spacing)
            mask = np.asarray(pred.click(point, positive=True), bool)
            fp = Counter(labels[mask & ~gt].tolist()).most_common(args.top)
            rows.append(dict(case=seed, structure=name, dice=round(dice(mask, gt), 3), gt_voxels=int(gt.sum()),
                             pred_voxels=int(mask.sum()), missed=int((gt & ~mask).sum()), gt_z=_z_range(gt),
                             pred_z=_z_range(mask), click=" ".join(map(str, point)),
                             false_positives=", ".join(f"{by_id(k).name if k else 'unlabelled'} {n}" for k, n in fp)))
            print(" | ".join(str(v) for v in rows[-1].values()), flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    return df


if __name__ == "__main__":
    main()
