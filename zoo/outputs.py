"""Where the zoo writes a folder: one policy for `zoo release --out`, `zoo convert --out`, `save_pretrained`,
and `zoo train --out` (the run folder and its final/). docs/reliability.md,
"Fourth round (issue 26), part A".

An output folder is always written whole under a temp name and swapped in (atomic_folder), which
deletes what was there before; so before any work:

- a path that does not exist is fine (created);
- an existing folder is replaced only if it is empty, or a model folder musezoo wrote: its manifest.json
  lists every entry, each a regular file whose sha256 matches, config.json among them;
- with `overwrite` (`--overwrite`), also a folder whose every entry is a regular file named as musezoo names
  model files (config.json, *.safetensors, tokenizer.json, README.md, manifest.json) or listed in its
  manifest, whatever their content; any other entry (notes.txt, a subfolder, a link) is still refused, so
  nothing musezoo did not write is ever deleted;
- a folder that is, or holds, the source being read (the run being released, the file being converted), or
  an existing folder inside it, is refused even with overwrite;
- a symbolic link, a regular file, a device, a FIFO or a socket is refused; it is only lstat'ed, never opened.

The file outputs (`-o`, `--plot`, ...: zoo.safeio.output_target) refuse the same devices, FIFOs and sockets and
paths under a file, but write through a symlink to its target; a folder output never follows a link, because
the swap would put a folder where the link was (as `--out link` did).

Kept free of torch (layer 1).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

from zoo.errors import CheckpointError, ConfigError

MAX_ENTRIES = 10_000   # a model folder holds a handful of files: past this it is not one (and listing stops)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISREG(mode):
        return "a file"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a folder"


def check_new_path(path, error=ConfigError) -> None:
    """The nearest existing ancestor of a path that does not exist must be a folder (followed through links)."""
    for parent in Path(path).absolute().parents:
        try:
            mode = os.stat(parent).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise error(f"{path}: cannot write here ({exc.strerror}); choose another path") from None
        if not stat.S_ISDIR(mode):
            raise error(f"{path}: cannot write here, {parent} is {_kind(mode)}, not a folder; choose another path")
        return


def lstat_target(path, what: str = "output folder", error=ConfigError):
    """os.lstat of an output folder's path, or None when nothing is there; a link, file, device, FIFO or
    socket is refused (the path itself is never opened, so a FIFO cannot hang the command)."""
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        path = Path(os.path.abspath(path))
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):   # new, or under a file (check_new_path says which)
        check_new_path(path, error)
        return None
    except OSError as exc:   # a name too long, a path through a file
        raise error(f"{path}: cannot write the {what} here ({exc.strerror}); choose another path") from None
    if stat.S_ISLNK(info.st_mode):
        raise error(f"{path}: is a symbolic link; musezoo never writes a {what} through a link: give the real "
                    f"folder's path, or a new one")
    if not stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is {_kind(info.st_mode)}, not a folder; give the path of a new {what} (it is created)")
    return info


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_sources(path, sources, error=ConfigError) -> None:
    """Refuse an output folder that is, holds, or (already existing) lies inside a source being read."""
    dest = Path(os.path.realpath(path))
    exists = os.path.lexists(path)
    for source, label in sources:
        src = Path(os.path.realpath(source))
        if _inside(src, dest):
            raise error(f"{path}: is {'' if src == dest else 'a folder holding '}the {label} being read ({source}); "
                        f"give another output folder")
        if exists and _inside(dest, src):
            raise error(f"{path}: lies inside the {label} being read ({source}); give a new folder, or one elsewhere")


def _manifest_names(folder: Path) -> dict:
    """The manifest's name -> sha256, or {} when it is missing, not a regular file or not a manifest."""
    from zoo.checkpoint import MANIFEST
    from zoo.safeio import read_json

    try:
        if not stat.S_ISREG(os.lstat(folder / MANIFEST).st_mode):
            return {}
        data = read_json(folder / MANIFEST, MANIFEST, ConfigError)
    except (OSError, ConfigError):
        return {}
    listed = data.get("sha256") if isinstance(data, dict) else None
    if not isinstance(listed, dict):
        return {}
    return {k: v for k, v in listed.items() if isinstance(k, str) and isinstance(v, str)}


