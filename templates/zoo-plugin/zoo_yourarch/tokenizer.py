"""MIDI <-> tokens for a single melody line on a fixed time grid.

One token per grid step: a pitch 0-127 starts a note on that step, HOLD lengthens
the note before it, REST is silence. Chords keep their top note (the "skyline").
"""

from __future__ import annotations

import pretty_midi
import torch

from zoo.errors import ConfigError
from zoo.tokenizer import Tokenizer

HOLD = 128
REST = 129
VOCAB_SIZE = 130


class MelodyTokenizer(Tokenizer):
    name = "yourarch-melody"       # the name plugin.py registers; saved in tokenizer.json
    vocab_size = VOCAB_SIZE

    def __init__(self, step_seconds: float = 0.25, velocity: int = 80, program: int = 0):
        if not step_seconds > 0:
            raise ConfigError(f"step_seconds must be positive, got {step_seconds}")
        if not (1 <= velocity <= 127 and 0 <= program <= 127):
            raise ConfigError("velocity must be 1-127 and program 0-127")
        self.step_seconds = float(step_seconds)
        self.velocity = int(velocity)
        self.program = int(program)

    def to_dict(self) -> dict:
        """The constructor's arguments, as JSON: written to tokenizer.json."""
        return {"step_seconds": self.step_seconds, "velocity": self.velocity, "program": self.program}

    def encode(self, midi: pretty_midi.PrettyMIDI) -> torch.Tensor:
        """The top line of every non-drum instrument as a 1-D LongTensor (empty for silence)."""
        notes = []  # (pitch, first step, step after the last), every note at least one step long
        for note in (n for inst in midi.instruments if not inst.is_drum for n in inst.notes):
            start = round(note.start / self.step_seconds)
            notes.append((note.pitch, start, max(start + 1, round(note.end / self.step_seconds))))
        tokens = torch.full((max((end for _, _, end in notes), default=0),), REST, dtype=torch.long)
        for pitch, start, end in sorted(notes):  # higher pitches overwrite lower ones
            tokens[start] = pitch
            tokens[start + 1:end] = HOLD
        return tokens

    def decode(self, tokens) -> pretty_midi.PrettyMIDI:
        """Tokens -> one-instrument PrettyMIDI. Never raises: unknown tokens are rests."""
        midi = pretty_midi.PrettyMIDI()
        inst = pretty_midi.Instrument(program=self.program, name="melody")
        note = None
        for i, token in enumerate(torch.as_tensor(tokens).reshape(-1).tolist()):
            token = int(token)
            if token == HOLD and note is not None:
                note.end = (i + 1) * self.step_seconds
            elif 0 <= token < 128:
                note = pretty_midi.Note(self.velocity, token, i * self.step_seconds, (i + 1) * self.step_seconds)
                inst.notes.append(note)
            else:  # REST, a HOLD after silence, or anything out of range
                note = None
        midi.instruments.append(inst)
        return midi
