"""What the three outputs share: the error they raise, pitch names, and reading a MIDI path."""

from __future__ import annotations

import os

from zoo.errors import ZooError

PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class RenderError(ZooError):
    """A picture, audio file or score cannot be made (a missing program, soundfont or bad option)."""


def pitch_name(pitch: int) -> str:
    """MIDI number -> scientific pitch name (60 -> C4)."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def as_midi(midi):
    """A PrettyMIDI as is; a path read with zoo's safe MIDI reader."""
    from zoo.midi import read_midi

    return read_midi(midi) if isinstance(midi, (str, os.PathLike)) else midi
