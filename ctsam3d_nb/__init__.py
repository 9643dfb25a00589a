"""ctsam3d_nb: click-promptable 3D segmentation of whole-body CT (CT-SAM3D), for Jupyter.

Coordinates everywhere in the public API are voxel indices ``(z, y, x)`` in the
numpy order of the loaded CT; millimetres appear only where a name says so.
"""
from .grid import HU_WINDOW, MODEL_SPACING, ModelGrid, normalize_hu
from .io import CTLoadError, HUWarning, list_dicom_series, load_ct, load_labels, save_mask
from .volume import CTVolume

__version__ = "0.1.0"

__all__ = [
    "CTVolume",
    "CTLoadError",
    "HUWarning",
    "HU_WINDOW",
    "MODEL_SPACING",
    "ModelGrid",
    "list_dicom_series",
    "load_ct",
    "load_labels",
    "normalize_hu",
    "save_mask",
    "__version__",
]
