"""Coconet's training data: Bach chorale windows from zoo_chorales, transposed per (seed, epoch, index)."""

from __future__ import annotations

import numpy as np
import torch


class ChoraleWindows(torch.utils.data.Dataset):
    """Pitch-grid windows (voices, T) inside a model's pitch range, each transposed by a shift drawn from
    (seed, epoch, index) among those that keep every voice inside `ranges` and the model's pitch range."""

    def __init__(self, grids: np.ndarray, model, ranges, transpose: int = 0, seed: int = 0):
        c = model.config
        lo, hi = c.lowest_pitch, c.lowest_pitch + c.n_pitches - 1
        sounding = np.where(grids >= 0, grids, lo)
        fits = ((sounding >= lo) & (sounding <= hi)).all(axis=(1, 2))
        self.grids, self.dropped = grids[fits].astype(np.int64), int((~fits).sum())
        self.model, self.transpose, self.seed, self.epoch = model, transpose, seed, 0
        self.ranges = [(max(a, lo), min(b, hi)) for a, b in ranges]

    def __len__(self) -> int:
        return len(self.grids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shift_for(self, index: int) -> int:
        from zoo_chorales.data import transposition

        return transposition(self.grids[index], self.ranges, self.transpose, self.seed, self.epoch, index)

    def __getitem__(self, index: int) -> torch.Tensor:
        g = self.grids[index]
        s = self.shift_for(index)
        if s:
            g = np.where(g >= 0, g + s, g)
        return torch.from_numpy(g)
