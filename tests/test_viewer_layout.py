"""Layout of the slice viewer as plain functions: fits the width, physical aspect, thin scans stretched."""
from __future__ import annotations

import numpy as np
import pytest

from ctsam3d_nb.viewer.geometry import VIEWS, Orientation
from ctsam3d_nb.viewer.layout import (DEFAULT_WIDTH_PX, GAP_PX, MAX_HEIGHT_PX, MIN_FIGURE_PX, MIN_SIDE_PX, STRIP_PX,
                                      plan_views, view_extent_mm, viewer_plan)

# (z, y, x) shape and spacing of scans a workshop meets
SCANS = {
    "abdomen 512x512x120 @ 2.5 mm": ((120, 512, 512), (2.5, 0.78, 0.78)),
    "thin DICOM series 20 x 2 mm": ((20, 512, 512), (2.0, 0.98, 0.98)),
    "whole body 1800 mm": ((900, 256, 256), (2.0, 1.95, 1.95)),
    "bundled phantom": ((128, 160, 160), (2.5, 2.0, 2.0)),
    "small real CT": ((30, 101, 122), (3.0, 3.0, 3.0)),
    "sagittal acquisition, 24 slices": ((320, 320, 24), (1.0, 1.0, 3.0)),
}


def orient_of(shape, spacing, direction=np.eye(3)):
    return Orientation.from_direction(direction, shape, spacing)


def physical_ratio(orient, view):
    w, h = view_extent_mm(orient, view)
    return h / w


@pytest.mark.parametrize("width", [DEFAULT_WIDTH_PX, 900, 1400])
@pytest.mark.parametrize("scan", list(SCANS))
def test_views_fit_the_width_and_keep_their_aspect(scan, width):
    o = orient_of(*SCANS[scan])
    plan = viewer_plan(o, width_px=width)
    assert list(plan) == list(VIEWS)
    assert sum(p.figure_px[0] + GAP_PX for p in plan.values()) <= width
    for view, p in plan.items():
        iw, ih = p.image_px
        assert ih <= MAX_HEIGHT_PX and min(iw, ih) >= MIN_SIDE_PX
        assert p.figure_px[0] >= max(iw, MIN_FIGURE_PX) and p.figure_px[1] == ih + STRIP_PX
        # pixel shape = physical shape x the stated stretch, up to whole-pixel rounding
        sx, sy = p.stretch
        expected = physical_ratio(o, view) * sy / sx
        assert abs(ih / iw - expected) <= (1 / iw + 1 / ih) * (1 + expected) + 1e-9, (view, p)
        left, bottom, w, h = p.axes_rect
        assert 0 <= left and left + w <= 1 + 1e-9 and bottom == 0 and 0 < h < 1  # the strip on top stays free
        assert h * p.figure_px[1] == pytest.approx(ih) and w * p.figure_px[0] == pytest.approx(iw)


def test_a_laptop_gets_readable_views():
    """1280-px window, file browser open: the usual abdominal CT gets three ~260-px views side by side."""
    o = orient_of(*SCANS["abdomen 512x512x120 @ 2.5 mm"])
    plan = viewer_plan(o)
    assert all(p.image_px[0] >= 250 for p in plan.values())
    assert not any(p.stretched for p in plan.values())
    wide = viewer_plan(o, width_px=2000)
    assert max(p.image_px[1] for p in wide.values()) == MAX_HEIGHT_PX  # a wide screen: capped, not huge


def test_thin_scan_coronal_and_sagittal_are_stretched_to_a_clickable_height():
    o = orient_of(*SCANS["thin DICOM series 20 x 2 mm"])
    plan = viewer_plan(o)
    assert plan["axial"].stretch == (1.0, 1.0)
    for view in ("coronal", "sagittal"):
        p = plan[view]
        assert p.image_px[1] == MIN_SIDE_PX and p.stretched
        assert p.stretch[0] == 1.0 and p.stretch[1] == pytest.approx(MIN_SIDE_PX / (40.0 * p.image_px[0] / 501.76),
                                                                     rel=0.01)
        assert MIN_SIDE_PX / 20 >= 6  # each of the 20 slices gets 6 px: a slice can be hit with the mouse
    # the same scan acquired sagittally (few x slices): axial and coronal are stretched sideways
    side = viewer_plan(orient_of(*SCANS["sagittal acquisition, 24 slices"]))
    assert side["axial"].stretch[0] > 1 and side["coronal"].stretch[0] > 1 and not side["sagittal"].stretched


def test_tall_views_give_their_width_to_the_axial_view():
    o = orient_of(*SCANS["whole body 1800 mm"])
    plan = viewer_plan(o)
    assert plan["coronal"].image_px[1] == MAX_HEIGHT_PX  # height-limited
    assert plan["axial"].image_px[0] > 1.2 * (DEFAULT_WIDTH_PX - 3 * GAP_PX) / 3  # it got the spare width
    assert plan["coronal"].figure_px[0] == MIN_FIGURE_PX  # padded: room for the title and toolbar


def test_orientation_of_the_file_does_not_change_the_layout():
    shape, spacing = SCANS["thin DICOM series 20 x 2 mm"]
    lps = viewer_plan(orient_of(shape, spacing))
    ras = viewer_plan(orient_of(shape, spacing, np.diag([-1.0, -1.0, 1.0])))
    permuted = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]])  # file axes (x, y, z) = (S, A, L)
    perm = viewer_plan(orient_of(shape[::-1], spacing[::-1], permuted))
    assert lps == ras == perm


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="width_px must be positive"):
        plan_views({"axial": (100, 100)}, width_px=0)
    with pytest.raises(ValueError, match="non-positive extent"):
        plan_views({"axial": (100, 0)})
    with pytest.raises(ValueError, match="must not exceed"):
        plan_views({"axial": (100, 100)}, min_side_px=500, max_height_px=400)
