"""Command line: write one phantom as NIfTI files.

    python -m ctsam3d_nb.phantom --seed 0 --shape 400 256 256 --spacing 1.5 1.5 1.5 --out-dir DIR

writes ``DIR/phantom_ct.nii.gz`` (int16 HU), ``DIR/phantom_labels.nii.gz`` (uint8,
same geometry) and ``DIR/phantom_labels.json`` (``{id: name}`` of the labels present). A grid at least
480 mm wide shows the arms down beside the trunk (``--shape 400 256 352``); ``--no-arms`` leaves them out,
``--arms`` draws them in a narrower field too.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import SimpleITK as sitk

from .._atomic import atomic_write
from .build import make_phantom
from .intensities import PHASES

__all__ = ["OUTPUT_NAMES", "main", "write_phantom"]

OUTPUT_NAMES = ("phantom_ct.nii.gz", "phantom_labels.nii.gz", "phantom_labels.json")


def write_phantom(out_dir, seed: int, shape, spacing, *, phase: str | None = None, arms: bool | None = None,
                  overwrite: bool = False) -> dict[str, Path]:
    """Build a phantom and write its CT, label map and label names into ``out_dir``.

    Raises:
        FileExistsError: an output file exists and ``overwrite`` is False
            (checked before anything is built or written).

    Returns:
        ``{file name: path}`` of the three files written.
    """
    out = Path(out_dir).expanduser()
    there = next(d for d in (out, *out.parents) if d.exists())
    if not there.is_dir():  # checked before the build (a minute of CPU), not when the first file is written
        raise FileExistsError(f"'{there}' is a file, so '{out}' cannot be a folder: choose another --out-dir")
    paths = {name: out / name for name in OUTPUT_NAMES}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace, "
                              "or choose another --out-dir")
    ct, labels, names = make_phantom(seed, shape, spacing, phase=phase, arms=arms)
    out.mkdir(parents=True, exist_ok=True)
    label_image = sitk.GetImageFromArray(labels)
    label_image.CopyInformation(ct.image)
    atomic_write(paths[OUTPUT_NAMES[0]], lambda p: sitk.WriteImage(ct.image, p, useCompression=True))
    atomic_write(paths[OUTPUT_NAMES[1]], lambda p: sitk.WriteImage(label_image, p, useCompression=True))
    text = json.dumps({str(k): v for k, v in sorted(names.items())}, indent=1) + "\n"
    atomic_write(paths[OUTPUT_NAMES[2]], lambda p: Path(p).write_text(text))
    return paths


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ctsam3d_nb.phantom", description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed + grid = same files)")
    p.add_argument("--shape", type=int, nargs=3, default=(400, 256, 256), metavar=("Z", "Y", "X"),
                   help="array shape (z, y, x); default 400 256 256")
    p.add_argument("--spacing", type=float, nargs=3, default=(1.5, 1.5, 1.5), metavar=("SZ", "SY", "SX"),
                   help="voxel size in mm per axis (z, y, x); default 1.5 1.5 1.5")
    p.add_argument("--phase", choices=PHASES, default=None, help="contrast phase (default: drawn from the seed)")
    p.add_argument("--arms", action=argparse.BooleanOptionalAction, default=None,
                   help="arms down beside the trunk (default: when the grid is at least 480 mm wide)")
    p.add_argument("--out-dir", required=True, help="output folder (created if missing)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    return p


def main(argv=None) -> int:
    """Entry point; returns the process exit status (2: a user error, printed as one ``error:`` line)."""
    args = _parser().parse_args(argv)
    try:
        paths = write_phantom(args.out_dir, args.seed, args.shape, args.spacing, phase=args.phase, arms=args.arms,
                              overwrite=args.overwrite)
    except (FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2  # a user error, as the other tools say it
    for path in paths.values():
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
