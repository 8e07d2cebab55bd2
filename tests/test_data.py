"""zoo.data: the cache folder, the stable split and the MIDI-folder walk that plugins share."""

from __future__ import annotations

import pretty_midi
import pytest

from zoo import data
from zoo.errors import DataError


def test_cache_dir_is_one_folder_per_plugin(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    assert data.cache_dir("tunes") == tmp_path / "tunes"
    monkeypatch.delenv("ZOO_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.cache_dir("tunes") == tmp_path / "xdg" / "musezoo" / "tunes"


def test_split_of_is_stable_and_follows_its_ratios():
    keys = [f"piece{i}.mid" for i in range(4000)]
    splits = [data.split_of(k) for k in keys]
    assert splits == [data.split_of(k) for k in keys]                     # the same key, the same split
    assert 0.03 < splits.count("test") / len(keys) < 0.07 and 0.03 < splits.count("valid") / len(keys) < 0.07
    wide = [data.split_of(k, valid=0.1, test=0.2, buckets=10, hash="crc32") for k in keys]
    assert 0.15 < wide.count("test") / len(keys) < 0.25 and 0.05 < wide.count("valid") / len(keys) < 0.15
    assert data.split_of("caf\udce9.mid") in data.SPLITS                    # a file name that is not UTF-8


def test_read_midi_folder_yields_pieces_and_reasons_for_the_rest(tmp_path):
    midi = pretty_midi.PrettyMIDI()
    midi.instruments.append(pretty_midi.Instrument(0))
    midi.instruments[0].notes.append(pretty_midi.Note(80, 60, 0, 1))
    (tmp_path / "sub").mkdir()
    midi.write(str(tmp_path / "sub" / "good.mid"))
    (tmp_path / "broken.midi").write_bytes(b"MThd\x00garbage")
    (tmp_path / "notes.txt").write_text("not MIDI")
    seen = {name: (item, why) for name, item, why in data.read_midi_folder(tmp_path)}
    assert sorted(seen) == ["broken.midi", "sub/good.mid"]
    assert seen["sub/good.mid"][0].instruments[0].notes[0].pitch == 60 and seen["sub/good.mid"][1] is None
    assert seen["broken.midi"][0] is None and seen["broken.midi"][1]

    def too_short(path):
        raise DataError("shorter than a window")

    assert {why for _, _, why in data.read_midi_folder(tmp_path, too_short)} == {"shorter than a window"}
    with pytest.raises(DataError, match="no .mid files"):
        list(data.read_midi_folder(tmp_path / "sub" / "missing"))
