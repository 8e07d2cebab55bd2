"""Reading and writing files that strangers control: bounded, regular files only, atomic results.

Every JSON file the zoo reads (config.json, tokenizer.json, manifest.json, trainer_state.json, run.json,
--config, --metrics) goes through `read_json`; every output file (MIDI, pictures, scores, JSON results)
goes through `atomic_write`. Kept free of torch so `import zoo` stays light.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from zoo.errors import ZooError

# far above any real config, tokenizer, manifest or metrics file; a symlink to /dev/zero or a 4 GB
# manifest would otherwise be read whole
MAX_JSON_BYTES = 16 * 1024 * 1024


def read_bytes(path, max_bytes: int, what: str = "file", error=ZooError, prefix: bool = False) -> bytes:
    """The bytes of a regular file of at most max_bytes; a device, FIFO, folder or larger file is `error`
    (with prefix=True a larger file gives its first max_bytes instead: a model card shown by `zoo info`).

    O_NONBLOCK keeps open() of a FIFO from waiting for a writer; fstat on the open descriptor checks
    the file actually read (a symlink is followed to its target, which must itself be a regular file).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read this {what} ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: not a regular file (a device, FIFO, socket or folder); give a {what}")
        if info.st_size > max_bytes and not prefix:
            raise error(f"{path}: {info.st_size:,} bytes is too large for a {what} (limit {max_bytes:,})")
        chunks, left = [], max_bytes + 1
        while left > 0:   # the size can change after fstat: never read past the cap
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if prefix:
            return data[:max_bytes]
        if len(data) > max_bytes:
            raise error(f"{path}: grew past {max_bytes:,} bytes while being read; give a {what}")
        return data
    except OSError as exc:
        raise error(f"{path}: cannot read this {what} ({exc.strerror})") from None
    finally:
        os.close(fd)


def read_json(path, what: str = "JSON file", error=ZooError, max_bytes: int = MAX_JSON_BYTES):
    """Parse a bounded regular JSON file; any failure is one `error` that names the file."""
    return parse_json(read_bytes(path, max_bytes, what, error), path, what, error)


def parse_json(data: bytes, path, what: str = "JSON file", error=ZooError):
    """Parse the bytes of a JSON file already read (e.g. to hash the same bytes first); a failure is one `error`."""
    try:
        return json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:   # deep nesting is a RecursionError
        raise error(f"{path}: not valid JSON ({str(exc)[:200]}); fix or re-create the {what}") from None


def output_target(path, error=ZooError) -> Path:
    """Where an output named `path` really goes: a symlink is written through to its target, and anything
    that exists but is not a regular file (/dev/null, a FIFO, a socket, a folder) is refused, because an
    atomic write renames over it (as root, `-o /dev/null` turned /dev/null into a regular file)."""
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target   # a new file (or a dangling symlink's future target)
    except OSError as exc:   # a symlink loop, a name too long, a path through a file
        raise error(f"{path}: cannot write here ({exc.strerror})") from None
    if stat.S_ISDIR(mode):
        raise error(f"{path}: is a folder; give a file name inside it")
    if not stat.S_ISREG(mode):
        raise error(f"{path}: exists and is not a regular file (a device, FIFO or socket); "
                    f"give the name of a new or ordinary file")
    return target


@contextmanager
def atomic_write(path, error=ZooError):
    """`with atomic_write(out) as tmp:` write the file at tmp; on success it replaces `out` in one rename.

    The temp file is in the target's folder and keeps its suffix (matplotlib and music21 pick the format
    from it); it gets the permissions a plain open() would (mkstemp makes 0600). On any exception the temp
    file is removed and the old file is untouched. Returns, in the with-target, the temp Path.
    """
    target = output_target(path, error)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=f".tmp{target.suffix[:20]}", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        yield tmp
        with open(tmp, "rb") as f:   # on disk before the rename: a crash never leaves an empty file
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path, text: str, error=ZooError) -> Path:
    """Write a small text file (JSON results, summaries) atomically."""
    with atomic_write(path, error) as tmp:
        tmp.write_text(text)
    return Path(path)
