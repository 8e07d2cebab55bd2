"""zoo_chorales.data's TransposedWindows: what MuseGAN's and Coconet's training data share."""

from __future__ import annotations

import numpy as np
import pytest

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


class Sentinel:
    """pickle.dumps(Sentinel(path)) touches `path` when loaded: the file appears only if a loader ran the pickle."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        from pathlib import Path

        return (Path.touch, (Path(self.path),))


def test_a_pickled_npz_for_musegan_data_cannot_run_code(tmp_path):
    """The book's Jsb16thSeparated.npz stores pickled object arrays; one built to create a sentinel is refused
    (it ran code through np.load(allow_pickle=True) before), while real object arrays of pitches still load."""
    import pickle
    import zipfile

    from zoo_chorales.data import load_jsb_npz

    from zoo.errors import DataError

    sentinel = tmp_path / "pwned"
    evil = np.empty(1, dtype=object)
    evil[0] = Sentinel(str(sentinel))
    np.savez(tmp_path / "evil.npz", train=evil, valid=evil, test=evil)
    with pytest.raises(DataError, match=r"evil.npz: .*refusing pathlib.Path.touch"):
        load_jsb_npz(tmp_path / "evil.npz")
    assert not sentinel.exists()

    good = np.empty(2, dtype=object)
    good[0], good[1] = np.full((64, 4), 60.0), np.full((48, 4), np.nan)
    for protocol in (2, 5):  # the book's file dates from Python 2
        with open(tmp_path / "member.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(good))
            pickle.dump(good, f, protocol=protocol)
        with zipfile.ZipFile(tmp_path / "good.npz", "w") as z:
            for split in ("train", "valid", "test"):
                z.write(tmp_path / "member.npy", f"{split}.npy")
        data = load_jsb_npz(tmp_path / "good.npz")
        assert data.stats["used"] == 3 and len(data.splits["train"]) == 3
