"""Training CT-SAM3D with simulated clicks (see :mod:`ctsam3d_nb.training.loop`)."""
from .config import TrainConfig
from .loop import train

__all__ = ["TrainConfig", "train"]