def check_folder_target(path, sources=(), overwrite: bool = False, hint: str = "overwrite=True",
                        what: str = "output folder", error=ConfigError, advice: str | None = None) -> Path:
    """Check, before any work, that a folder may be written at `path` (the module's policy); returns the path.

    sources: (path, label) pairs being read, e.g. ((run, "run"),). hint: how the caller turns on overwrite
    ("--overwrite" on the command line). advice: what a refusal says to do, where overwrite is not offered."""
    from zoo.checkpoint import MANIFEST, MODEL_FILE_PATTERNS, file_digest

    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise error(f"the {what} must be a path (a str or a pathlib.Path), got {path!r}")
    path = Path(path)
    check_sources(path, sources, error)
    if lstat_target(path, what, error) is None:
        return path
    entries = []
    with os.scandir(path) as it:
        for entry in it:
            entries.append(entry)
            if len(entries) > MAX_ENTRIES:
                raise error(f"{path}: holds more than {MAX_ENTRIES:,} entries, not a model folder; choose another "
                            f"(new or empty) folder")
    if not entries:
        return path
    listed = _manifest_names(path)
    plain = {e.name for e in entries if e.is_file(follow_symlinks=False)}
    refusal = advice or f"choose another (new or empty) folder, or pass {hint} to replace a folder of model files"
    if overwrite:
        foreign = sorted(e.name for e in entries if e.name not in plain
                         or not (e.name in listed or any(fnmatchcase(e.name, p) for p in MODEL_FILE_PATTERNS)))
        if foreign:
            more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
            raise error(f"{path}: holds {', '.join(map(repr, foreign[:3]))}{more}, which musezoo did not write; "
                        f"{hint} replaces model files only: move those out or choose another folder")
        return path
    foreign = sorted(e.name for e in entries if e.name not in plain or (e.name not in listed and e.name != MANIFEST))
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise error(f"{path}: exists and holds {', '.join(map(repr, foreign[:3]))}{more}, which musezoo did not "
                    f"write (not in its {MANIFEST}); {refusal}")
    if "config.json" not in listed:
        raise error(f"{path}: exists and is not a model folder (no config.json in its {MANIFEST}); {refusal}")
    for name in sorted(plain - {MANIFEST}):
        if file_digest(path / name) != listed[name]:
            raise error(f"{path}: {name} was changed since musezoo wrote it (its sha256 is not the manifest's); "
                        f"{refusal}")
    return path


def atomic_folder(dest, fill) -> Path:
    """Call fill(tmp_folder), then move the finished folder to dest in one rename.

    A crash at any moment leaves either the old folder or the new one under dest, never half. What was at dest
    is deleted: callers check it first (zoo.outputs.check_folder_target); here only a folder is ever replaced,
    never a link, a file, a device or a FIFO.
    """
    dest = Path(dest)
    lstat_target(dest, error=CheckpointError)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        fill(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        for f in tmp.iterdir():
            if f.is_file():
                os.chmod(f, 0o666 & ~umask)
            _fsync(f)
        old = None
        if dest.exists() and _exchange(tmp, dest):   # one atomic swap: dest is never missing, even on SIGKILL
            old = tmp
        elif dest.exists():   # no renameat2 here: two renames, a kill between them leaves no dest
            old = dest.parent / f".{dest.name}.old-{os.getpid()}"
            os.replace(dest, old)
            os.replace(tmp, dest)
        else:
            os.replace(tmp, dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):   # file system without it
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync(path: Path) -> None:
    if path.is_file():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
