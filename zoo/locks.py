"""One process at a time per folder: an exclusive `fcntl.flock` on a lock file, released by the OS when the
process ends (however it ends), so a lock left by a killed process never blocks anyone.

The lock file holds the holder's pid, for the message of whoever is turned away; the file itself stays
(removing it would let a third process lock a fresh file while the second still holds the old one).

A lock file is only ever a regular file holding a pid: it is opened with O_NOFOLLOW (a `.lock` linked to
~/anything is refused, its target never truncated), a FIFO or a device in its place is refused from lstat
without being opened, and a regular file holding anything but a pid is refused, not truncated.
"""

from __future__ import annotations

import errno
import os
import re
import stat
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


_LOCK_TEXT = re.compile(rb"\d{0,20}\n?")
MAX_LOCK_BYTES = 64


def check_lock_file(lock_file, error=ZooError) -> None:
    """Refuse a lock file that is not one: a link, a FIFO, a device, a folder, or a regular file holding more
    than a pid. Absent is fine (it is created). Only lstat, and a read of a regular file's first bytes."""
    lock_file = Path(lock_file)
    try:
        info = os.lstat(lock_file)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        kind = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a regular file (a folder, FIFO or device)"
        raise error(f"{lock_file}: is {kind}, not a musezoo lock file; remove it (musezoo makes a new one)")
    if info.st_size > MAX_LOCK_BYTES:
        raise error(f"{lock_file}: holds {info.st_size:,} bytes, not a musezoo lock file (a pid); move it away")


def _open_lock(lock_file: Path, error) -> int:
    """Open (or create) a lock file: O_NOFOLLOW and O_NONBLOCK, a regular file of at most a pid, else `error`."""
    check_lock_file(lock_file, error)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_file, flags, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR):   # replaced by a link, a FIFO or a folder since
            raise error(f"{lock_file}: is not a regular file, not a musezoo lock file; remove it") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{lock_file}: is not a regular file, not a musezoo lock file; remove it")
        if not _LOCK_TEXT.fullmatch(os.pread(fd, MAX_LOCK_BYTES + 1, 0)):
            raise error(f"{lock_file}: holds something other than a pid, not a musezoo lock file; move it away")
    except BaseException:
        os.close(fd)
        raise
    return fd


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
    fd = _open_lock(lock_file, error)
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
