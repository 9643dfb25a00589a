"""The library's version: one place, read by the package, the checkpoints and ``pyproject.toml``."""
__version__ = "0.1.0"
