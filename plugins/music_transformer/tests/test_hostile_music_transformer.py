"""Hostile input aimed at the Music Transformer: its data-worker setting, a data cache it cannot write."""

from __future__ import annotations

import io

import pretty_midi
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zoo.errors import DataError
from zoo.testing import cli_in_process


def test_bad_data_workers_variable_is_one_error(monkeypatch):
    from zoo_music_transformer.data import _default_workers

    monkeypatch.setenv("ZOO_DATA_WORKERS", "abc")
    with pytest.raises(DataError, match="ZOO_DATA_WORKERS must be a whole number"):
        _default_workers()


# ---- item 18: a read-only data cache ------------------------------------------------------------------

def test_music_transformer_trains_with_a_cache_it_cannot_write(tmp_path, one_torch_thread, capsys, monkeypatch):
    from zoo import registry
    from zoo.testing import one_track_midi

    data = tmp_path / "midi"
    data.mkdir()
    for i in range(6):
        notes = [(48 + (i + j) % 24, j * 0.25, j * 0.25 + 0.2) for j in range(48)]
        one_track_midi(*notes).write(str(data / f"piece{i}.mid"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(blocker / "cache"))   # under a file: cannot be made, even by root
    monkeypatch.setenv("ZOO_PLUGINS", "musezoo-music-transformer")
    registry.reset()
    args = ["train", "music-transformer", "--data", data, "--out", tmp_path / "run", "--steps", 2, "--batch-size", 2,
            "--device", "cpu"]
    for k, v in dict(block_size=8, n_layer=1, n_head=2, n_embd=16, num_workers=0, amp="false").items():
        args += ["--set", f"{k}={v}"]
    try:
        code, err = cli_in_process(capsys, *args)
    finally:
        registry.reset()
    assert code == 0, err
    assert err.count("cannot cache the tokenised data") == 1, err
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


def _reads_back(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    """The MIDI as another program would read it: written to bytes and parsed again."""
    buf = io.BytesIO()
    midi.write(buf)
    buf.seek(0)
    return pretty_midi.PrettyMIDI(buf)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=0, max_value=389), max_size=400))
def test_any_performance_id_sequence_decodes_to_midi_that_reads_back(ids):
    from zoo_music_transformer.tokenizer import PerformanceTokenizer

    midi = PerformanceTokenizer().decode(torch.tensor(ids, dtype=torch.long))
    back = _reads_back(midi)
    notes = [n for i in midi.instruments for n in i.notes]
    assert sum(len(i.notes) for i in back.instruments) == len(notes)
    assert all(0 <= n.pitch < 128 and 0 < n.velocity < 128 and n.end > n.start >= 0 for n in notes)
