"""MuseGAN's data: chorale windows (zoo_chorales.data) as +1/-1 piano rolls, optionally transposed, and the
registered build_dataset."""

from __future__ import annotations

import numpy as np

from zoo_chorales.data import load_data, transposition, voice_ranges  # noqa: F401  (load_data, voice_ranges: what the trainer and the model read)
from zoo_chorales.grid import REST


class WindowDataset:
    """Map-style dataset of rolls (tracks, bars, steps, pitches) of +1/-1, with optional transposition.

    With transpose=K each item is shifted by a semitone count drawn from [-K, K] among the shifts
    that keep every voice inside `ranges`; the draw depends only on (seed, epoch, index).
    """

    def __init__(self, grids: np.ndarray, n_bars: int = 2, steps_per_bar: int = 16, n_pitches: int = 84,
                 transpose: int = 0, ranges: list[tuple[int, int]] | None = None, seed: int = 0):
        from .tokenizer import PianoRollTokenizer

        self.grids = np.asarray(grids)
        self.tok = PianoRollTokenizer(n_tracks=self.grids.shape[1], n_bars=n_bars, steps_per_bar=steps_per_bar,
                                      n_pitches=n_pitches)
        self.transpose, self.seed, self.epoch = int(transpose), int(seed), 0
        self.ranges = ranges or voice_ranges(self.grids) if len(self.grids) else ranges

    def __len__(self) -> int:
        return len(self.grids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def shift_for(self, index: int) -> int:
        """The transposition of one item this epoch (0 without augmentation)."""
        return transposition(self.grids[index], self.ranges, self.transpose, self.seed, self.epoch, index)

    def __getitem__(self, index: int):
        g = self.grids[index].astype(np.int64)
        s = self.shift_for(index)
        if s:
            g = np.where(g != REST, g + s, REST)
        return self.tok.grid_to_roll(g)[0]


def build_dataset(source: str | None, split: str, model, *, transpose: int = 0, seed: int = 0,
                  data=None) -> WindowDataset:
    """Registered (plugin.py): the windows of one split of `source` (None: the Bach chorales) as rolls of
    `model`'s shape, untransposed: what `zoo eval` reads without a Trainer. The trainer adds its
    transposition (`transpose`, drawn from `seed`) and passes `data`, the windows of `source` it has loaded."""
    from zoo.errors import DataError

    c = model.config
    if data is None:
        data = load_data(source, n_bars=c.n_bars, steps_per_bar=c.steps_per_bar, n_pitches=c.n_pitches)
    grids = data.splits[split]
    if len(grids) == 0:
        raise DataError(f"no {split} windows in {data.stats.get('source', source)}; {data.summary()}")
    if grids.shape[1] != c.n_tracks:
        raise DataError(f"the data has {grids.shape[1]} voices but the model n_tracks={c.n_tracks}")
    train = data.splits["train"]
    return WindowDataset(grids, c.n_bars, c.steps_per_bar, c.n_pitches, transpose=transpose,
                         ranges=voice_ranges(train) if len(train) else None, seed=seed)
