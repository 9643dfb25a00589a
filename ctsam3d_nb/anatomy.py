"""Whole-body CT anatomy: one stable id, name, colour and group per structure.

Ids 1..117 are TotalSegmentator v2's ``total`` task exactly (same ids, same
names), so its label maps need no conversion. Ids 118 and up are extras: body
composition (118 body, 119 subcutaneous_fat, 120 skeletal_muscle, 121 torso_fat),
whole lungs (122 lung_left, 123 lung_right), and the structures other datasets
label that TotalSegmentator v2 does not (124..137). Label maps of the public
datasets in `LABEL_CONVENTIONS` are remapped to these ids with `convert_labels`.

Example:
    >>> by_name("liver").id, by_id(52).name, by_name("Vertebrae L1").id
    (5, 'aorta', 31)
    >>> convert_labels(np.array([[0, 6], [8, 9]]), "amos22").tolist()
    [[0, 5], [52, 63]]
"""
from __future__ import annotations

import difflib
import operator
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from ._anatomy_tables import (
    DATASET_CONVENTIONS,
    STRUCTURE_ROWS,
    TS_OTHER_FILE_STEMS,
    TS_V1_TOTAL_NAMES,
)

__all__ = [
    "GROUPS",
    "LABEL_CONVENTIONS",
    "LabelConvention",
    "MAX_ID",
    "MAX_LABEL_VALUE",
    "STRUCTURES",
    "Structure",
    "TOTALSEG_FILE_NAMES",
    "TS_V2_MAX_ID",
    "by_id",
    "by_name",
    "color_lut",
    "convention_for",
    "convert_labels",
    "in_group",
    "names",
    "parts_of",
]

