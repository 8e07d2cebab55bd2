"""What several MuseGAN test files share: a tiny configuration and a small data file in the book's format."""

from __future__ import annotations

import numpy as np

# a MuseGANConfig small enough to build, train and sample in well under a second on one CPU thread
TINY = dict(z_dim=8, temporal_hidden=16, bar_hidden_features=32, bar_hidden_channels=16, critic_hidden=8,
            critic_hidden_features=16)


def write_jsb(path):
    """A small file in the book's Jsb16thSeparated.npz layout: object arrays of (T, 4) pitches, NaN rests."""
    rng = np.random.default_rng(0)

    def piece(t):
        a = (np.array([72.0, 65, 57, 48]) + rng.integers(-3, 4, size=(t, 4))).astype(float)
        a[rng.random((t, 4)) < 0.1] = np.nan
        return a

    arrays = {}
    for split, n in (("train", 4), ("valid", 2), ("test", 2)):
        arr = np.empty(n, dtype=object)
        for i in range(n):
            arr[i] = piece(48 + 16 * i)
        arrays[split] = arr
    arrays["train"][1] = np.zeros((10, 4))        # shorter than a window: skipped, counted
    np.savez(path, **arrays)
    return path
