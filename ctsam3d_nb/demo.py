"""The main demo: ``python -m ctsam3d_nb.demo``.

Loads the bundled sample CT, segments an organ from one simulated click, prints
the Dice against the sample's label map and writes a PNG. Until a trained
checkpoint ships with the package, it loads and renders the sample and its labels.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from .sample import load_sample

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structure", default="liver", help="ontology name of the organ to segment")
    ap.add_argument("--out", default="ctsam3d_demo.png", help="PNG to write (the default is replaced on each run)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    from .anatomy import by_name
    from .render import render_orthogonal

    out = Path(args.out)
    if out.exists() and not args.overwrite and args.out != ap.get_default("out"):
        print(f"error: {out} exists; pass --overwrite or another --out", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    ct, labels, _ = load_sample()  # the bundled phantom, from package data
    sid = by_name(args.structure).id
    target = labels == sid
    if not target.any():
        print(f"error: '{args.structure}' is not in the sample's label map", file=sys.stderr)
        return 2
    print(f"loaded {ct} in {time.perf_counter() - t0:.2f} s; {len(np.unique(labels)) - 1} labelled structures")
    from .checkpoint import load_model
    from .clicks import first_click
    from .predictor import Predictor

    try:
        model = load_model("nano")
    except FileNotFoundError as e:  # no trained weights in this install: show the sample only
        print(f"note: {e}")
        fig = render_orthogonal(ct, labels, center=np.argwhere(target).mean(0),
                                title=f"ctsam3d_nb sample: {args.structure} and its neighbours")
        fig.savefig(out, dpi=100)
        print(f"wrote {out.resolve()}")
        return 0
    pred = Predictor(model).set_volume(ct)
    click = first_click(target, spacing=ct.spacing)
    mask = pred.click(click)
    dice = 2 * (mask & target).sum() / (mask.sum() + target.sum())
    t = pred.last_timing
    print(f"one click at voxel (z, y, x) = {click} on the {args.structure}: "
          f"{mask.sum() * ct.voxel_volume_ml:.0f} mL segmented (reference {target.sum() * ct.voxel_volume_ml:.0f} mL), "
          f"{pred.object.masks.n_patches()} patch(es), {t['total'] * 1000:.0f} ms on {pred.device}")
    print(f"Dice = {dice:.3f}")
    fig = render_orthogonal(ct, mask.astype(np.uint8) * sid, center=click,
                            title=f"{args.structure} from one click (Dice {dice:.3f} vs the reference labels)")
    fig.savefig(out, dpi=100)
    print(f"wrote {out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
