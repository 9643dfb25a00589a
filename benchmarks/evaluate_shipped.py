"""Evaluate a checkpoint on held-out phantoms and on the held-out real DICOM case.

This produces the tables of ``docs/evaluation.md`` and ``docs/model_card.md``::

    python benchmarks/evaluate_shipped.py --model nano --clicks 5 --out-dir docs/eval_nano

Phantom seeds 900000+ are never used in training (training draws seeds below 10^6 per
``seed * 10^6 + v * 1000 + rank``). The DICOM series in ``../shared/data/real_ct`` is never
used in training either; its labels are TotalSegmentator v2 predictions (pseudo ground truth).
Every structure labelled there is evaluated (31 in a 40-mm slab): the 8 organs, vessels and vertebrae of
the headline figure as "real DICOM (held out)", the ribs, humeri, back muscles and the rest as a second
group. Only the real case (no phantoms): ``--seeds`` with no value.

``--lesions`` evaluates synthetic lesions instead (docs/lesions.md): into each held-out phantom one
lesion per host class (liver, kidney, lung, bone) is inserted, drawn from
``numpy.random.default_rng([LESION_EVAL_SEED, phantom seed, host index])``. Training draws its
lesions from the sampler's streams ``default_rng([seed, rank, count, 1])`` on training phantoms, so
neither the anatomy nor the lesion draws of this set are ever trained on::

    python benchmarks/evaluate_shipped.py --model nano --lesions --no-real --out-dir docs/eval_lesions

``--slab-mm 40`` evaluates each phantom structure in a scan of limited coverage instead: the held-out
phantom cut to a 40-mm slab of axial slices centred on the structure (as thin as the real DICOM series),
a new CT per structure::

    python benchmarks/evaluate_shipped.py --model nano --slab-mm 40 --no-real --out-dir docs/eval_slabs

The real series holds one target per structure, so its Dice after one click rests on 8 clicks.
``--real-sessions 4`` runs every real target four times, first clicking at its deepest point and then at
three seeded voxels at least half as deep (``evaluate_interactive(first_click_seed=k)``): 32 first clicks::

    python benchmarks/evaluate_shipped.py --model nano --seeds --real-sessions 4 --out-dir docs/eval_real4

``--error-band-mm 2.5`` also counts what each click leaves wrong, split into the voxels within 2.5 mm of the
reference's edge (an edge a little off) and the rest (parts missed or leaked): clicks.csv columns ``fp``, ``fn``,
``fp_far``, ``fn_far`` and a table at the end of summary.md (docs/model_card.md, session 32).
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctsam3d_nb import Predictor, load_ct, load_labels, load_model, make_phantom
from ctsam3d_nb.anatomy import by_id, by_name
from ctsam3d_nb.evaluation import error_table, evaluate_interactive, per_target, summary_table
from ctsam3d_nb.phantom.lesions import LESION_HOSTS, insert_lesions
from ctsam3d_nb.volume import CTVolume
from ctsam3d_nb.settings import add_arguments, from_arguments

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real_ct"
PHANTOM_STRUCTURES = ["liver", "spleen", "kidney_left", "kidney_right", "stomach", "pancreas", "gallbladder",
                      "aorta", "inferior_vena_cava", "heart", "lung_left", "lung_right", "urinary_bladder",
                      "trachea", "esophagus", "vertebrae_L1", "vertebrae_L3", "vertebrae_T10", "hip_left",
                      "femur_right", "iliopsoas_left", "spinal_cord", "rib_right_8", "sternum", "duodenum"]
LESION_EVAL_SEED = 9_000_001  # first entropy word of the held-out lesion draws (never used in training)
REAL_STRUCTURES = ["liver", "spleen", "stomach", "aorta", "kidney_left", "kidney_right", "inferior_vena_cava",
                   "vertebrae_L1", "vertebrae_L2", "vertebrae_L3", "vertebrae_T12", "vertebrae_T11", "pancreas",
                   "gallbladder", "heart"]
REAL_ALL = "real DICOM, all other structures (held out)"  # the rest of what its label map holds: ribs, humeri, ...


def real_structures(labels: np.ndarray, min_voxels: int = 200) -> dict[str, list[str]]:
    """Every structure of the real label map with at least ``min_voxels`` voxels, split into the organs, vessels
    and vertebrae of `REAL_STRUCTURES` (the headline figure since session 5) and all the others (`REAL_ALL`:
    ribs, costal cartilages, humeri, back muscles, spinal cord, colon, ...), both in label order."""
    ids, counts = np.unique(labels, return_counts=True)
    present = [by_id(int(i)).name for i, n in zip(ids, counts) if i and n >= min_voxels]
    return {"real DICOM (held out)": [n for n in REAL_STRUCTURES if n in present],
            REAL_ALL: [n for n in present if n not in REAL_STRUCTURES]}


def real_case_name(session: int, depth: float = 0.5) -> str:
    """The ``case`` of session ``session`` (0-based) of the real series: the first click at the deepest point
    (0) keeps the name of earlier evaluations, so their files pair with it in compare_evals.py; the others name
    their seed, and their depth when not the default 0.5 (so sessions pair only with the same first click)."""
    if session == 0:
        return "dicom_series"
    return f"dicom_series, first click {session}" + ("" if depth == 0.5 else f" at depth {depth:g}")


def _run_case(pred, ct, labels, structures, dataset, case, clicks, min_voxels=200, first_click_seed=None,
              first_click_depth=0.5, error_band_mm=None):
    frames = []
    pred.set_volume(ct)
    for name in structures:
        gt = labels == by_name(name).id
        if gt.sum() < min_voxels:
            continue
        df = evaluate_interactive(pred, ct, gt, n_clicks=clicks, structure=name, first_click_seed=first_click_seed,
                                  first_click_depth=first_click_depth, error_band_mm=error_band_mm)
        df.insert(0, "case", case)
        df.insert(0, "dataset", dataset)
        frames.append(df)
    return frames


def slab_case(ct: CTVolume, labels: np.ndarray, label: int, mm: float):
    """``ct`` and ``labels`` cut to the ``mm``-thick slab of axial slices centred on structure ``label``
    (a new CTVolume at the slab's physical position), or None when the structure is absent."""
    z = np.flatnonzero((labels == label).any(axis=(1, 2)))
    if z.size == 0:
        return None
    n = min(max(int(round(mm / ct.spacing[0])), 1), ct.shape[0])
    z0 = int(np.clip(int(np.median(z)) - n // 2, 0, ct.shape[0] - n))
    sub = CTVolume.from_array(ct.array[z0:z0 + n], spacing=ct.spacing, origin=ct.index_to_physical((z0, 0, 0)),
                              direction=ct.direction)
    return sub, labels[z0:z0 + n]


def _run_slabs(pred, seeds, structures, mm, clicks, t0, min_voxels=200, error_band_mm=None):
    frames = []
    for seed in seeds:
        ct, labels, _ = make_phantom(seed)
        for name in structures:
            got = slab_case(ct, labels, by_name(name).id, mm)
            if got is None:
                continue
            frames += _run_case(pred, *got, [name], f"phantom {mm:g}-mm scans (held out)", str(seed), clicks,
                                min_voxels, error_band_mm=error_band_mm)
        print(f"phantom {seed} in {mm:g}-mm slabs: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    return frames


def lesion_case(seed: int, shape=(400, 256, 256)):
    """Held-out phantom ``seed`` with one lesion per host class: ``(CTVolume, [Lesion, ...])``."""
    ct, labels, _ = make_phantom(seed, shape=shape)
    hu = ct.array.astype("float32")
    found = []
    for k, host in enumerate(LESION_HOSTS):
        rng = np.random.default_rng([LESION_EVAL_SEED, seed, k])
        hu, _, got = insert_lesions(hu, labels, rng, n=1, hosts=(host,), hu=True, min_voxels=200)
        found += got
    out = CTVolume.from_array(np.clip(np.rint(hu), -1024, 3071).astype("int16"), spacing=ct.spacing,
                              origin=ct.origin, direction=ct.direction)
    return out, found


def _run_lesions(pred, seeds, clicks, t0, error_band_mm=None):
    frames = []
    for seed in seeds:
        ct, found = lesion_case(seed)
        pred.set_volume(ct)
        for les in found:
            df = evaluate_interactive(pred, ct, les.full_mask(ct.shape), n_clicks=clicks, structure=les.name,
                                      error_band_mm=error_band_mm)
            df.insert(0, "case", str(seed))
            df.insert(0, "dataset", "synthetic lesions (held out)")
            frames.append(df)
        print(f"lesions in phantom {seed}: {', '.join(f'{x.name} {x.diameter_mm:.0f} mm' for x in found)} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return frames


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nano", help="config name (shipped weights) or checkpoint path")
    ap.add_argument("--clicks", type=int, default=5)
    ap.add_argument("--seeds", type=int, nargs="*", default=list(range(900000, 900006)))
    ap.add_argument("--out-dir", default="docs/eval")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--structures", nargs="+", help="phantom structures (default: the 25 of the model card)")
    ap.add_argument("--no-real", action="store_true", help="skip the real DICOM case")
    ap.add_argument("--real-headline-only", action="store_true",
                    help="on the real DICOM case, only the 8 organs, vessels and vertebrae of the headline figure, "
                         "not every other labelled structure (ribs, humeri, muscles, ...)")
    ap.add_argument("--real-sessions", type=int, default=1, metavar="N",
                    help="sessions per real target: the first clicks at its deepest point (case 'dicom_series'), "
                         "sessions 2..N at a seeded voxel at least --first-click-depth as deep (case 'dicom_series, "
                         "first click k'), so the 8 headline targets give 8N first clicks instead of 8")
    ap.add_argument("--first-click-depth", type=float, default=0.5, metavar="F",
                    help="with --real-sessions: the seeded first clicks land at least this fraction as deep as the "
                         "deepest point (default 0.5; 0 = anywhere in the target)")
    ap.add_argument("--lesions", action="store_true",
                    help="evaluate held-out synthetic lesions (one per liver/kidney/lung/bone per seed) instead of "
                         "the phantom structures")
    ap.add_argument("--slab-mm", type=float, default=0.0,
                    help="evaluate each phantom structure in a scan this thick (axial slab centred on it) instead "
                         "of in the whole phantom")
    ap.add_argument("--error-band-mm", type=float, default=None, metavar="MM",
                    help="also count each click's false positives and misses, and how many lie farther than MM "
                         "from the reference's boundary (clicks.csv columns fp, fn, fp_far, fn_far; a table in "
                         "summary.md): whether what is left to fix is edges or whole parts")
    add_arguments(ap)  # the click settings: --mode zoom|grow, --cpp-heatmaps, ...
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    if args.real_sessions < 1:
        ap.error(f"--real-sessions must be >= 1, got {args.real_sessions}")
    if not 0 <= args.first_click_depth <= 1:
        ap.error(f"--first-click-depth must be in [0, 1], got {args.first_click_depth}")
    torch.set_num_threads(args.threads)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(args.model, device="cpu")
    pred = Predictor(model, from_arguments(args, ap), device="cpu")
    t0 = time.perf_counter()
    band = args.error_band_mm
    frames = []
    if args.lesions:
        frames += _run_lesions(pred, args.seeds, args.clicks, t0, band)
    elif args.slab_mm:
        frames += _run_slabs(pred, args.seeds, args.structures or PHANTOM_STRUCTURES, args.slab_mm, args.clicks, t0,
                             error_band_mm=band)
    for seed in [] if args.lesions or args.slab_mm else args.seeds:
        ct, labels, _ = make_phantom(seed)
        frames += _run_case(pred, ct, labels, args.structures or PHANTOM_STRUCTURES, "phantom (held out)",
                            str(seed), args.clicks, error_band_mm=band)
        print(f"phantom {seed}: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    if (REAL / "dicom_series").is_dir() and not args.no_real:
        ct = load_ct(REAL / "dicom_series")
        labels = load_labels(REAL / "example_seg_dicom.nii.gz", like=ct)
        for k in range(args.real_sessions):
            for dataset, names in real_structures(labels).items():
                if names and (dataset != REAL_ALL or not args.real_headline_only):
                    frames += _run_case(pred, ct, labels, names, dataset, real_case_name(k, args.first_click_depth),
                                        args.clicks, first_click_seed=k or None,
                                        first_click_depth=args.first_click_depth, error_band_mm=band)
        print(f"real DICOM: done ({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(out / "clicks.csv", index=False)
    per_target(df).to_csv(out / "per_target.csv", index=False)
    text = [f"Model `{args.model}` ({getattr(model, 'checkpoint_info', {}) or 'random'}), {args.clicks} simulated "
            f"clicks per target, {dt.date.today()}, {time.perf_counter() - t0:.0f} s on CPU "
            f"({torch.get_num_threads()} threads).\n",
            f"Command: `python benchmarks/evaluate_shipped.py {' '.join(argv)}`\n"]
    for name, sub in df.groupby("dataset", sort=False):
        text.append(f"\n#### {name}\n")
        text.append(summary_table(sub))
    if band is not None:
        text.append(f"\n#### Where the errors are (boundary band {band:g} mm on either side of the reference's edge)\n")
        text.append(error_table(df, markdown=True))
    (out / "summary.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
