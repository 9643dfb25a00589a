"""Errors and warnings of CT input (re-exported by ``ctsam3d_nb.io`` and ``ctsam3d_nb``)."""
from __future__ import annotations

__all__ = ["CTLoadError", "HUWarning"]


class CTLoadError(ValueError):
    """A file, folder, image or array could not be read as a CT volume / label map."""


class HUWarning(UserWarning):
    """The intensities of a loaded volume do not look like CT Hounsfield units."""
