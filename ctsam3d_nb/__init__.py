"""ctsam3d_nb: click-promptable 3D segmentation of whole-body CT (CT-SAM3D), for Jupyter.

Coordinates everywhere in the public API are voxel indices ``(z, y, x)`` in the
numpy order of the loaded CT; millimetres appear only where a name says so.

Example:
    >>> import ctsam3d_nb as cs                                   # doctest: +SKIP
    >>> ct, labels, names = cs.load_sample()                       # doctest: +SKIP
    >>> ct = cs.load_ct("scan.nii.gz")          # or a DICOM folder, a SimpleITK image, an array  # doctest: +SKIP
    >>> pred = cs.Predictor(cs.load_model("nano")).set_volume(ct)  # doctest: +SKIP
    >>> mask = pred.click((60, 80, 50))                            # doctest: +SKIP
"""
from ._version import __version__
from .checkpoint import CheckpointError, load_model, save_checkpoint
from .clicks import first_click, next_click
from .dicom_seg import save_dicom_seg  # imports highdicom only when called (optional extra "dicom")
from .grid import HU_WINDOW, MODEL_SPACING, ModelGrid, normalize_hu
from .io import CTLoadError, HUWarning, list_dicom_series, load_ct, load_labels, mask_to_image, save_mask
from .meshes import export_mesh, mask_mesh
from .modeling import MODEL_CONFIGS, build_model
from .phantom import make_phantom
from .predictor import Predictor
from .render import render_orthogonal
from .sample import Sample, load_sample
from .settings import ClickSettings
from .volume import CTVolume

__all__ = [
    "CTVolume",
    "ClickSettings",
    "CTLoadError",
    "CheckpointError",
    "HUWarning",
    "HU_WINDOW",
    "MODEL_CONFIGS",
    "MODEL_SPACING",
    "ModelGrid",
    "Predictor",
    "Sample",
    "build_model",
    "export_mesh",
    "first_click",
    "list_dicom_series",
    "load_ct",
    "load_labels",
    "load_model",
    "load_sample",
    "make_phantom",
    "mask_mesh",
    "mask_to_image",
    "next_click",
    "normalize_hu",
    "render_orthogonal",
    "save_checkpoint",
    "save_dicom_seg",
    "save_mask",
    "__version__",
]
