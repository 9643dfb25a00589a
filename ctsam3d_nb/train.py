"""``python -m ctsam3d_nb.train``: train CT-SAM3D with simulated clicks.

Every field of :class:`~ctsam3d_nb.training.TrainConfig` is a flag, e.g.::

    python -m ctsam3d_nb.train --model nano --steps 2000 --out-dir runs/nano
    torchrun --nproc_per_node 4 -m ctsam3d_nb.train --model tiny --batch-size 6 --click-rounds 5
    python -m ctsam3d_nb.train --preset gpu-9min --out-dir runs/gpu     # one large GPU, 9 minutes

Runs resume from ``<out-dir>/last.pt`` unless ``--no-resume``. An out-dir holding files a run did
not write (your own config.json or model.pt, ...) is refused unless ``--overwrite``.

Every user error (a bad flag value, config file, out-dir, training data or ``--init`` checkpoint) is
one ``error: ...`` line on stderr and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from ._fields import field_comments
from .training import TrainConfig, train
from .training.config import PRESETS


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train CT-SAM3D with simulated clicks. Every TrainConfig field is a "
                                 "flag; unset flags keep the preset's, the config's or the field's default.")
    ap.add_argument("--config", help="a config.json to start from (flags override it)")
    ap.add_argument("--preset", choices=sorted(PRESETS),
                    help="a named starting point (flags override it), e.g. gpu-9min: one large GPU, 9 minutes")
    helps = field_comments(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        what = helps.get(f.name, "").replace("%", "%%")  # argparse formats help with %
        if isinstance(default, bool):
            ap.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                            help=f"{what} (default {default})")
        elif isinstance(default, (tuple, list, dict)):
            ap.add_argument(flag, dest=f.name, type=json.loads, default=None,
                            help=f"{what} (JSON, default {json.dumps(default)})")
        else:
            typ = type(default) if default is not None else str
            ap.add_argument(flag, dest=f.name, type=typ, default=None, help=f"{what} (default {default!r})")
    return ap


def _error(e: BaseException) -> int:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (2: a user error, printed as one ``error:`` line)."""
    ap = _parser()
    args = vars(ap.parse_args(argv))
    path, preset = args.pop("config"), args.pop("preset")
    try:
        cfg = TrainConfig.load(path) if path else TrainConfig()
        if preset:
            cfg = dataclasses.replace(cfg, **PRESETS[preset])
        cfg = dataclasses.replace(cfg, **{k: v for k, v in args.items() if v is not None})
    except (ValueError, TypeError, OSError) as e:
        return _error(e)  # TrainConfig.validate refused a value: nothing is written
    try:
        train(cfg)
    except (ValueError, KeyError, TypeError, OSError) as e:  # what train() documents for bad config/data
        return _error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
