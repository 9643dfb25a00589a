"""ctsam3d_nb: click-promptable 3D segmentation of whole-body CT (CT-SAM3D), for Jupyter.

Coordinates everywhere in the public API are voxel indices ``(z, y, x)`` in the
numpy order of the loaded CT; millimetres appear only where a name says so.

This namespace holds what a notebook needs; everything else is reached through its module
(``ctsam3d_nb.io.CTLoadError``, ``ctsam3d_nb.modeling.build_model``, ``ctsam3d_nb.grid``, ...).
``SliceViewer`` (ipywidgets, ipympl) and ``evaluate_interactive`` (pandas) are imported on first
use, so that ``import ctsam3d_nb`` stays quick for scripts and training workers.

Example:
    >>> import ctsam3d_nb as cs                                   # doctest: +SKIP
    >>> ct, labels, names = cs.load_sample()                       # doctest: +SKIP
    >>> ct = cs.load_ct("scan.nii.gz")          # or a DICOM folder, a SimpleITK image, an array  # doctest: +SKIP
    >>> pred = cs.Predictor(cs.load_model("nano")).set_volume(ct)  # doctest: +SKIP
    >>> mask = pred.click((60, 80, 50))                            # doctest: +SKIP
    >>> cs.SliceViewer(ct, pred)                                   # doctest: +SKIP
"""
import importlib

from ._version import __version__
from .checkpoint import load_model
from .clicks import first_click, next_click
from .dicom_seg import save_dicom_seg  # imports highdicom only when called (optional extra "dicom")
from .grid import ModelGrid
from .io import list_dicom_series, load_ct, load_labels, save_mask
from .meshes import export_mesh
from .phantom import make_phantom
from .predictor import Predictor
from .render import render_orthogonal
from .sample import load_sample
from .settings import ClickSettings
from .volume import CTVolume

__all__ = [
    "__version__",
    # a CT in and masks out
    "CTVolume",
    "load_ct",
    "load_labels",
    "list_dicom_series",
    "save_mask",
    "save_dicom_seg",
    "export_mesh",
    # data to try it on
    "load_sample",
    "make_phantom",
    # segmenting
    "load_model",
    "Predictor",
    "ClickSettings",
    "ModelGrid",
    # simulated clicks and their evaluation
    "first_click",
    "next_click",
    "evaluate_interactive",
    # looking at it
    "render_orthogonal",
    "SliceViewer",
]

_LAZY = {"SliceViewer": "ctsam3d_nb.viewer", "evaluate_interactive": "ctsam3d_nb.evaluation"}


def __getattr__(name):
    if name in _LAZY:  # widgets / pandas: imported on first use (see the module docstring)
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ctsam3d_nb' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
