"""zoo_chorales.data's TransposedWindows: what MuseGAN's and Coconet's training data share."""

from __future__ import annotations

import numpy as np

from zoo_chorales.data import TransposedWindows
from zoo_chorales.grid import REST


def test_windows_shift_notes_not_rests_and_the_draw_is_fixed_by_seed_epoch_and_index():
    grids = np.full((4, 2, 8), REST, dtype=np.int16)
    grids[:, 0, :4], grids[:, 1, 2:6] = 67, 55
    windows = TransposedWindows(grids, ranges=[(60, 74), (48, 62)], transpose=3, seed=2)
    assert len(windows) == 4
    shifts = []
    for epoch in range(6):
        windows.set_epoch(epoch)
        for i in range(len(windows)):
            s, w = windows.shift_for(i), windows.window(i)
            assert w.dtype == np.int64 and -3 <= s <= 3
            np.testing.assert_array_equal(w, np.where(grids[i] != REST, grids[i] + s, REST))
            shifts.append(s)
    assert len(set(shifts)) > 1                                    # it does transpose
    windows.set_epoch(1)
    again = [windows.shift_for(i) for i in range(4)]
    assert again == shifts[4:8]                                    # (seed, epoch, index) decides
    assert TransposedWindows(grids, ranges=[(60, 74), (48, 62)]).shift_for(0) == 0   # transpose 0: none
