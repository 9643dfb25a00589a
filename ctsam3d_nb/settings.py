"""How a click becomes a 3D mask: one settings object for the :class:`~ctsam3d_nb.predictor.Predictor`.

    from ctsam3d_nb import ClickSettings, Predictor
    pred = Predictor(model, ClickSettings(mode="grow", growth_budget=12))
    pred = Predictor(model, mode="grow")            # the same, field by field

The settings are stored in every session log (``settings`` as a dict) and replayed from it;
the evaluation CLIs take one flag per field (:func:`add_arguments`, :func:`from_arguments`).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass

from ._fields import field_comments

__all__ = ["ClickSettings", "MODES", "PRECISIONS", "add_arguments", "from_arguments"]

MODES = ("zoom", "grow")
PRECISIONS = ("auto", "fp32", "bf16")


@dataclass(frozen=True)
class ClickSettings:
    # how an object larger than one 64³ patch (96 mm) is segmented:
    #   "zoom": predict again on coarser grids (3 mm, 6 mm: 192, 384 mm fields) while the mask touches the
    #           patch faces, then refine the coarse mask's surface on finer patches (nnInteractive's idea);
    #   "grow": the paper's cross-patch growth, neighbour by neighbour at 1.5 mm (see the grow fields)
    mode: str = "grow"
    threshold: float = 0.5  # probability above which a voxel is in the mask, in (0, 1)
    self_rounds: int = 0  # a positive click's patches are decoded this many more times, each with the mask just
    #   predicted in the prompt's mask channel (the model's own next round, without a new click), before growth
    keep_connected: bool = True  # after each click keep only the mask's parts a positive click touches
    precision: str = "auto"  # the model's arithmetic: "auto" = bfloat16 on CUDA, float32 on CPUs (the same masks
    #   on every CPU, to a few voxels); "bf16" = bfloat16 autocast everywhere (decodes about 1.75x faster on CPUs
    #   with bfloat16 in hardware, AVX512-BF16/AMX; refused on other CPUs: emulated, 190x slower on AVX2; masks
    #   differ slightly, docs/benchmarks.md); "fp32" = float32
    # ---- zoom
    levels: tuple = (1, 2, 4)  # grid factors of the zoom levels (x 1.5 mm), finest first, each a multiple of the last
    refine_budget: int = 8  # most patches decoded to refine a coarse mask: the finest level whose surface fits,
    #   else this many surface patches nearest the click on the level below the coarse one
    zoom_min_agreement: float = 0.5  # a coarser level is kept only if its mask agrees with the finer one where
    #   both see (Dice >= this; 0 = always zoom): a leak that touched the faces does not zoom out
    # ---- grow
    growth_budget: int = 27  # most 64³ patches one object may span through cross-patch growth
    growth_seed: bool = True  # a grown patch's prompt also gets a positive click at the deepest point of the mask
    #   carried into it (False: the carried mask alone, in the prompt's mask channel)
    cpp_heatmaps: bool = False  # also add the CPP net's heatmap to a grown patch's prompt (the release's way)
    cpp_peak_threshold: float | None = None  # only heatmap peaks above this become clicks (needs cpp_heatmaps)
    growth_guard: bool = False  # keep a grown patch only if it continues the carried mask through the overlap
    growth_min_agreement: float = 0.5  # overlap Dice a grown patch needs with growth_guard, in [0, 1]
    # ---- negative clicks
    retract_budget: int = 0  # most other patches re-decoded to follow what a negative click removed into the
    #   patches beside it (a leak spans many patches; the click re-decodes only those holding it); 0 = off

    def __post_init__(self):
        def need(ok, name, what):
            if not ok:
                raise ValueError(f"ClickSettings.{name} = {getattr(self, name)!r}: {what}")

        def is_bool(v):
            return type(v).__name__ in ("bool", "bool_")  # numpy booleans are fine

        need(self.mode in MODES, "mode", f"must be one of {', '.join(map(repr, MODES))}")
        need(self.precision in PRECISIONS, "precision", f"must be one of {', '.join(map(repr, PRECISIONS))}")
        need(is_number(self.threshold) and 0 < self.threshold < 1, "threshold", "must be a number in (0, 1)")
        lv = self.levels
        need(isinstance(lv, (tuple, list)) and len(lv) >= 1 and all(is_whole(f) and f >= 1 for f in lv)
             and lv[0] == 1 and all(b % a == 0 and b > a for a, b in zip(lv, lv[1:])), "levels",
             "must start at 1 and increase, each a whole multiple of the one before, e.g. (1, 2, 4)")
        object.__setattr__(self, "levels", tuple(int(f) for f in lv))
        need(is_whole(self.refine_budget) and self.refine_budget >= 0, "refine_budget", "must be a whole number >= 0")
        need(is_number(self.zoom_min_agreement) and 0 <= self.zoom_min_agreement <= 1, "zoom_min_agreement",
             "must be a number in [0, 1]")
        need(is_whole(self.growth_budget) and self.growth_budget >= 1, "growth_budget",
             "must be a whole number >= 1")
        need(is_whole(self.retract_budget) and self.retract_budget >= 0, "retract_budget",
             "must be a whole number >= 0")
        need(is_whole(self.self_rounds) and 0 <= self.self_rounds <= 8, "self_rounds",
             "must be a whole number in [0, 8]")
        for name in ("refine_budget", "growth_budget", "retract_budget", "self_rounds"):  # 1.0 from JSON: a count
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("keep_connected", "cpp_heatmaps", "growth_guard", "growth_seed"):
            need(is_bool(getattr(self, name)), name, "must be True or False")
        pt = self.cpp_peak_threshold
        need(pt is None or (is_number(pt) and 0 < pt <= 1), "cpp_peak_threshold", "must be None or a number in (0, 1]")
        need(pt is None or self.cpp_heatmaps, "cpp_peak_threshold",
             "picks peaks of the CPP heatmaps: set cpp_heatmaps=True with it")
        need(is_number(self.growth_min_agreement) and 0 <= self.growth_min_agreement <= 1, "growth_min_agreement",
             "must be a number in [0, 1]")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_dict(cls, d: dict, defaults: dict | None = None) -> "ClickSettings":
        """Settings from a session log's dict; keys it lacks take ``defaults`` (then the field defaults)."""
        if not isinstance(d, dict):
            raise ValueError(f"settings must be a dict, got {type(d).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown click settings {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{**(defaults or {}), **d})

    def replace(self, **changes) -> "ClickSettings":
        return dataclasses.replace(self, **changes)


def is_number(v) -> bool:
    """A finite real number (Python or numpy), not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) or (
        type(v).__module__ == "numpy" and hasattr(v, "dtype") and v.dtype.kind in "fiu" and math.isfinite(float(v)))


def is_whole(v) -> bool:
    """A finite number with no fractional part (``3``, ``3.0``, ``np.int64(3)``), not a bool."""
    return is_number(v) and float(v) == int(v)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`ClickSettings` field (``--mode``, ``--growth-budget``, ``--cpp-heatmaps`` ...);
    unset flags keep the defaults. Read them back with :func:`from_arguments`."""
    helps = field_comments(ClickSettings)
    g = parser.add_argument_group("click settings (ctsam3d_nb.ClickSettings)")
    for f in dataclasses.fields(ClickSettings):
        flag = "--" + f.name.replace("_", "-")
        h = f"{helps.get(f.name, '')} (default {f.default!r})"
        if isinstance(f.default, bool):
            g.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=h)
        elif isinstance(f.default, tuple):
            g.add_argument(flag, dest=f.name, type=int, nargs="+", default=None, help=h)
        elif f.name in ("mode", "precision"):
            g.add_argument(flag, dest=f.name, choices=MODES if f.name == "mode" else PRECISIONS, default=None, help=h)
        else:
            typ = float if f.default is None or isinstance(f.default, float) else int
            g.add_argument(flag, dest=f.name, type=typ, default=None, help=h)


def from_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser | None = None) -> ClickSettings:
    """The :class:`ClickSettings` of the flags that were given; invalid values are a parser error."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(ClickSettings)
             if getattr(args, f.name, None) is not None}
    if given.get("cpp_peak_threshold") is not None and "cpp_heatmaps" not in given:
        given["cpp_heatmaps"] = True  # peaks of the heatmaps need the heatmaps
    try:
        return ClickSettings(**given)
    except ValueError as e:
        if parser is None:
            raise
        parser.error(str(e))
