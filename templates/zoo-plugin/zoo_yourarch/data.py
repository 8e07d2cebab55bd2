"""The data: windows of (context + 1) tokens cut from melodies.

With no --data, a small embedded corpus (scales and arpeggios in every key) so
that `zoo train yourarch` works out of the box. With --data DIR, every .mid/.midi
file under DIR, split into train/valid/test by a hash of its path.
"""

from __future__ import annotations

import torch

from zoo.data import SPLITS, midi_files, split_of
from zoo.errors import DataError
from zoo.midi import read_midi
from zoo_yourarch.tokenizer import HOLD, REST
_SCALE = (0, 2, 4, 5, 7, 9, 11, 12)
_ARPEGGIO = (0, 4, 7, 12, 7, 4, 0)


def embedded_melodies(split: str) -> list[list[int]]:
    """Scales and arpeggios, each note held for two steps; keys 0-9 train, 10 valid, 11 test."""
    keys = {"train": range(10), "valid": [10], "test": [11]}[split]
    melodies = []
    for key in keys:
        for shape in (_SCALE, _SCALE[::-1], _ARPEGGIO):
            melodies.append([t for degree in shape for t in (60 + key + degree, HOLD)] + [REST, REST])
    return melodies


def midi_melodies(folder: str, split: str, tokenizer) -> list[list[int]]:
    """The tokenized MIDI files under `folder` that fall into `split` (10% valid, 10% test)."""
    # a file's split comes from a stable hash of its path: it never moves once your model is released
    chosen = [path for name, path in midi_files(folder) if split_of(name, valid=0.1, test=0.1, buckets=10) == split]
    return [tokenizer.encode(read_midi(path)).tolist() for path in chosen]


class MelodyWindows(torch.utils.data.Dataset):
    """Every (context + 1)-token window of every melody, each padded in front with `context` RESTs."""

    def __init__(self, melodies: list[list[int]], context: int):
        self.windows = []
        for melody in melodies:
            padded = [REST] * context + list(melody)
            self.windows += [padded[i:i + context + 1] for i in range(len(padded) - context)]
        self.windows = torch.tensor(self.windows, dtype=torch.long).reshape(-1, context + 1)

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.windows[i]


def build_dataset(source: str | None, split: str, model) -> MelodyWindows:
    """The windows of one split for `model`: the embedded corpus (source None) or a folder of MIDI files.
    plugin.py registers it: training, `zoo eval` and `zoo release` all read their data here."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    melodies = embedded_melodies(split) if source is None else midi_melodies(source, split, model.tokenizer)
    return MelodyWindows(melodies, model.config.context)
