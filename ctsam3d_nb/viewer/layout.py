"""Layout decisions of :class:`~ctsam3d_nb.viewer.SliceViewer` as plain functions (no widgets).

How many pixels each view gets, given the width the notebook offers:

* The three views share ``width_px`` (default 820 px: a notebook's output area in a 1280-px
  browser window with JupyterLab's file browser open). A view whose height reaches
  ``max_height_px`` first gives its unused width to the others (water filling), so a tall
  whole-body coronal view does not shrink the axial one.
* Each image keeps its physical aspect (millimetres, not voxels), except that no side is drawn
  shorter than ``min_side_px``: the 40 mm coronal strip of a 20-slice, 2 mm series is stretched
  to a clickable height, and the view says by how much.
* Every figure has a strip of ``strip_px`` above the image for the view's name and the
  matplotlib toolbar (ipympl always draws its toolbar over the canvas; here it covers the strip,
  never the image), and is at least ``min_figure_px`` wide so that both fit.

Example:
    >>> plan = plan_views({"axial": (350, 350), "coronal": (350, 40), "sagittal": (350, 40)})
    >>> plan["axial"].image_px, plan["coronal"].image_px, round(plan["coronal"].stretch[1], 1)
    ((261, 261), (261, 120), 4.0)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..settings import is_number
from .geometry import VIEWS, Orientation, view_layout

__all__ = ["DEFAULT_WIDTH_PX", "ViewSize", "plan_views", "view_extent_mm", "viewer_plan"]

DEFAULT_WIDTH_PX = 820  # output area of a notebook in a 1280-px window, file browser open
MAX_HEIGHT_PX = 400  # tallest image: the viewer and its controls fit an 800-px-high laptop screen
MIN_SIDE_PX = 120  # shortest image side: thin scans are stretched to this, so they can be clicked
MIN_FIGURE_PX = 230  # narrowest figure: room for the view's name and the 3-button toolbar in the strip
STRIP_PX = 34  # strip above each image: view name, slice number, toolbar (28-px buttons, 3 px from the top)
GAP_PX = 12  # per view: widget margins and ipympl's canvas border


@dataclass(frozen=True)
class ViewSize:
    """Pixel geometry of one view.

    Attributes:
        view: "axial", "coronal" or "sagittal".
        image_px: ``(width, height)`` of the image (the matplotlib axes) in CSS pixels.
        figure_px: ``(width, height)`` of the whole figure: the image, the strip above it,
            and side padding up to the minimum figure width.
        stretch: ``(horizontal, vertical)`` display stretch; ``(1.0, 1.0)`` = physical aspect
            (up to the rounding of ``image_px`` to whole pixels).
        strip_px: height of the strip above the image.
    """

    view: str
    image_px: tuple[int, int]
    figure_px: tuple[int, int]
    stretch: tuple[float, float]
    strip_px: int

    @property
    def stretched(self) -> bool:
        """True if this view is not drawn in its physical aspect."""
        return max(self.stretch) > 1.0 + 1e-9

    @property
    def axes_rect(self) -> tuple[float, float, float, float]:
        """``(left, bottom, width, height)`` of the image in figure fractions (for ``fig.add_axes``)."""
        fw, fh = self.figure_px
        iw, ih = self.image_px
        return ((fw - iw) / 2 / fw, 0.0, iw / fw, ih / fh)

    @property
    def figsize(self) -> tuple[float, float]:
        """Figure size in inches at 100 dpi."""
        return self.figure_px[0] / 100.0, self.figure_px[1] / 100.0


def view_extent_mm(orient: Orientation, view: str) -> tuple[float, float]:
    """``(width, height)`` in mm of what a view shows: columns x column spacing, rows x row spacing."""
    _, r, c, _ = view_layout(view)
    return orient.shape[c] * orient.spacing[c], orient.shape[r] * orient.spacing[r]


def _water_fill(natural: dict, total: float) -> dict:
    """Split ``total`` px among views; a view never gets more than its ``natural`` width (the width at
    which it reaches the height cap), and what it leaves goes to the others in equal parts."""
    alloc, left, open_ = {}, float(total), list(natural)
    while open_:
        share = left / len(open_)
        capped = [v for v in open_ if natural[v] <= share]
        if not capped:
            alloc.update({v: share for v in open_})
            break
        for v in capped:
            alloc[v] = natural[v]
            left -= natural[v]
            open_.remove(v)
    return alloc


def plan_views(extents_mm: dict, width_px: int = DEFAULT_WIDTH_PX, max_height_px: int = MAX_HEIGHT_PX,
               min_side_px: int = MIN_SIDE_PX, min_figure_px: int = MIN_FIGURE_PX, strip_px: int = STRIP_PX,
               gap_px: int = GAP_PX) -> dict:
    """Pixel sizes of the views so that together they fit ``width_px``.

    Args:
        extents_mm: ``{view: (width_mm, height_mm)}`` of each view (:func:`view_extent_mm`).
        width_px: width available for all views side by side (CSS px).
        max_height_px: no image is taller than this.
        min_side_px: no image side is shorter; a thinner one is stretched along that side.
        min_figure_px: no figure is narrower (the image is centred, padded left and right).
        strip_px: strip above each image for its title and the toolbar.
        gap_px: margin per view (widget borders).

    Returns:
        ``{view: ViewSize}`` in the order of ``extents_mm``.

    Raises:
        ValueError: a non-positive extent or size.
    """
    for name, value in (("width_px", width_px), ("max_height_px", max_height_px), ("min_side_px", min_side_px)):
        if not is_number(value):
            raise TypeError(f"{name} is a number of pixels, e.g. 820, got {value!r}")
        if not value > 0:
            raise ValueError(f"{name} must be positive, got {value!r}")
    if min_side_px > max_height_px:
        raise ValueError(f"min_side_px ({min_side_px}) must not exceed max_height_px ({max_height_px})")
    for view, (w, h) in extents_mm.items():
        if not (w > 0 and h > 0):
            raise ValueError(f"the {view} view has a non-positive extent {(w, h)} mm")
    # the width at which each image reaches the height cap (never below the figure minimum)
    natural = {v: max(w * max_height_px / h, min_figure_px) for v, (w, h) in extents_mm.items()}
    alloc = _water_fill(natural, max(width_px - gap_px * len(extents_mm), 1))
    out = {}
    for view, (w_mm, h_mm) in extents_mm.items():
        scale = min(alloc[view] / w_mm, max_height_px / h_mm)  # px per mm, physical aspect
        iw, ih = w_mm * scale, h_mm * scale
        sx = max(1.0, min_side_px / iw)
        sy = max(1.0, min_side_px / ih)
        # whole pixels, rounded down (+ a hair for float error): the sum never exceeds the width
        iw_px, ih_px = max(math.floor(iw * sx + 1e-6), 1), max(math.floor(ih * sy + 1e-6), 1)
        out[view] = ViewSize(view, (iw_px, ih_px), (max(iw_px, min_figure_px), ih_px + strip_px),
                             (sx, sy), strip_px)
    return out


def viewer_plan(orient: Orientation, width_px: int = DEFAULT_WIDTH_PX, max_height_px: int = MAX_HEIGHT_PX,
                min_side_px: int = MIN_SIDE_PX) -> dict:
    """:func:`plan_views` for the three views of a CT with this :class:`Orientation`."""
    return plan_views({v: view_extent_mm(orient, v) for v in VIEWS}, width_px, max_height_px, min_side_px)
