"""Reading and writing MIDI files safely: clear errors in, atomic files out."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from zoo.errors import MidiError

MAX_MIDI_BYTES = 32 * 1024 * 1024  # far above any real score; guards memory on hostile input


def read_midi(path):
    """A PrettyMIDI from a file, or a MidiError that names the file and says what is wrong."""
    import pretty_midi

    path = Path(path)
    if not path.is_file():
        raise MidiError(f"{path}: no such MIDI file")
    size = path.stat().st_size
    if size > MAX_MIDI_BYTES:
        raise MidiError(f"{path}: {size} bytes is too large for a MIDI file (limit {MAX_MIDI_BYTES})")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"MThd":
        raise MidiError(f"{path}: not a MIDI file (no MThd header)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pretty_midi.PrettyMIDI(str(path))
    except Exception as exc:  # mido/pretty_midi raise many types on corrupt data
        raise MidiError(f"{path}: corrupt MIDI file ({type(exc).__name__}: {exc})") from None


def write_midi(midi, path) -> Path:
    """Write atomically: a temp file in the same folder, then one rename. No half-written MIDI."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        midi.write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def output_paths(path, n: int) -> list[Path]:
    """`out.mid` for one piece; `out-1.mid` … `out-N.mid` for several."""
    path = Path(path)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix or '.mid'}") for i in range(1, n + 1)]
