"""Four voices on a 16th-note grid <-> MIDI.

A *pitch grid* is an int array (voices, T) of MIDI numbers with -1 for a rest, one column per 16th.
Writing keeps a note held while the grid repeats its pitch, so a re-struck note merges with the one
before: the one lossy step of the format (Coconet's paper has the same limit).
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import ConfigError
from zoo.tokenizer import Tokenizer
from zoo_chorales.grid import grid_to_notes
from zoo_chorales.grid import VOICES, notes_to_grid, select_voices


class SATBGridTokenizer(Tokenizer):
    """PrettyMIDI with four voices <-> pitch grid tensor (voices, T)."""

    name = "satb-grid"
    vocab_size = None

    def __init__(self, steps_per_beat: int = 4, tempo: float = 66.0, velocity: int = 80, program: int = 19,
                 voice_names: list | tuple = VOICES):
        for name, value, lo, hi in (("steps_per_beat", steps_per_beat, 1, 24), ("velocity", velocity, 1, 127),
                                    ("program", program, 0, 127)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"satb-grid {name} must be a whole number from {lo} to {hi}, got {value!r}")
        if isinstance(tempo, bool) or not isinstance(tempo, (int, float)) or not 1 <= tempo <= 1000:
            raise ConfigError(f"satb-grid tempo must be a number of bpm from 1 to 1000, got {tempo!r}")
        if not isinstance(voice_names, (list, tuple)) or not 1 <= len(voice_names) <= 16 or not all(
                isinstance(v, str) and v.isprintable() and len(v) <= 64 for v in voice_names):
            raise ConfigError(f"satb-grid voice_names must be a list of 1 to 16 short names, got {str(voice_names)[:80]}")
        self.steps_per_beat, self.tempo, self.velocity, self.program = steps_per_beat, float(tempo), velocity, program
        self.voice_names = tuple(voice_names)

    def to_dict(self) -> dict:
        return {"steps_per_beat": self.steps_per_beat, "tempo": self.tempo, "velocity": self.velocity,
                "program": self.program, "voice_names": list(self.voice_names)}

    def encode(self, midi) -> torch.Tensor:
        """A MIDI file with (at least) the four voices -> pitch grid (voices, T) from time 0."""
        voices = select_voices(midi.instruments, len(self.voice_names), self.voice_names)
        per_step = midi.resolution / self.steps_per_beat
        notes = [[(n.pitch, round(midi.time_to_tick(n.start) / per_step), round(midi.time_to_tick(n.end) / per_step))
                  for n in inst.notes] for inst in voices]
        return torch.from_numpy(notes_to_grid(notes).astype(np.int64))

    def decode(self, grid, tempo: float | None = None, time_signature: tuple[int, int] = (4, 4),
               notes: dict | None = None):
        """Pitch grid (voices, T) -> PrettyMIDI: one named track per voice in order, held notes, rests.
        `notes` {voice: [(pitch, start, end)] in steps} writes those voices note for note instead (a repeated
        note stays two notes, which the grid alone cannot say)."""
        import pretty_midi

        grid = np.asarray(torch.as_tensor(grid).detach().cpu(), dtype=np.int64)
        if grid.ndim != 2:
            grid = grid.reshape(len(self.voice_names), -1)
        grid = np.where((grid >= 0) & (grid <= 127), grid, -1)   # anything else is silence, never a crash
        tempo = self.tempo if tempo is None else float(tempo)
        midi = pretty_midi.PrettyMIDI(initial_tempo=tempo)
        midi.time_signature_changes.append(pretty_midi.TimeSignature(*time_signature, 0.0))
        step = 60.0 / tempo / self.steps_per_beat
        for v, row in enumerate(grid):
            name = self.voice_names[v] if v < len(self.voice_names) else f"Voice {v + 1}"
            inst = pretty_midi.Instrument(program=self.program, name=name)
            for pitch, start, end in (notes[v] if notes and v in notes else grid_to_notes(row)):
                inst.notes.append(pretty_midi.Note(velocity=self.velocity, pitch=int(pitch), start=start * step,
                                                   end=end * step))
            midi.instruments.append(inst)
        return midi
