"""Hostile input aimed at MuseGAN: crafted and oversized .npz data files, bad or fuzzed piano-roll tokenizer values."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.errors import ConfigError, DataError, ZooError

# ---- item 1, 3: crafted and oversized .npz for MuseGAN ----------------------------------------------

def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return path


def _npy_header(shape, descr) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npz_forging_an_object_pointer_is_refused_without_a_crash(tmp_path):
    """The issue's bytes: ndarray((1,), dtype=object, buffer=b"AAAAAAAA") made numpy read 8 bytes as a pointer
    (SIGSEGV). The decoder never calls ndarray and never unpickles."""
    from zoo_chorales.data import load_jsb_npz

    evil = _npy_header((1,), "|O") + (b"\x80\x02cnumpy\nndarray\n(K\x01\x85cnumpy\ndtype\n(X\x01\x00\x00\x00OK\x00K\x01tR"
                                      b"C\x08AAAAAAAAtR.")
    path = _npz(tmp_path / "evil.npz", {s: evil for s in ("train", "valid", "test")})
    with pytest.raises(DataError, match=r"evil.npz: cannot read it as .npz .*unexpected call.*ndarray"):
        load_jsb_npz(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_npz_object_arrays_decode_by_hand_in_every_protocol(tmp_path, protocol):
    import pickle

    from zoo_chorales.data import decode_numpy_pickle

    good = np.empty(2, dtype=object)
    good[0], good[1] = np.arange(12.0).reshape(3, 4), np.full((2, 4), np.nan)
    out = decode_numpy_pickle(pickle.dumps(good, protocol=protocol))
    assert np.array_equal(out[0], good[0]) and np.isnan(out[1]).all()
    assert decode_numpy_pickle(pickle.dumps(np.arange(6, dtype=">i4").reshape(2, 3), protocol=protocol)).tolist() \
        == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("shape, descr, message", [
    ((2 ** 27,), "<f8", r"shape \(134217728,\); expected \(pieces, steps, voices\)"),   # the 1 MB bomb
    ((1, 2 ** 25, 4), "<f8", "at most"),
    ((10 ** 6,), "|O", "at most 100,000 pieces"),
])
def test_npz_data_bomb_is_refused_from_its_declared_shape(tmp_path, shape, descr, message):
    from zoo_chorales.data import load_jsb_npz

    path = _npz(tmp_path / "bomb.npz", {s: _npy_header(shape, descr) for s in ("train", "valid", "test")})
    t0 = time.monotonic()
    with pytest.raises(DataError, match=message):
        load_jsb_npz(path)
    assert time.monotonic() - t0 < 2


def test_npz_member_unpacking_past_the_cap_is_refused(tmp_path, monkeypatch):
    import zoo_chorales.data as mdata

    monkeypatch.setattr(mdata, "MAX_NPZ_MEMBER_BYTES", 1000)
    path = tmp_path / "big.npz"
    np.savez(path, train=np.zeros((4, 64, 4)), valid=np.zeros((1, 64, 4)), test=np.zeros((1, 64, 4)))
    with pytest.raises(DataError, match=r"train unpacks to 8,320 bytes \(limit 1,000\)"):
        mdata.load_jsb_npz(path)


@pytest.mark.parametrize("params", [{"velocity": 200}, {"program": -1}, {"steps_per_bar": 0}, {"tempo": 1e-300},
                                    {"voice_names": [1, 2, 3, 4]}, {"threshold": "x"}, {"n_tracks": 10 ** 6}])
def test_bad_pianoroll_tokenizer_values(params):
    from zoo_musegan.tokenizer import PianoRollTokenizer

    with pytest.raises(ConfigError, match="pianoroll"):
        PianoRollTokenizer.from_dict(params)


# ---- fuzzing: tokenizer.json parameters ----------------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=6)

_params = st.dictionaries(st.sampled_from(["n_tracks", "n_bars", "steps_per_bar", "n_pitches", "tempo", "threshold",
                                           "velocity", "program", "voice_names", "bogus"]),
                          _json | st.integers(-300, 300) | st.floats(-1e3, 1e3), max_size=4)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=_params)
def test_fuzzed_tokenizer_json_builds_a_working_tokenizer_or_is_one_zoo_error(params):
    from zoo_musegan.tokenizer import PianoRollTokenizer

    try:
        tok = PianoRollTokenizer.from_dict(params)
    except ZooError:
        return
    roll = torch.zeros(tok.n_tracks, tok.n_bars, tok.steps_per_bar, tok.n_pitches)
    roll[:, :, :4, tok.n_pitches // 2] = 1
    tok.decode(roll)   # a tokenizer that builds must decode


def _reads_back(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """The MIDI as another program would read it: written to bytes and parsed again."""
    buf = io.BytesIO()
    midi.write(buf)
    buf.seek(0)
    return pretty_midi.PrettyMIDI(buf)


_ROLL_VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                         st.sampled_from([-1.0, 1.0, 0.0]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.integers(1, 3), data=st.data())
def test_any_piano_roll_of_the_right_shape_decodes_to_midi_that_reads_back(pieces, data):
    from zoo_musegan.tokenizer import PianoRollTokenizer

    tok = PianoRollTokenizer()
    shape = (pieces, tok.n_tracks, tok.n_bars, tok.steps_per_bar, tok.n_pitches)
    kind = data.draw(st.sampled_from(["random", "sparse", "special"]))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    if kind == "random":
        roll = torch.randn(shape, generator=g) * 10
    elif kind == "sparse":
        roll = torch.where(torch.rand(shape, generator=g) < 0.02, 1.0, -1.0)
    else:  # NaN, inf, -inf, ties and constants scattered over a roll
        values = data.draw(st.lists(_ROLL_VALUES, min_size=1, max_size=8))
        idx = torch.randint(len(values), shape, generator=g)
        roll = torch.tensor(values, dtype=torch.float32)[idx]
    midi = tok.decode(roll)
    back = _reads_back(midi)
    assert len(midi.instruments) == tok.n_tracks
    assert sum(len(i.notes) for i in back.instruments) == sum(len(i.notes) for i in midi.instruments)
    assert all(n.end > n.start >= 0 for i in midi.instruments for n in i.notes)
