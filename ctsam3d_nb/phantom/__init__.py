"""Synthetic whole-body CT phantoms (neck to upper thighs) with label maps.

No real labelled CT is available offline, so training and teaching use these:
anatomy drawn per seed (sizes, shapes, positions, contrast phase), rasterised
on any grid, with CT-like HU, texture, blur and noise. Label ids are the
project ontology's (TotalSegmentator v2 ``total`` ids plus extras, see
`PHANTOM_LABELS`).

Example:
    >>> from ctsam3d_nb.phantom import make_phantom
    >>> ct, labels, names = make_phantom(seed=0)          # 400 x 256 x 256 at 1.5 mm
    >>> ct.shape, labels.dtype, names[5]
    ((400, 256, 256), dtype('uint8'), 'liver')

Command line: ``python -m ctsam3d_nb.phantom --seed 0 --out-dir DIR`` (see `cli`).
"""
from .build import make_phantom
from .cli import write_phantom
from .intensities import PHASES
from .labels import PHANTOM_LABELS

__all__ = ["PHANTOM_LABELS", "PHASES", "make_phantom", "write_phantom"]
