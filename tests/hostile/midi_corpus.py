"""Build a corpus of broken and hostile MIDI files (at test time, into a temp folder).

Every file is made from raw bytes here, so the corpus needs no data files in git and
documents exactly what is wrong with each one. `build(folder)` writes them all and
returns {file name: what it is}. Run as a script to write a corpus by hand:

    python -m tests.hostile.midi_corpus /tmp/bad-midi
"""

from __future__ import annotations

import os
import random
import struct
import sys
from pathlib import Path

# ---- raw MIDI building blocks ---------------------------------------------------------------


def vlq(n: int) -> bytes:
    """A MIDI variable-length quantity (up to 0x0FFFFFFF)."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def chunk(tag: bytes, data: bytes, length: int | None = None) -> bytes:
    """A chunk; `length` overrides the true length (to lie about it)."""
    return tag + struct.pack(">I", len(data) if length is None else length) + data


def header(fmt: int = 1, ntracks: int = 1, division: int = 480, length: int | None = None) -> bytes:
    return chunk(b"MThd", struct.pack(">HHH", fmt, ntracks, division), length)


def track(events: bytes, end: bool = True, length: int | None = None) -> bytes:
    return chunk(b"MTrk", events + (b"\x00\xff\x2f\x00" if end else b""), length)


def tempo(us_per_quarter: int, delta: int = 0) -> bytes:
    return vlq(delta) + b"\xff\x51\x03" + us_per_quarter.to_bytes(3, "big")


def on(pitch: int, vel: int = 80, delta: int = 0, ch: int = 0) -> bytes:
    return vlq(delta) + bytes([0x90 | ch, pitch, vel])


def off(pitch: int, delta: int = 0, ch: int = 0) -> bytes:
    return vlq(delta) + bytes([0x80 | ch, pitch, 0])


def name(text: str, delta: int = 0) -> bytes:
    data = text.encode()
    return vlq(delta) + b"\xff\x03" + vlq(len(data)) + data


def melody(n: int = 8, ch: int = 0, base: int = 60, step: int = 240) -> bytes:
    out = b""
    for i in range(n):
        out += on(base + i % 12, 80, 0, ch) + off(base + i % 12, step, ch)
    return out


def midi(*tracks: bytes, fmt: int | None = None, division: int = 480) -> bytes:
    fmt = (0 if len(tracks) == 1 else 1) if fmt is None else fmt
    return header(fmt, len(tracks), division) + b"".join(tracks)


GOOD = midi(track(tempo(500000) + name("Soprano") + melody(16)))
FOUR_VOICES = midi(*[track((tempo(500000) if v == 0 else b"") + name(n) + melody(16, base=72 - 7 * v, step=480))
                     for v, n in enumerate(("Soprano", "Alto", "Tenor", "Bass"))])


def _million_notes() -> bytes:
    # running status keeps it small: one note = on (delta, pitch, vel) + on-with-velocity-0
    body = bytearray(b"\x00\x90\x3c\x50")
    unit = bytes([1, 0x3C, 0x00, 0, 0x3C, 0x50])  # off (vel 0) after 1 tick, next on at once
    body += unit * 999_999
    body += bytes([1, 0x3C, 0x00])
    return midi(track(tempo(500000) + bytes(body)))


def _many_tempos() -> bytes:
    return midi(track(b"".join(tempo(400000 + (i % 7) * 1000, 1) for i in range(30_000)) + melody(4)))


def cases() -> dict[str, tuple[str, bytes]]:
    """file name -> (what it is, bytes). At least 40 cases; names are what the tests report."""
    rnd = random.Random(8)
    good_cut = GOOD[: len(GOOD) - 20]
    c: dict[str, tuple[str, bytes]] = {}

    def add(fname, what, data):
        c[fname] = (what, data)

    # not MIDI at all
    add("empty.mid", "an empty file", b"")
    add("random-bytes.mid", "4 KiB of random bytes", bytes(rnd.getrandbits(8) for _ in range(4096)))
    add("text.mid", "a text file renamed .mid", b"This is not a MIDI file.\nJust text.\n" * 20)
    add("png.mid", "a PNG signature renamed .mid", b"\x89PNG\r\n\x1a\n" + bytes(100))
    add("random-after-header.mid", "a valid MThd, then random bytes",
        header() + b"MTrk" + struct.pack(">I", 2000) + bytes(rnd.getrandbits(8) for _ in range(2000)))
    # header problems
    add("header-only.mid", "MThd chunk announcing one track, then nothing", header())
    add("header-cut.mid", "MThd cut inside its 6 data bytes", b"MThd\x00\x00\x00\x06\x00\x01")
    add("header-length-2.mid", "MThd chunk length 2 instead of 6", header(length=2) + track(melody(4)))
    add("header-length-4gb.mid", "MThd chunk claiming 4 GB", header(length=0xFFFFFFFF) + track(melody(4)))
    add("zero-tracks.mid", "format 1 with zero tracks", header(1, 0))
    add("ntracks-lies.mid", "header says 9 tracks, one is present", header(1, 9) + track(melody(4)))
    add("type-2.mid", "format 2 (independent sequences)", midi(track(melody(4)), track(melody(4, base=48)), fmt=2))
    add("format-7.mid", "an undefined format number 7", midi(track(melody(4)), fmt=7))
    add("division-zero.mid", "0 ticks per quarter note", midi(track(tempo(500000) + melody(4)), division=0))
    add("division-smpte.mid", "SMPTE time division (-30 fps, 80 ticks)", midi(track(melody(4)), division=0xE250))
    # track chunk problems
    add("truncated-track.mid", "a valid file cut 20 bytes before its end", good_cut)
    add("truncated-vlq.mid", "a track ending inside a delta-time", header() + track(melody(2) + b"\x81\x80", end=False))
    add("track-length-long.mid", "MTrk length 100 bytes longer than the data",
        header() + track(melody(4), length=len(melody(4)) + 4 + 100))
    add("track-length-short.mid", "MTrk length shorter than its events",
        header() + track(melody(8), length=10))
    add("track-length-4gb.mid", "MTrk chunk claiming 4 GB", header() + track(melody(4), length=0xFFFFFFFF))
    add("no-end-of-track.mid", "a track without the end-of-track event", header() + track(melody(4), end=False))
    add("unknown-chunk.mid", "an unknown chunk between header and track",
        header() + chunk(b"XFIH", bytes(32)) + track(melody(4)))
    add("meta-length-huge.mid", "a meta event claiming 256 MB",
        header() + track(b"\x00\xff\x01" + vlq(0x0FFFFFFF) + b"abc", end=False))
    add("sysex-length-huge.mid", "a sysex event claiming 256 MB",
        header() + track(b"\x00\xf0" + vlq(0x0FFFFFFF) + b"\x01\x02", end=False))
    add("data-byte-high-bit.mid", "a note-on whose pitch byte has the high bit set",
        header() + track(b"\x00\x90\xc8\x40" + melody(2)))
    # running status
    add("running-status-first.mid", "data bytes with no status byte before them",
        header() + track(b"\x00\x3c\x40\x10\x3c\x00"))
    add("running-status-after-meta.mid", "running status continuing after a meta event",
        header() + track(on(60) + name("x") + b"\x10\x3c\x00"))
    add("running-status-after-sysex.mid", "running status continuing after a sysex",
        header() + track(on(60) + b"\x00\xf0\x02\x7e\xf7" + b"\x10\x3c\x00"))
    add("running-status-valid.mid", "legal running status, 400 notes",
        header() + track(b"\x00\x90\x3c\x50" + bytes([10, 0x3C, 0, 0, 0x3E, 0x50, 10, 0x3E, 0, 0, 0x3C, 0x50]) * 200))
    # odd notes
    add("zero-length-notes.mid", "notes whose off is at the same tick as their on",
        midi(track(b"".join(on(60 + i, delta=10) + off(60 + i) for i in range(20)))))
    add("negative-length-notes.mid", "note-offs before their note-ons",
        midi(track(b"".join(off(60 + i, delta=10) + on(60 + i, delta=5) for i in range(20)))))
    add("note-on-no-off.mid", "note-ons never switched off", midi(track(b"".join(on(40 + i, delta=100) for i in range(40)))))
    add("same-pitch-twice.mid", "a pitch struck again while sounding",
        midi(track(on(60) + on(60, delta=100) + off(60, delta=100) + off(60, delta=100))))
    add("pitch-127-vel-127.mid", "extreme pitches and velocities",
        midi(track(on(0, 1) + on(127, 127) + off(0, 480) + off(127))))
    # tempo
    add("tempo-zero.mid", "a set-tempo of 0 microseconds per quarter", midi(track(tempo(0) + melody(4))))
    add("tempo-1us.mid", "1 microsecond per quarter note", midi(track(tempo(1) + melody(4))))
    add("tempo-slowest.mid", "16.7 s per quarter and a maximal delta: decades long",
        midi(track(tempo(0xFFFFFF) + on(60) + off(60, 0x0FFFFFFF))))
    add("tempo-slowest-division-1.mid", "16.7 s per quarter, 1 tick per quarter: two notes 8 years apart",
        midi(track(tempo(0xFFFFFF) + on(60) + off(60, 1) + on(62, delta=0x0FFFFFF) + off(62, 1)), division=1))
    add("ticks-near-limit-4-voices.mid", "four voices, 1 tick per quarter, last note at tick 9,999,990",
        midi(*[track(name(n) + on(72 - 7 * v) + off(72 - 7 * v, 1) + on(60 - v, delta=9_999_990) + off(60 - v, 1))
               for v, n in enumerate(("Soprano", "Alto", "Tenor", "Bass"))], division=1))
    add("tempo-short-meta.mid", "a set-tempo meta event with 1 data byte",
        midi(track(b"\x00\xff\x51\x01\x07" + melody(4))))
    add("many-tempos.mid", "30,000 tempo changes", _many_tempos())
    # size and length
    add("million-notes.mid", "10^6 notes (running status)", _million_notes())
    add("ten-hours.mid", "two notes ten hours apart (120 bpm)",
        midi(track(tempo(500000) + on(60) + off(60, 480) + on(64, delta=480 * 2 * 3600 * 10) + off(64, 480))))
    add("max-delta-many.mid", "1,000 notes each 0x0FFFFFFF ticks apart",
        midi(track(tempo(500000) + b"".join(on(60, delta=0x0FFFFFFF) + off(60, 1) for _ in range(1000)))))
    add("thousand-empty-tracks.mid", "1,000 empty tracks", midi(*[track(b"") for _ in range(1000)]))
    # no pitched music
    add("drums-only.mid", "notes on channel 10 (drums) only", midi(track(melody(16, ch=9, base=36))))
    add("no-notes.mid", "meta events only", midi(track(tempo(500000) + name("silence"))))
    add("pedal-only.mid", "sustain pedal events, no notes",
        midi(track(b"\x00\xb0\x40\x7f" + b"\x83\x60\xb0\x40\x00")))
    # valid controls (must give a result) and a name that is not UTF-8
    add("valid-melody.mid", "a valid one-track melody (control)", GOOD)
    add("valid-four-voices.mid", "a valid four-voice piece (control)", FOUR_VOICES)
    return c


NON_UTF8_NAME = b"bad-name-\xff\xfe.mid"


def build(folder) -> dict[str, str]:
    """Write every case into folder; returns {file name (str, surrogate-escaped): description}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for fname, (what, data) in cases().items():
        (folder / fname).write_bytes(data)
        out[fname] = what
    # a valid file whose name is not UTF-8 (bytes path: works on any filesystem encoding)
    raw = os.path.join(os.fsencode(folder), NON_UTF8_NAME)
    with open(raw, "wb") as f:
        f.write(FOUR_VOICES)
    out[os.fsdecode(NON_UTF8_NAME)] = "a valid four-voice file whose name is not UTF-8"
    return out


if __name__ == "__main__":
    for n, what in build(sys.argv[1] if len(sys.argv) > 1 else "bad-midi").items():
        print(f"{n!r:40} {what}")
