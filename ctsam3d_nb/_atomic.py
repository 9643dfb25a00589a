"""Atomic file writes shared by every exporter (masks, checkpoints, sessions, CSVs, phantoms)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(target, write, suffix: str | None = None) -> Path:
    """Run ``write(tmp_path)`` on a temporary file next to ``target``, then rename it into place.

    A crash or an exception leaves ``target`` untouched and no temporary file behind. The file
    gets the usual permissions (0666 minus the umask; ``mkstemp`` alone makes private 0600 files).
    ``suffix`` is the temporary file's ending (writers such as SimpleITK pick the format by it);
    default: the target's own suffixes.
    """
    target = Path(target)
    suffix = "".join(target.suffixes) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp" + suffix, dir=target.parent)
    os.close(fd)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        write(tmp)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


def export_target(path, source=None, overwrite: bool = False) -> Path:
    """The resolved path an exporter may write to, or a clear error: never the input CT (``source``, a file
    or a DICOM folder), never into a missing folder, never over an existing file unless ``overwrite``."""
    target = Path(path).expanduser().resolve()
    if source:
        src = Path(source).resolve()
        same = target.exists() and src.exists() and os.path.samefile(target, src)  # case-insensitive disks too
        if same or target == src or (src.is_dir() and src in target.parents):
            raise ValueError(f"refusing to write '{target}': that is the input CT. Choose another file name.")
    if not target.parent.is_dir():
        raise FileNotFoundError(f"output folder '{target.parent}' does not exist; create it first")
    if target.is_dir():
        raise IsADirectoryError(f"'{target}' is a folder; give a file name (for example '{target / 'seg.nii.gz'}')")
    if target.exists() and not overwrite:
        raise FileExistsError(f"'{target}' exists; pass overwrite=True to replace it, or choose another name")
    return target

