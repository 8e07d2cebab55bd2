"""One process at a time per folder: an exclusive `fcntl.flock` on a lock file, released by the OS when the
process ends (however it ends), so a lock left by a killed process never blocks anyone.

The lock file holds the holder's pid, for the message of whoever is turned away; the file itself stays
(removing it would let a third process lock a fresh file while the second still holds the old one).
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import ZooError


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


@contextmanager
def hold(lock_file, what: str, wait: bool = False, error=ZooError):
    """Hold the lock on `lock_file` (created if needed) for the with-block.

    Taken by another process: with wait=False an `error` saying "<what> is in use by another process (pid N)";
    with wait=True one line on stderr, then wait for it. Where flock is unavailable (not POSIX) nothing is locked.
    """
    try:
        import fcntl
    except ImportError:   # Windows: no advisory locks here; the atomic renames still keep files whole
        yield
        return
    lock_file = Path(lock_file)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                raise error(f"{what} is in use by another process (pid {_holder(fd)}); wait for it to finish, "
                            f"or stop it") from None
            print(f"zoo: waiting for another process (pid {_holder(fd)}) that is using {what}", file=sys.stderr,
                  flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)   # releases the lock
