"""Reading and writing MIDI files safely: clear errors in, atomic files out."""

from __future__ import annotations

import errno
import warnings
from pathlib import Path

from zoo.errors import MidiError

MAX_MIDI_BYTES = 32 * 1024 * 1024  # far above any real score; guards memory on hostile input
# pretty_midi parses ~25,000 events a second: this many events (a long piano piece has
# ~50,000) keeps any read under ~10 s, where a 6 MB file of 10^6 notes would take minutes.
MAX_MIDI_EVENTS = 250_000
MAX_MIDI_SECONDS = 24 * 3600  # a slow tempo and long deltas can claim months in a few bytes


def check_midi_file(path) -> Path:
    """Cheap checks before any parser touches a file: it exists, is small enough, starts with MThd, its
    chunks fit in the file, and it holds at most MAX_MIDI_EVENTS events. Returns the path; raises MidiError."""
    path = Path(path)
    if path.is_dir():
        raise MidiError(f"{path}: is a folder, not a MIDI file; give one .mid file inside it")
    if not path.is_file():
        raise MidiError(f"{path}: no such MIDI file")
    size = path.stat().st_size
    if size > MAX_MIDI_BYTES:
        raise MidiError(f"{path}: {size} bytes is too large for a MIDI file (limit {MAX_MIDI_BYTES})")
    with open(path, "rb") as f:
        data = f.read(MAX_MIDI_BYTES + 1)
    if data[:4] != b"MThd":
        raise MidiError(f"{path}: not a MIDI file (no MThd header)")
    # a chunk that claims more bytes than the file holds is truncated or hostile: the parser would try to
    # allocate what it claims (a 4 GB length made mido ask for 4 GB)
    pos, chunks = 0, 1 + int.from_bytes(data[10:12], "big")  # the header, then the tracks it announces
    while pos + 8 <= len(data) and chunks:  # (bytes after the last track are ignored, as parsers do)
        chunks -= 1
        length = int.from_bytes(data[pos + 4:pos + 8], "big")
        if pos == 0 and length < 6 or pos + 8 + length > len(data):
            raise MidiError(f"{path}: truncated or corrupt MIDI file (a {data[pos:pos + 4]!r} chunk at byte {pos} claims "
                            f"{length:,} bytes, {max(len(data) - pos - 8, 0):,} remain)")
        pos += 8 + length
    if count_events(data, MAX_MIDI_EVENTS) > MAX_MIDI_EVENTS:
        raise MidiError(f"{path}: more than {MAX_MIDI_EVENTS:,} MIDI events, too many to read safely; "
                        f"split the file or give a shorter piece")
    return path


def count_events(data: bytes, limit: int) -> int:
    """Events (channel, meta and sysex) in the MTrk chunks of raw MIDI bytes, counting stops once past `limit`.

    A structural walk only (no messages are built), so it costs a small fraction of a full
    parse. Malformed data just ends the walk: the real parser reports it.
    """
    n, pos, size = 0, 0, len(data)
    while pos + 8 <= size:
        tag, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        start, end = pos + 8, min(pos + 8 + length, size)
        pos = start + length
        if tag != b"MTrk":
            continue
        i, status = start, None
        try:
            while i < end:
                while data[i] & 0x80:  # delta time
                    i += 1
                i += 1
                b = data[i]
                if b == 0xFF or b in (0xF0, 0xF7):
                    i += 2 if b == 0xFF else 1
                    length = 0
                    while data[i] & 0x80:
                        length = (length << 7) | (data[i] & 0x7F)
                        i += 1
                    length = (length << 7) | data[i]
                    i += 1 + length
                    n += 1
                    if n > limit:
                        return n
                    continue
                if b & 0x80:
                    status = b
                    i += 1
                elif status is None:
                    break
                i += 1 if status & 0xE0 == 0xC0 else 2  # program change / channel pressure: one data byte
                n += 1
                if n > limit:
                    return n
        except IndexError:
            pass
    return n


def read_midi(path):
    """A PrettyMIDI from a file, or a MidiError that names the file and says what is wrong."""
    import pretty_midi

    path = check_midi_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            midi = pretty_midi.PrettyMIDI(str(path))
            end = midi.get_end_time()
    except Exception as exc:  # mido/pretty_midi raise many types on corrupt data
        raise MidiError(f"{path}: corrupt MIDI file ({type(exc).__name__}: {exc})") from None
    if not end <= MAX_MIDI_SECONDS:
        raise MidiError(f"{path}: the piece lasts {end / 3600:.3g} hours; pieces longer than "
                        f"{MAX_MIDI_SECONDS // 3600} hours are refused (is the file corrupt?)")
    return midi


def check_output_path(path, example: str = "out.mid") -> Path:
    """Fail before any work when a file cannot be written at `path` (a folder, under a file, or something that
    is not a regular file such as /dev/null or a FIFO). A symlink is fine: the file is written through it."""
    from zoo.safeio import output_target

    path = Path(path)
    if not path.name or path.is_dir():
        raise MidiError(f"{path}: is a folder; give a file name such as {path / example}")
    for parent in path.parents:  # the nearest existing ancestor must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise MidiError(f"{path}: cannot write here, {parent} is a file, not a folder")
            break
    # a missing folder is refused, as cp and curl -o do: a typo in it must not scatter files into new folders
    if not path.parent.is_dir():
        raise MidiError(f"{path}: the folder {path.parent} does not exist; create it first "
                        f"(mkdir -p {path.parent}) or choose another path")
    output_target(path, MidiError)
    return path


MIDI_SUFFIXES = (".mid", ".midi")


def check_midi_name(path, flag: str = "-o") -> Path:
    """A MidiError unless `path` ends in .mid or .midi: MIDI data in x.wav or x.png is a file no program reads."""
    path = Path(path)
    if path.suffix.lower() not in MIDI_SUFFIXES:
        hint = {".wav": " (for audio add --render OUT.wav)", ".png": " (for a picture add --plot OUT.png)",
                ".pdf": " (for sheet music add --score OUT.pdf)", ".musicxml": " (for sheet music add --score OUT.musicxml)",
                ".svg": " (for a picture add --plot OUT.svg)"}.get(path.suffix.lower(), "")
        raise MidiError(f"{flag} {path}: MIDI output needs a .mid or .midi name{hint}")
    return path


def last_note_end(midi) -> float:
    """When the last note of a PrettyMIDI ends, in seconds (0.0 without notes). Unlike get_end_time(), trailing
    pedal, program and meta events do not count: this is where the music stops."""
    return max((note.end for inst in midi.instruments for note in inst.notes), default=0.0)


def write_midi(midi, path) -> Path:
    """Write atomically: a temp file in the same folder, then one rename. No half-written MIDI.

    Through a symlink, the link's target is replaced (the link stays); a device or FIFO is refused."""
    from zoo.safeio import atomic_write

    path = check_output_path(path)
    try:
        with atomic_write(path, MidiError) as tmp:
            midi.write(str(tmp))
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EEXIST, errno.EISDIR, errno.EINVAL, errno.EBUSY,
                         errno.ENAMETOOLONG, errno.ELOOP):
            raise MidiError(f"{path}: cannot write a file here ({exc.strerror})") from None
        raise  # full disk, permissions: the CLI reports those itself
    return path


def output_paths(path, n: int) -> list[Path]:
    """`out.mid` for one piece; `out-1.mid` … `out-N.mid` for several."""
    path = Path(path)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}-{i}{path.suffix or '.mid'}") for i in range(1, n + 1)]
