"""A user's MIDI file -> the voices Coconet keeps: checked, quantised to 16ths, placed in SATB ranges.

Refused with one line (MidiError), before the model runs: no notes, more than four pitched tracks, a
chord inside one voice, a rhythm off the 16th grid, a piece longer than `max_steps`, a time signature
whose bar is not a whole number of 16ths, or voices that no octave shift brings into their ranges.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from zoo.errors import MidiError

VOICE_NAMES = ("soprano", "alto", "tenor", "bass")
# the lowest and highest MIDI pitch of each voice in the training chorales (musegan-bach's train split)
VOICE_RANGES = ((60, 81), (54, 74), (48, 69), (36, 64))
OFF_GRID = 0.25   # a note edge may lie at most a quarter of a 16th (a 64th) off the grid before it is refused


@dataclass
class Prompt:
    grid: np.ndarray            # (4, T) MIDI pitches, -1 for a rest, the given voices only (others all -1)
    notes: dict                 # voice -> [(pitch, start, end)] in 16ths: the given notes, each as it was struck
    given: tuple[bool, ...]     # which voices the file holds
    shift: int                  # semitones added to fit the voices' ranges (a whole number of octaves)
    tempo: float                # the file's first tempo, bpm
    time_signature: tuple[int, int]
    steps_per_bar: int


def _voice_of_tracks(tracks) -> list[int]:
    """Which voice each track is: by name (soprano/alto/tenor/bass, or S/A/T/B), else the voices whose range
    centres lie closest to the tracks' median pitches, in top-to-bottom order."""
    names = [(t.name or "").strip().lower() for t in tracks]
    by_name = []
    for name in names:
        match = [v for v, full in enumerate(VOICE_NAMES) if name in (full, full[0])]
        by_name.append(match[0] if match else None)
    if None not in by_name and len(set(by_name)) == len(by_name):
        return by_name
    medians = [float(np.median([n.pitch for n in t.notes])) for t in tracks]
    order = sorted(range(len(tracks)), key=lambda i: -medians[i])
    centres = [(lo + hi) / 2 for lo, hi in VOICE_RANGES]
    best = min(itertools.combinations(range(4), len(tracks)),
               key=lambda voices: sum(abs(medians[i] - centres[v]) for i, v in zip(order, voices)))
    out = [0] * len(tracks)
    for i, v in zip(order, best):
        out[i] = v
    return out


def _steps(midi, tick: int, per_step: float, what: str) -> int:
    exact = tick / per_step
    step = round(exact)
    if abs(exact - step) > OFF_GRID:
        seconds = midi.tick_to_time(tick)
        raise MidiError(f"{what} at {seconds:.2f} s falls between 16th notes (triplets or 32nds?); Coconet writes on "
                        f"a 16th-note grid: quantise the melody to 16ths first")
    return step


def read_prompt(midi, max_steps: int) -> Prompt:
    """Check and place the voices of `midi` (a PrettyMIDI)."""
    tracks = [t for t in midi.instruments if not t.is_drum and t.notes]
    if not tracks:
        raise MidiError("the prompt has no notes; give a melody (one track) or some of the four voices")
    if len(tracks) > 4:
        raise MidiError(f"the prompt has {len(tracks)} tracks with notes; give one melody or at most the four "
                        f"voices soprano, alto, tenor and bass")
    signatures = midi.time_signature_changes
    num, den = (signatures[0].numerator, signatures[0].denominator) if signatures else (4, 4)
    if len({(s.numerator, s.denominator) for s in signatures}) > 1:
        raise MidiError("the prompt changes time signature; Coconet needs one meter throughout")
    if 16 % den or not 1 <= num <= 32:
        raise MidiError(f"the prompt's time signature {num}/{den} has no whole number of 16ths per bar")
    steps_per_bar = num * 16 // den
    per_step = midi.resolution / 4
    voices = _voice_of_tracks(tracks)
    notes = {v: [] for v in voices}
    for track, v in zip(tracks, voices):
        spans = sorted((_steps(midi, midi.time_to_tick(n.start), per_step, f"a {VOICE_NAMES[v]} note"),
                        _steps(midi, midi.time_to_tick(n.end), per_step, f"the end of a {VOICE_NAMES[v]} note"),
                        n.pitch) for n in track.notes)
        for (s0, e0, p0), (s1, _, _) in zip(spans, spans[1:]):
            if s1 < e0:
                raise MidiError(f"the {VOICE_NAMES[v]} plays two notes at once near {midi.tick_to_time(int(s1 * per_step)):.2f} s; "
                                f"each voice must be one line (put chords' other notes in other tracks)")
        notes[v] = [(p, s, max(e, s + 1)) for s, e, p in spans]
    length = max(e for spans in notes.values() for _, _, e in spans)
    length = -(-length // steps_per_bar) * steps_per_bar   # whole bars
    if length > max_steps:
        raise MidiError(f"the prompt is {length // steps_per_bar} bars long; Coconet writes at most "
                        f"{max_steps // steps_per_bar} bars at a time: cut it into shorter phrases")
    grid = np.full((4, length), -1, dtype=np.int64)
    for v, spans in notes.items():
        for p, s, e in spans:
            grid[v, s:e] = p
    shift = _octave_shift(grid, sorted(notes))
    tempo = float(midi.get_tempo_changes()[1][0]) if len(midi.get_tempo_changes()[1]) else 120.0
    return Prompt(grid, notes, tuple(v in notes for v in range(4)), shift, tempo, (num, den), steps_per_bar)


def _octave_shift(grid: np.ndarray, voices: list[int]) -> int:
    """The smallest octave shift that puts every given voice inside its range, or a MidiError."""
    for shift in sorted(range(-36, 37, 12), key=abs):
        if all(VOICE_RANGES[v][0] <= grid[v][grid[v] >= 0].min() + shift and
               grid[v][grid[v] >= 0].max() + shift <= VOICE_RANGES[v][1] for v in voices):
            return shift
    lo_hi = ", ".join(f"{VOICE_NAMES[v]} {grid[v][grid[v] >= 0].min()}..{grid[v][grid[v] >= 0].max()} "
                      f"(range {VOICE_RANGES[v][0]}..{VOICE_RANGES[v][1]})" for v in voices)
    raise MidiError(f"the prompt's voices do not fit the chorale ranges in any octave: {lo_hi} (MIDI pitches); "
                    f"a melody must span at most {VOICE_RANGES[0][1] - VOICE_RANGES[0][0]} semitones")


def parse_voices(text: str) -> tuple[int, ...]:
    """'alto,tenor' or 'a,t' -> voice indices; a MidiError-free ConfigError for anything else."""
    from zoo.errors import ConfigError

    out = []
    for part in (p.strip().lower() for p in str(text).split(",")):
        match = [v for v, full in enumerate(VOICE_NAMES) if part in (full, full[0])]
        if not match:
            raise ConfigError(f"--rewrite takes voice names separated by commas (soprano,alto,tenor,bass or s,a,t,b), "
                              f"got {part!r}")
        out.append(match[0])
    return tuple(sorted(set(out)))
