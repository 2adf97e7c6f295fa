"""One process per run folder: `RUN/.lock`, held with an OS file lock while a process trains into RUN.

The lock file holds the owner's pid, host and start time (JSON), for the message a second process gets.
The OS lock (`fcntl.flock`) goes with its process: a lock left by a process that died (killed, crashed,
machine rebooted) is free again, and the next owner takes it over and says whose it was. On a file
system without working `flock` (some network mounts), the recorded owner is checked instead: a live
process of this host, or any process of another host, keeps the folder.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from nsr.atomic import OutputError
from nsr.engine.errors import RunError

try:
    import fcntl
except ImportError:  # Windows: the recorded owner alone decides
    fcntl = None

log = logging.getLogger("nsr.engine")

LOCK_FILE = ".lock"
"""The lock file inside a run folder."""

_held: dict[Path, RunLock] = {}
"""Run folders this process holds (a second `acquire` of the same folder in one process nests)."""


class RunLock:
    """Exclusive ownership of a run folder by this process (a context manager; re-entrant in-process)."""

    def __init__(self, run_dir: str | Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._depth = 0
        self.took_over: dict | None = None
        """The recorded owner of a stale lock this process took over (None if the lock was free)."""

    # ------------------------------------------------------------------ acquire / release
    def acquire(self) -> RunLock:
        """Take the folder (created if needed), or raise RunError naming the process that has it."""
        key = self.run_dir.resolve()
        held = _held.get(key)
        if held is not None:
            held._depth += 1
            return held
        for _ in range(10):  # retried only when a releasing owner removed the file under us
            try:
                self.run_dir.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise OutputError(
                    self.path, f"cannot write the run folder's lock ({err.strerror or err})"
                ) from None
            try:
                locked = self._lock(fd)
                if locked is False:
                    raise RunError(self._busy_message(_read_owner(self.path)))
                if not _same_file(fd, self.path):
                    os.close(fd)
                    continue
                previous = _read_owner(self.path)
                if locked is None and previous and _owner_alive(previous):  # no OS lock: trust the record
                    raise RunError(self._busy_message(previous))
                if previous:
                    self.took_over = previous
                    log.info(
                        "%s: taking over the lock of pid %s on %s (that process has ended)",
                        self.run_dir,
                        previous.get("pid"),
                        previous.get("host"),
                    )
                _write_owner(fd)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            self._depth = 1
            _held[key] = self
            return self
        raise RunError(f"{self.run_dir}: cannot take the run folder's lock ({self.path})")

    def release(self) -> None:
        """Give the folder back (the lock file is removed)."""
        key = self.run_dir.resolve()
        owner = _held.get(key)
        if owner is not None and owner is not self:
            owner.release()
            return
        if self._fd is None:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        _held.pop(key, None)
        try:
            if _same_file(self._fd, self.path):
                self.path.unlink(missing_ok=True)  # before unlocking: a waiter then retries on a new file
        finally:
            os.close(self._fd)  # releases the OS lock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _lock(fd: int) -> bool | None:
        """True: locked; False: another process holds it; None: no OS lock here (the record decides)."""
        if fcntl is None:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # no flock on this file system
            return None
        return True

    def _busy_message(self, owner: dict | None) -> str:
        who = "another nsr process"
        if owner:
            started = owner.get("started")
            since = f", since {time.strftime('%Y-%m-%d %H:%M', time.localtime(started))}" if started else ""
            who = f"nsr process {owner.get('pid')} on {owner.get('host')}{since}"
        return (
            f"{self.run_dir}: in use by {who} ({self.path}); wait for it to finish or stop it, "
            "or train into another --out"
        )


def _write_owner(fd: int) -> None:
    text = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()})
    os.ftruncate(fd, 0)
    os.pwrite(fd, text.encode(), 0)
    os.fsync(fd)


def _read_owner(path: Path) -> dict | None:
    try:
        owner = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _same_file(fd: int, path: Path) -> bool:
    """Whether `fd` is still the file at `path` (a releasing owner may have removed it meanwhile)."""
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _owner_alive(owner: dict) -> bool:
    """Whether the recorded owner may still run: a live pid on this host, or any process elsewhere."""
    if owner.get("pid") == os.getpid() and owner.get("host") == socket.gethostname():
        return False  # this process's own record, left by an earlier lock it has released
    if owner.get("host") != socket.gethostname():
        return True
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


__all__ = ["LOCK_FILE", "RunLock"]
