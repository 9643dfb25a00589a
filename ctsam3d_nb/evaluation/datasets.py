"""Moved to :mod:`ctsam3d_nb.datasets` (training reads the adapters too); this alias keeps old imports working."""
from ..datasets import *  # noqa: F401,F403
from ..datasets import __all__  # noqa: F401
