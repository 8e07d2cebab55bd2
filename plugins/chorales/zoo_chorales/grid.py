"""Four voices on a 16th-note grid: the *pitch grid*, an int array (voices, T) of MIDI numbers, -1 = rest.

Every chorale plugin reads and writes MIDI through these functions, so that all of them hear a file alike.
"""

from __future__ import annotations

import numpy as np

from zoo.errors import MidiError

VOICES = ("Soprano", "Alto", "Tenor", "Bass")
REST = -1
MAX_STEPS = 100_000  # ~3.5 h of 16ths at 120 bpm; a hostile file (1 tick per quarter) claimed 4e7 steps: 54 GB of roll


def voices_by_name(instruments, n_tracks: int = 4, names=VOICES):
    """The pitched instruments named after the voices (Soprano/Alto/Tenor/Bass, any case), one each, or None."""
    if len(names) != n_tracks:
        return None
    pitched = [i for i in instruments if not i.is_drum]
    found = []
    for voice in names:
        match = [i for i in pitched if voice.lower() in (i.name or "").lower()]
        if len(match) != 1:
            return None
        found.append(match[0])
    return found


def select_voices(instruments, n_tracks: int = 4, names=VOICES):
    """The instruments of the voices: by name (Soprano/Alto/Tenor/Bass, any case) or else the first n_tracks, in order."""
    found = voices_by_name(instruments, n_tracks, names)
    if found is not None:
        return found
    pitched = [i for i in instruments if not i.is_drum]
    if len(pitched) < n_tracks:
        raise MidiError(f"the MIDI file has {len(pitched)} pitched instrument(s); a {n_tracks}-voice piece needs {n_tracks} "
                        f"(name them {', '.join(names)} or give them in that order)")
    return pitched[:n_tracks]


def notes_to_grid(voices: list[list[tuple[int, int, int]]], length: int | None = None, n_pitches: int = 128) -> np.ndarray:
    """Per-voice notes (pitch, start_step, end_step) -> pitch grid (voices, T); the top note wins inside a voice."""
    if length is None:
        length = max((end for notes in voices for _, _, end in notes), default=0)
    grid = np.full((len(voices), length), REST, dtype=np.int16)
    for v, notes in enumerate(voices):
        for pitch, start, end in notes:
            if not 0 <= pitch < n_pitches:
                continue  # outside the roll's pitch range: dropped (documented)
            start, end = max(start, 0), min(max(end, start + 1), length)
            seg = grid[v, start:end]
            np.maximum(seg, pitch, out=seg)
    return grid


def grid_to_notes(row) -> list[tuple[int, int, int]]:
    """One voice's pitch grid -> notes (pitch, start_step, end_step); a pitch repeated on consecutive steps is one held note."""
    notes, start = [], 0
    row = np.asarray(row)
    for t in range(1, len(row) + 1):
        if t == len(row) or row[t] != row[start]:
            if row[start] != REST:
                notes.append((int(row[start]), start, t))
            start = t
    return notes



def midi_to_grid(midi, n_tracks: int = 4, steps_per_bar: int = 16, n_pitches: int = 128,
                 voice_names=VOICES) -> np.ndarray:
    """PrettyMIDI -> pitch grid (tracks, T) on a grid of steps_per_bar steps per 4/4 bar (tempo-aware), from time 0."""
    voices = select_voices(midi.instruments, n_tracks, voice_names)
    ticks_per_step = midi.resolution * 4 / steps_per_bar
    notes = [[(n.pitch, round(midi.time_to_tick(n.start) / ticks_per_step), round(midi.time_to_tick(n.end) / ticks_per_step))
              for n in inst.notes] for inst in voices]
    length = max((end for voice in notes for _, _, end in voice), default=0)
    if length > MAX_STEPS:
        raise MidiError(f"the piece is {length // steps_per_bar:,} bars long; a chorale grid takes "
                        f"at most {MAX_STEPS // steps_per_bar:,} bars (is the MIDI file corrupt?)")
    return notes_to_grid(notes, n_pitches=n_pitches)
