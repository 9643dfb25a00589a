"""The main demo: ``python -m ctsam3d_nb.demo``.

Loads the bundled sample CT, segments an organ from one simulated click, prints
the Dice against the sample's label map and writes a PNG. Until a trained
checkpoint ships with the package, it loads and renders the sample and its labels.

Every user error (an unknown ``--structure``, an ``--out`` that exists, sits in a missing folder or
is not a .png, damaged shipped weights) is one ``error: ...`` line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import matplotlib
import numpy as np

from .anatomy import by_name
from .checkpoint import load_model
from .clicks import first_click
from .predictor import Predictor
from .render import render_orthogonal
from .sample import load_sample


def _error(msg) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (2: a user error, printed as one ``error:`` line)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--structure", default="liver", help="ontology name of the organ to segment")
    ap.add_argument("--out", default="ctsam3d_demo.png", help="PNG to write (the default is replaced on each run)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = ap.parse_args(argv)
    try:
        return _run(ap, args)
    except KeyError as e:  # an unknown --structure: the message suggests close names
        return _error(e.args[0] if e.args else e)
    except (ValueError, OSError) as e:  # CheckpointError/CTLoadError are ValueErrors; unwritable --out
        return _error(e)


def _run(ap, args) -> int:
    matplotlib.use("Agg")
    out = Path(args.out).expanduser()
    if out.is_dir():
        return _error(f"--out '{out}' is a folder; pass a .png file name, e.g. --out {out / 'demo.png'}")
    if out.suffix.lower() != ".png":
        return _error(f"--out '{out}' must end in .png (the demo writes a PNG image)")
    if not out.parent.is_dir():
        return _error(f"the folder of --out, '{out.parent}', does not exist; create it first or choose another --out")
    if out.exists() and not args.overwrite and args.out != ap.get_default("out"):
        return _error(f"{out} exists; pass --overwrite or another --out")
    sid = by_name(args.structure).id  # before the work: a typo fails at once
    t0 = time.perf_counter()
    ct, labels, _ = load_sample()  # the bundled phantom, from package data
    target = labels == sid
    if not target.any():
        return _error(f"'{args.structure}' is not in the sample's label map")
    print(f"loaded {ct} in {time.perf_counter() - t0:.2f} s; {len(np.unique(labels)) - 1} labelled structures")
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
