"""Data helpers every plugin needs, written once: a cache folder, a stable train/valid/test split, and a
walk over a folder of MIDI files that reports the files it cannot use instead of stopping at them.

    from zoo.data import cache_dir, read_midi_folder, split_of

    for name, midi, skipped in read_midi_folder(folder):      # name: the path inside folder
        if skipped is None:
            pieces[split_of(name)].append(midi)

No torch here; a plugin's data.py builds its datasets on top.
"""

from __future__ import annotations

import hashlib
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from zoo.errors import DataError, ZooError

SPLITS = ("train", "valid", "test")
MIDI_SUFFIXES = (".mid", ".midi")
# stable hashes of a split key: the same on every machine, Python version and run (unlike hash())
HASHES: dict[str, Callable[[bytes], int]] = {
    "sha1": lambda data: int(hashlib.sha1(data).hexdigest()[:8], 16),
    "crc32": zlib.crc32,
}


def cache_dir(plugin: str) -> Path:
    """Where `plugin` caches parsed data: $ZOO_CACHE_DIR/PLUGIN, else musezoo's user cache folder/PLUGIN
    (platformdirs: ~/.cache/musezoo on Linux, honouring $XDG_CACHE_HOME). Not created here."""
    root = os.environ.get("ZOO_CACHE_DIR")
    if root:
        return Path(root).expanduser() / plugin
    try:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("musezoo"))
    except ImportError:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "musezoo"
    return base / plugin


def stable_hash(key: str, hash: str = "sha1") -> int:
    """A hash of `key` that never changes between runs or machines (file names need not be UTF-8)."""
    return HASHES[hash](key.encode("utf-8", "surrogateescape"))


def split_of(key: str, valid: float = 0.05, test: float = 0.05, buckets: int = 100, hash: str = "sha1") -> str:
    """"train", "valid" or "test" for a piece, from a stable hash of its key (a file name, a catalogue number).

    A piece keeps its split forever, so a released model's test pieces stay unseen: once a plugin has shipped
    weights, never change its arguments.
    """
    n_test, n_valid = round(test * buckets), round(valid * buckets)
    bucket = stable_hash(key, hash) % buckets
    return "test" if bucket < n_test else "valid" if bucket < n_test + n_valid else "train"


def midi_files(folder) -> list[tuple[str, Path]]:
    """Every .mid/.midi file under `folder`, recursively and sorted, as (its path inside folder, path): the
    name is what split_of hashes. A missing or MIDI-less folder is a DataError that says what to give."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"no .mid files: the folder {folder} does not exist; give --data a folder of MIDI files")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in MIDI_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"no .mid files (nor .midi) found under {folder}; give --data a folder of MIDI files")
    return [(p.relative_to(folder).as_posix(), p) for p in files]


def read_midi_folder(folder, read: Callable[[Path], object] | None = None) -> Iterator[tuple[str, object, str | None]]:
    """(name, read(path), None) for each MIDI file under `folder`, or (name, None, why) for one that cannot be
    used: read raised. `read` defaults to zoo.midi.read_midi (size and event limits, then a PrettyMIDI); a
    plugin's own read may raise zoo.errors.DataError("shorter than a window") to skip a file with a reason."""
    if read is None:
        from zoo.midi import read_midi as read
    for name, path in midi_files(folder):
        try:
            yield name, read(path), None
        except ZooError as exc:
            yield name, None, str(exc).replace(str(path), name).split(";")[0]
        except Exception as exc:   # a truncated or hostile file can break a parser in any way
            yield name, None, f"unreadable MIDI ({type(exc).__name__})"
