"""Shared by ``test_slice_viewer.py`` and ``test_slice_viewer_widgets.py``: a small CT with a bright
block (LAI directions, anisotropic voxels), a SliceViewer on it with the stand-in model, and a real
matplotlib mouse press at the pixel of a voxel."""
from __future__ import annotations

import numpy as np
from matplotlib.backend_bases import MouseEvent

from ctsam3d_nb import CTVolume
from ctsam3d_nb.predictor import Predictor
from ctsam3d_nb.viewer import SliceViewer, voxel_to_data
from region_model import RegionModel

LAI = np.diag([1.0, -1.0, -1.0])
BLOCK = (slice(6, 14), slice(8, 16), slice(8, 20))  # the bright structure, (z, y, x) of the file
INSIDE = (10, 12, 14)


def block_ct(direction=LAI, spacing=(3.0, 1.5, 1.2)):
    hu = np.zeros((26, 24, 28), np.int16)
    hu[BLOCK] = 200
    hu[21:25, 2:5, 2:6] = 200  # a second structure, beyond the stand-in model's reach
    hu += np.arange(28, dtype=np.int16)  # every column differs: a mapping error changes the HU
    return CTVolume.from_array(hu, spacing=spacing, direction=direction)


def make_viewer(interactive=False, **kw):
    ct = block_ct()
    return SliceViewer(ct, Predictor(RegionModel(), growth_budget=1), interactive=interactive, **kw)


def press(viewer, view, voxel, button=1):
    """A real matplotlib MouseEvent at the pixel of ``voxel``, through the canvas callbacks."""
    viewer.goto(voxel)  # show the slice that holds the voxel
    k, xd, yd = voxel_to_data(viewer.orient, view, voxel)
    ax, fig = viewer.axes[view], viewer.figures[view]
    x, y = ax.transData.transform((xd, yd))
    event = MouseEvent("button_press_event", fig.canvas, x, y, button=button)
    assert event.inaxes is ax
    fig.canvas.callbacks.process("button_press_event", event)
    return event
