"""Piano roll <-> MIDI for four-voice music.

A roll is a float tensor (pieces, tracks, bars, steps, pitches) of +1/-1 values, at most one +1
per voice and step (all -1 is a rest); pitch index = MIDI number. Inside, every conversion goes
through a *pitch grid*: an int array (tracks, time steps) of MIDI numbers with -1 for a rest.

Two of the book's limits are lifted: rests are expressible (a step whose maximum is below
`threshold` decodes to silence), and a pitch repeated on consecutive steps decodes to one held
note (the book re-struck it every 4 steps). The format cannot tell a held note from a
re-struck one, so encoding merges repeated notes; that is the one lossy step.
The book's voice bug is fixed: it reshaped (tracks, bars, steps) to (32, 4) without a
transpose, so every output part played S, A, T and B in turn, four times too fast.
"""

from __future__ import annotations

import numpy as np
import torch

from zoo.errors import MidiError
from zoo.tokenizer import Tokenizer

from zoo_chorales.grid import MAX_STEPS, REST, VOICES, grid_to_notes, midi_to_grid, notes_to_grid, select_voices  # noqa: F401



class PianoRollTokenizer(Tokenizer):
    """Four-voice piano rolls (pieces, tracks, bars, steps, pitches) of +1/-1 <-> PrettyMIDI."""

    name = "pianoroll"
    vocab_size = None

    def __init__(self, n_tracks: int = 4, n_bars: int = 2, steps_per_bar: int = 16, n_pitches: int = 84,
                 tempo: float = 66.0, threshold: float = 0.0, velocity: int = 80, program: int = 19,
                 voice_names: list | tuple = VOICES):
        from zoo.errors import ConfigError

        # tokenizer.json is input from strangers: every value typed and in range before any use (velocity 200,
        # steps_per_bar 0, tempo 1e-300 or a threshold "x" failed later with tracebacks)
        for name, value, lo, hi in (("n_tracks", n_tracks, 1, 16), ("n_bars", n_bars, 1, 64),
                                    ("steps_per_bar", steps_per_bar, 4, 96), ("n_pitches", n_pitches, 1, 128),
                                    ("velocity", velocity, 1, 127), ("program", program, 0, 127)):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"pianoroll {name} must be a whole number from {lo} to {hi}, got {value!r}")
        for name, value, lo, hi in (("tempo", tempo, 1.0, 1000.0), ("threshold", threshold, -1e6, 1e6)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ConfigError(f"pianoroll {name} must be a number from {lo:g} to {hi:g}, got {value!r}")
        if not isinstance(voice_names, (list, tuple)) or not all(isinstance(v, str) and v.isprintable()
                                                                 and len(v) <= 64 for v in voice_names):
            raise ConfigError(f"pianoroll voice_names must be a list of short names, got {str(voice_names)[:80]}")
        if steps_per_bar % 4:
            raise ConfigError(f"pianoroll steps_per_bar must be a multiple of 4 (4/4 bars), got {steps_per_bar}")
        if not (0 < tempo <= 1000):
            raise ConfigError(f"pianoroll tempo must be in (0, 1000] bpm, got {tempo}")
        if not (1 <= n_pitches <= 128):
            raise ConfigError(f"pianoroll n_pitches must be in 1..128, got {n_pitches}")
        if len(voice_names) != n_tracks:
            raise ConfigError(f"pianoroll voice_names needs {n_tracks} names, got {len(voice_names)}")
        self.n_tracks, self.n_bars, self.steps_per_bar, self.n_pitches = n_tracks, n_bars, steps_per_bar, n_pitches
        self.tempo, self.threshold, self.velocity, self.program = float(tempo), float(threshold), int(velocity), int(program)
        self.voice_names = tuple(voice_names)

    def to_dict(self) -> dict:
        return {"n_tracks": self.n_tracks, "n_bars": self.n_bars, "steps_per_bar": self.steps_per_bar,
                "n_pitches": self.n_pitches, "tempo": self.tempo, "threshold": self.threshold,
                "velocity": self.velocity, "program": self.program, "voice_names": list(self.voice_names)}

    @property
    def piece_steps(self) -> int:
        """Time steps in one piece (n_bars bars)."""
        return self.n_bars * self.steps_per_bar

    # --- pitch grids <-> rolls -------------------------------------------------------------------

    def grid_to_roll(self, grid: np.ndarray) -> torch.Tensor:
        """Pitch grid (tracks, T) -> roll (ceil(T / piece), tracks, bars, steps, pitches), padded with rests."""
        grid = np.asarray(grid)
        tracks, length = grid.shape
        n = max(1, -(-length // self.piece_steps))
        padded = np.full((tracks, n * self.piece_steps), REST, dtype=np.int64)
        padded[:, :length] = grid
        padded = np.where((padded >= 0) & (padded < self.n_pitches), padded, REST)
        roll = -torch.ones(tracks, n * self.piece_steps, self.n_pitches + 1)
        idx = torch.from_numpy(padded).clamp(min=-1) % (self.n_pitches + 1)   # rest -> the extra last column
        roll.scatter_(2, idx.unsqueeze(-1), 1.0)
        roll = roll[..., : self.n_pitches]
        # (tracks, pieces*bars*steps, P) -> (pieces, tracks, bars, steps, P): time splits into pieces, then voices
        return roll.view(tracks, n, self.n_bars, self.steps_per_bar, self.n_pitches).permute(1, 0, 2, 3, 4).contiguous()

    def roll_to_grid(self, roll: torch.Tensor) -> np.ndarray:
        """Roll (pieces, tracks, bars, steps, P) or one piece -> pitch grid (tracks, pieces*bars*steps), pieces in order."""
        roll = torch.as_tensor(roll).detach().float().cpu()
        if roll.dim() == 4:
            roll = roll.unsqueeze(0)
        if roll.dim() != 5 or roll.shape[1] != self.n_tracks or roll.shape[-1] != self.n_pitches:
            raise MidiError(f"a piano roll must have the shape (pieces, {self.n_tracks}, bars, steps, {self.n_pitches}), "
                            f"got {tuple(roll.shape)}")
        roll = torch.nan_to_num(roll, nan=-1.0)
        # the fix for the book's voice bug: move voices first *before* flattening time
        flat = roll.permute(1, 0, 2, 3, 4).reshape(self.n_tracks, -1, self.n_pitches)
        best, pitch = flat.max(dim=-1)
        return torch.where(best >= self.threshold, pitch, torch.full_like(pitch, REST)).numpy().astype(np.int16)

    # --- MIDI <-> pitch grids ----------------------------------------------------------------------

    def midi_to_grid(self, midi) -> np.ndarray:
        """PrettyMIDI -> pitch grid (tracks, T) on a 16th grid (tempo-aware), starting at time 0."""
        return midi_to_grid(midi, self.n_tracks, self.steps_per_bar, self.n_pitches, self.voice_names)

    def grid_to_midi(self, grid: np.ndarray):
        """Pitch grid (tracks, T) -> PrettyMIDI: one named instrument per voice, held notes, rests, tempo."""
        import pretty_midi

        midi = pretty_midi.PrettyMIDI(initial_tempo=self.tempo)
        midi.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0.0))
        step = 60.0 / self.tempo * 4 / self.steps_per_bar
        for v, row in enumerate(np.asarray(grid)):
            inst = pretty_midi.Instrument(program=self.program, name=self.voice_names[v] if v < len(self.voice_names) else f"Voice {v + 1}")
            for pitch, start, end in grid_to_notes(row):
                inst.notes.append(pretty_midi.Note(velocity=self.velocity, pitch=pitch, start=start * step, end=end * step))
            midi.instruments.append(inst)
        return midi

    # --- the Tokenizer contract ----------------------------------------------------------------

    def encode(self, midi) -> torch.Tensor:
        """PrettyMIDI -> roll (pieces, tracks, bars, steps, pitches): consecutive n_bars chunks from time 0."""
        return self.grid_to_roll(self.midi_to_grid(midi))

    def decode(self, tokens: torch.Tensor):
        """Roll (pieces, ...) or one piece -> one PrettyMIDI, pieces one after another."""
        return self.grid_to_midi(self.roll_to_grid(tokens))
