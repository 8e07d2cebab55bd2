"""MuseGAN's data: chorale windows (zoo_chorales.data) as +1/-1 piano rolls, optionally transposed, and the
registered build_dataset."""

from __future__ import annotations

import numpy as np

from zoo_chorales.data import TransposedWindows, load_data, voice_ranges


class WindowDataset(TransposedWindows):
    """Map-style dataset of rolls (tracks, bars, steps, pitches) of +1/-1, with optional transposition.

    With transpose=K each item is shifted by a semitone count drawn from [-K, K] among the shifts
    that keep every voice inside `ranges`; the draw depends only on (seed, epoch, index).
    """

    def __init__(self, grids: np.ndarray, n_bars: int = 2, steps_per_bar: int = 16, n_pitches: int = 84,
                 transpose: int = 0, ranges: list[tuple[int, int]] | None = None, seed: int = 0):
        from .tokenizer import PianoRollTokenizer

        grids = np.asarray(grids)
        self.tok = PianoRollTokenizer(n_tracks=grids.shape[1], n_bars=n_bars, steps_per_bar=steps_per_bar,
                                      n_pitches=n_pitches)
        super().__init__(grids, ranges or voice_ranges(grids) if len(grids) else ranges, transpose, seed)

    def __getitem__(self, index: int):
        return self.tok.grid_to_roll(self.window(index))[0]


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
