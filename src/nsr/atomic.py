"""Atomic file writes: a temporary file in the target's folder, then a rename.

A reader never sees a half-written file, and a killed writer leaves the previous file intact. An output
location that cannot be written (a read-only folder, a file where a folder is needed, a full disk) is an
`OutputError` naming the path; commands check theirs with `check_writable_folder` / `check_writable_file`
before any work starts.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


class OutputError(OSError):
    """An output location that cannot be written: one line naming the path and the reason."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


OUTPUT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
"""Errors of a write that say the output location is at fault (full, read-only, not allowed, too big)."""


def check_writable_folder(path: str | Path) -> Path:
    """Create the folder `path` if needed and make sure a file can be written in it.

    Raises:
        OutputError: `path` is a file, cannot be created (e.g. a parent is a file) or is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(path, "exists and is not a folder (choose another output path)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(path, f"cannot create this folder ({err.strerror or err})") from None
    try:
        handle, name = tempfile.mkstemp(prefix=".nsr-write-check.", dir=path)
        os.close(handle)
        os.unlink(name)
    except OSError as err:
        raise OutputError(path, f"cannot write in this folder ({err.strerror or err})") from None
    return path


def check_writable_file(path: str | Path) -> Path:
    """Make sure `path` can be written as a file (its folder is created if needed).

    Raises:
        OutputError: `path` is a folder, or its folder cannot be created or written.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(path, "is a folder (give a file name)")
    check_writable_folder(path.parent)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call `write(file)` on a temporary binary file, fsync it, then move it onto `path`.

    Parent folders are created; the file gets the usual permissions (0666 minus the umask).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise OutputError(path, f"cannot write here ({err.strerror or err})") from None
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o666 & ~_umask())
        os.replace(temp_name, path)
    except OSError as err:
        Path(temp_name).unlink(missing_ok=True)
        if err.errno in OUTPUT_ERRNOS or isinstance(err, IsADirectoryError):
            raise OutputError(path, f"cannot write here ({err.strerror or err})") from None
        raise
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return path