GROUPS = ("organ", "bone", "vessel", "muscle", "other")
TS_V2_MAX_ID = 117  # ids 1..117 are TotalSegmentator v2 `total`, verbatim
_NAME_RE = re.compile(r"^[a-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Structure:
    """One anatomical structure of the ontology.

    Attributes:
        id: the label value in ontology label maps (1..MAX_ID; 0 is background).
        name: snake_case name; for ids 1..117 exactly TotalSegmentator v2's name.
        group: one of `GROUPS` ("organ", "bone", "vessel", "muscle", "other").
        color: display colour ``(r, g, b)``, each 0..255.
        description: a short note where the name alone is ambiguous, else "".
        part_of: name of a structure whose region contains this one (a lung lobe
            lies in ``lung_left``), used to merge fine labels into coarse ones; the
            parent need not be exactly the union of its parts. None if unused.
    """

    id: int
    name: str
    group: str
    color: tuple[int, int, int]
    description: str = ""
    part_of: str | None = None

    def __post_init__(self):
        if not isinstance(self.id, int) or self.id < 1:
            raise ValueError(f"Structure id must be a positive int (0 is background), got {self.id!r}")
        if not _NAME_RE.match(self.name):
            raise ValueError(f"Structure name must be snake_case, got {self.name!r}")
        if self.group not in GROUPS:
            raise ValueError(f"Structure {self.name!r}: group must be one of {GROUPS}, got {self.group!r}")
        color = tuple(self.color)
        if len(color) != 3 or not all(isinstance(c, int) and 0 <= c <= 255 for c in color):
            raise ValueError(f"Structure {self.name!r}: color must be 3 ints in 0..255, got {self.color!r}")
        object.__setattr__(self, "color", color)


STRUCTURES: tuple[Structure, ...] = tuple(Structure(*row) for row in sorted(STRUCTURE_ROWS))
MAX_ID = STRUCTURES[-1].id
# label ids are uint16: every convention, every ontology id, what save_mask writes, what viewers colour
MAX_LABEL_VALUE = 65535
_BY_ID = {s.id: s for s in STRUCTURES}


def _key(name: str) -> str:
    """Normalise a user-typed name: case-insensitive, spaces/hyphens as underscores."""
    return re.sub(r"[\s\-_]+", "_", name.strip().lower())


_BY_KEY = {_key(s.name): s for s in STRUCTURES}
assert len(_BY_ID) == len(STRUCTURES) == len(_BY_KEY), "duplicate ids or names in _anatomy_tables"
assert all(s.part_of in (None, *(t.name for t in STRUCTURES)) for s in STRUCTURES), "bad part_of name"


def by_id(id: int) -> Structure:
    """The structure with this ontology id. Raises KeyError for 0 or unknown ids."""
    try:
        return _BY_ID[operator.index(id)]
    except (KeyError, TypeError):
        raise KeyError(f"no structure with id {id!r}: ontology ids are 1..{MAX_ID} (0 is background)") from None


def by_name(name: str) -> Structure:
    """The structure with this name, case-insensitive, spaces or hyphens for underscores.

    Example:
        >>> by_name("Lung upper-lobe left").id
        10

    Raises:
        KeyError: unknown name; the message suggests close matches.
    """
    if not isinstance(name, str):
        raise TypeError(f"by_name needs a str, got {type(name).__name__}; use by_id for integer ids")
    key = _key(name)
    if key in _BY_KEY:
        return _BY_KEY[key]
    close = difflib.get_close_matches(key, list(_BY_KEY), n=5, cutoff=0.6)
    hint = (
        "did you mean " + ", ".join(repr(_BY_KEY[k].name) for k in close) + "?"
        if close
        else "see anatomy.names() for all names"
    )
    raise KeyError(f"no structure named {name!r}; {hint}")


def near_miss(name: str, cutoff: float = 0.85) -> str | None:
    """The ontology name ``name`` is most likely a misspelling of ("livr" -> "liver"), or None when ``name`` is
    an ontology name itself or close to none (a custom name such as "tumour")."""
    key = _key(name)
    if key in _BY_KEY:
        return None
    close = difflib.get_close_matches(key, list(_BY_KEY), n=1, cutoff=cutoff)
    return _BY_KEY[close[0]].name if close else None


def names() -> tuple[str, ...]:
    """All structure names, in id order."""
    return tuple(s.name for s in STRUCTURES)


def in_group(group: str) -> tuple[Structure, ...]:
    """All structures of one group (see `GROUPS`), in id order."""
    if group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; groups are {GROUPS}")
    return tuple(s for s in STRUCTURES if s.group == group)


def parts_of(name: str) -> tuple[Structure, ...]:
    """The structures whose ``part_of`` is ``name`` (direct parts only), in id order.

    Example:
        >>> [s.name for s in parts_of("lung_right")]
        ['lung_upper_lobe_right', 'lung_middle_lobe_right', 'lung_lower_lobe_right']
    """
    parent = by_name(name).name
    return tuple(s for s in STRUCTURES if s.part_of == parent)


_COLOR_LUT = np.zeros((MAX_ID + 1, 3), dtype=np.uint8)
for _s in STRUCTURES:
    _COLOR_LUT[_s.id] = _s.color


def color_lut() -> np.ndarray:
    """Colour lookup table, uint8 array of shape ``(MAX_ID + 1, 3)``, RGB 0..255.

    Row ``i`` is the colour of ontology id ``i``; row 0 (background) is black,
    so ``color_lut()[label_map]`` turns a ``(z, y, x)`` label map into a
    ``(z, y, x, 3)`` RGB image. Returns a fresh copy each call.
    """
    return _COLOR_LUT.copy()


# Output dtype of convert_labels: the smallest unsigned type that holds every id.
_LABEL_DTYPE = np.min_scalar_type(MAX_ID)


@dataclass(frozen=True, eq=False)
class LabelConvention:
    """How one dataset numbers its labels, and what each value is in the ontology.

    Attributes:
        name: the convention's key in `LABEL_CONVENTIONS`, e.g. "amos22".
        labels: source label value -> ontology structure name (0 is never listed).
        source_names: source label value -> the dataset's own label string, verbatim
            (e.g. AMOS 9 -> "postcava"), for printing.
        reference: where the values come from.
    """

    name: str
    labels: Mapping[int, str]
    source_names: Mapping[int, str]
    reference: str = ""
    _lut: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        if set(self.labels) != set(self.source_names):
            raise ValueError(f"convention {self.name!r}: labels and source_names must have the same values")
        if any(not isinstance(v, int) or v < 1 for v in self.labels):
            raise ValueError(f"convention {self.name!r}: label values must be ints >= 1 (0 is background)")
        lut = np.full(max(self.labels) + 1, -1, dtype=np.int32)
        lut[0] = 0
        for value, struct_name in self.labels.items():
            lut[value] = by_name(struct_name).id  # KeyError here = a broken table
        lut.setflags(write=False)
        object.__setattr__(self, "labels", MappingProxyType(dict(sorted(self.labels.items()))))
        object.__setattr__(self, "source_names", MappingProxyType(dict(sorted(self.source_names.items()))))
        object.__setattr__(self, "_lut", lut)

    def describe(self, value: int) -> str:
        """``"<dataset label> -> <ontology name> (id N)"`` for one source value, for printing."""
        return f"{self.source_names[value]} -> {self.labels[value]} (id {by_name(self.labels[value]).id})"


def _build_conventions() -> dict[str, LabelConvention]:
    ts_v2 = {s.id: s.name for s in STRUCTURES if s.id <= TS_V2_MAX_ID}
    ts_v1 = {i + 1: n for i, n in enumerate(TS_V1_TOTAL_NAMES)}
    conventions = [
        LabelConvention("totalsegmentator_v2", ts_v2, ts_v2, "TotalSegmentator v2, task `total`"),
        LabelConvention("totalsegmentator_v1", ts_v1, ts_v1, "TotalSegmentator v1, task `total` (104 classes)"),
    ]
    for name, spec in DATASET_CONVENTIONS.items():
        rows = spec["rows"]
        conventions.append(
            LabelConvention(
                name,
                {v: ours for v, _, ours in rows},
                {v: theirs for v, theirs, _ in rows},
                spec["reference"],
            )
        )
    return {c.name: c for c in conventions}


_CONVENTIONS = _build_conventions()

#: convention name -> {source label value: ontology name}. A plain copy for
#: reading; `convention_for` gives the full `LabelConvention`.
LABEL_CONVENTIONS: dict[str, dict[int, str]] = {n: dict(c.labels) for n, c in _CONVENTIONS.items()}

# Extra spellings accepted by convention_for (compared without case/punctuation).
_CONVENTION_ALIASES = {
    "totalsegmentator": "totalsegmentator_v2",
    "total": "totalsegmentator_v2",
    "ts": "totalsegmentator_v2",
    "tsv2": "totalsegmentator_v2",
    "tsv1": "totalsegmentator_v1",
    "totalv1": "totalsegmentator_v1",
    "flare": "flare22",
    "amos": "amos22",
    "synapse": "btcv",
}


def convention_for(name: str | LabelConvention) -> LabelConvention:
    """The `LabelConvention` called ``name``, e.g. "amos22", "AMOS", "TotalSegmentator".

    Case, spaces, hyphens and underscores are ignored; "totalsegmentator" alone
    means v2. A `LabelConvention` is returned unchanged.

    Raises:
        KeyError: unknown convention; the message lists the known ones.
    """
    if isinstance(name, LabelConvention):
        return name
    if not isinstance(name, str):
        raise TypeError(f"convention must be a name (str), got {type(name).__name__}")
    squash = re.sub(r"[^a-z0-9]", "", name.lower())
    for key in _CONVENTIONS:
        if re.sub(r"[^a-z0-9]", "", key) == squash:
            return _CONVENTIONS[key]
    if squash in _CONVENTION_ALIASES:
        return _CONVENTIONS[_CONVENTION_ALIASES[squash]]
    raise KeyError(f"unknown label convention {name!r}; known conventions: {', '.join(_CONVENTIONS)}")


def convert_labels(label_array, convention: str | LabelConvention) -> np.ndarray:
    """Remap a label map from a dataset's label values to ontology ids.

    Args:
        label_array: integer label map of any shape, e.g. ``(z, y, x)``; values are
            the convention's label values, 0 = background. Float arrays are accepted
            if every value is a whole number (NIfTI loaders often return floats).
        convention: a name accepted by `convention_for`, or a `LabelConvention`.

    Returns:
        Array of the same shape with ontology ids (0 stays 0), dtype uint8 (the
        smallest unsigned dtype holding `MAX_ID`). Never a view of the input.

    Raises:
        ValueError: the map holds values the convention does not define; the
            message lists them (they usually mean the wrong convention was chosen).
        TypeError: the array is not numeric (or is boolean).

    Example:
        >>> convert_labels(np.array([0, 11, 12, 15]), "word").tolist()
        [0, 18, 124, 127]
    """
    conv = convention_for(convention)
    a = np.asarray(label_array)
    if a.dtype.kind == "f":
        if not (np.isfinite(a).all() and (a == np.round(a)).all()):
            raise ValueError("label_array holds non-integer values; a label map must hold whole numbers")
        if a.size == 0 or (a.min() >= 0 and a.max() < conv._lut.size):
            a = a.astype(np.int64)  # exact; values out of range stay float so the error names them (1e30 never wraps)
    elif a.dtype.kind not in "iu":
        raise TypeError(
            f"label_array must be an integer label map, got dtype {a.dtype}"
            + ("; a boolean mask has no label convention" if a.dtype.kind == "b" else "")
        )
    lut = conv._lut
    if a.size == 0:
        return np.zeros(a.shape, dtype=_LABEL_DTYPE)
    in_range = int(a.min()) >= 0 and int(a.max()) < lut.size
    out = lut[a] if in_range else None
    if out is None or (out < 0).any():
        present = np.unique(a)
        bad = [int(v) for v in present if v < 0 or v >= lut.size or lut[int(v)] < 0]
        shown = ", ".join(map(str, bad[:20])) + (f", ... ({len(bad)} in all)" if len(bad) > 20 else "")
        raise ValueError(
            f"label values {shown} are not defined in the {conv.name!r} convention "
            f"(it defines 0 and {', '.join(map(str, conv.labels))}); "
            "check that the label map really uses this convention"
        )
    return out.astype(_LABEL_DTYPE)


# TotalSegmentator writes one file per structure, `segmentations/<stem>.nii.gz`.
# Every stem it writes for the tasks we read is our name verbatim: v2 `total`
# (ids 1..117), the v1 `total` names v2 renamed or dropped (heart chambers and
# myocardium, pulmonary_artery, face; all ontology extras), and the `body` /
# `tissue_types` tasks. Stems not in this dict (e.g. `lung_vessels`) are not
# ontology structures and should be skipped.
TOTALSEG_FILE_NAMES: dict[str, str] = {
    stem: by_name(stem).name
    for stem in (
        *(s.name for s in STRUCTURES if s.id <= TS_V2_MAX_ID),
        *TS_V1_TOTAL_NAMES,
        *TS_OTHER_FILE_STEMS,
    )
}
