"""zoo.metrics (the metrics of any MIDI) on hand-made inputs whose answers are known by hand."""

import math

import pretty_midi
import pytest

from zoo.testing import one_track_midi

from zoo import metrics as M


midi = one_track_midi


def test_pitch_class_entropy():
    assert M.pitch_class_entropy(midi((60, 0, 1), (72, 1, 2))) == pytest.approx(0.0)        # one class
    assert M.pitch_class_entropy(midi((60, 0, 1), (62, 1, 2))) == pytest.approx(1.0)        # two, equal time
    all12 = midi(*[(60 + k, k, k + 1) for k in range(12)])
    assert M.pitch_class_entropy(all12) == pytest.approx(math.log2(12))
    assert math.isnan(M.pitch_class_entropy(midi()))


def test_pitch_range_used_pitches_density_ioi_duration():
    m = midi((60, 0.0, 0.5), (64, 0.5, 1.0), (67, 0.5, 1.0), (72, 1.5, 2.0))
    assert M.pitch_range(m) == 12.0
    assert M.used_pitches(m) == 4.0
    assert M.note_density(m) == pytest.approx(4 / 2.0)
    assert M.mean_ioi(m) == pytest.approx((0.5 + 1.0) / 2)    # distinct onsets 0, 0.5, 1.5
    assert M.mean_duration(m) == pytest.approx(0.5)
    assert M.midi_in_scale_rate(m) == 1.0


def test_polyphony_is_time_weighted_over_sounding_time():
    assert M.polyphony(midi((60, 0, 1), (62, 1, 2))) == pytest.approx(1.0)
    # two notes for 1 s, then one for 1 s, then silence for 2 s (ignored), then one for 1 s
    m = midi((60, 0, 2), (64, 0, 1), (67, 4, 5))
    assert M.polyphony(m) == pytest.approx((2 * 1 + 1 * 1 + 1 * 1) / 3)


def test_empty_beat_rate_uses_the_tempo_map():
    # 120 bpm: beats every 0.5 s. Notes in beats 0 and 3 of 4 -> 2 of 4 beats empty
    m = midi((60, 0.0, 0.5), (62, 1.5, 2.0))
    assert M.empty_beat_rate(m) == pytest.approx(0.5)


def test_midi_metrics_averages_over_pieces_and_skips_undefined():
    out = M.midi_metrics([midi((60, 0, 1), (72, 1, 2)), midi((60, 0, 1), (62, 1, 2)), midi()])
    assert out["pitch_class_entropy"] == pytest.approx(0.5)
    assert set(out) == set(M.MIDI_METRICS)


def test_nll_to_bits():
    assert M.nll_to_bits(math.log(2)) == pytest.approx(1.0)


def test_metrics_value_keeps_kinds_and_logs_flat():
    """A plugin's evaluate() says what each number is; the flat form (training logs) reads back the same."""
    from zoo.metrics import Metrics

    m = Metrics(paired={"pitch_range": (10.0, 12.0)}, scores={"ppl": 3.0}, nll=1.1) | Metrics(scores={"tokens": 5.0})
    assert dict(m) == {"nll": 1.1, "gen_pitch_range": 10.0, "data_pitch_range": 12.0, "ppl": 3.0, "tokens": 5.0}
    assert Metrics.from_flat(dict(m)) == m
    assert Metrics.from_flat({"gen_only": 1.0}).scores == {"gen_only": 1.0}   # half a pair is a plain score
