"""Coconet's training data: Bach chorale windows from zoo_chorales, transposed per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import torch
from zoo_chorales.data import TransposedWindows


class ChoraleWindows(TransposedWindows):
    """Pitch-grid windows (voices, T) inside a model's pitch range, each transposed by a shift drawn from
    (seed, epoch, index) among those that keep every voice inside `ranges` and the model's pitch range."""

    def __init__(self, grids: np.ndarray, model, ranges, transpose: int = 0, seed: int = 0):
        c = model.config
        lo, hi = c.lowest_pitch, c.lowest_pitch + c.n_pitches - 1
        sounding = np.where(grids >= 0, grids, lo)
        fits = ((sounding >= lo) & (sounding <= hi)).all(axis=(1, 2))
        super().__init__(grids[fits].astype(np.int64), [(max(a, lo), min(b, hi)) for a, b in ranges], transpose, seed)
        self.dropped, self.model = int((~fits).sum()), model

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.window(index))


def split_windows(data, split: str, model, transpose: int = 0, seed: int = 0) -> ChoraleWindows:
    """The windows of one split of loaded chorale data (a zoo_chorales WindowData) that fit `model`, transposed
    inside the voice ranges of the train split (transpose > 0: the training run's augmentation)."""
    from zoo.errors import DataError
    from zoo_chorales.data import voice_ranges

    grids, train = data.splits[split], data.splits["train"]
    if grids.shape[1:2] != (model.config.n_voices,):
        raise DataError(f"the data has {grids.shape[1]} voices but the model has {model.config.n_voices}")
    dataset = ChoraleWindows(grids, model, voice_ranges(train) if len(train) else voice_ranges(grids),
                             transpose=transpose, seed=seed)
    if len(dataset) == 0:
        raise DataError(f"no {split} windows inside the model's pitch range; {data.summary()}")
    return dataset


def build_dataset(source: str | None, split: str, model) -> ChoraleWindows:
    """Registered (plugin.py): the untransposed windows of one split of `source` (None: the Bach chorales), as
    long as a default training run's (CoconetTrainConfig.n_bars): what `zoo eval` reads. A training run's own
    window length and transposition come from its config, in CoconetTrainer.build_dataset."""
    from zoo_chorales.data import load_data

    from .train import CoconetTrainConfig

    data = load_data(source, n_bars=CoconetTrainConfig.n_bars, steps_per_bar=model.config.steps_per_bar,
                     n_pitches=84)   # no chorale note lies above 83
    return split_windows(data, split, model)
