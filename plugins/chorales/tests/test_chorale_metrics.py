"""The pitch-grid metrics of zoo_chorales.metrics on hand-made inputs whose answers are known by hand."""

import math

import numpy as np
import pretty_midi
import pytest

from zoo.testing import one_track_midi

from zoo.metrics import scale_sets
from zoo_chorales import metrics as M

R = M.REST


def grid(*voices):
    """(1 piece, voices, steps) from lists of pitches."""
    return np.array([voices], dtype=np.int16)


midi = one_track_midi


def test_grid_to_notes_merges_held_pitches_and_skips_rests():
    assert M.grid_to_notes([60, 60, R, 62, 62, 62, 64]) == [(60, 0, 2), (62, 3, 6), (64, 6, 7)]


def test_rest_rate_per_voice():
    assert M.rest_rate(grid([60, R, R, R], [R, R, R, R])) == [0.75, 1.0]


def test_used_pitch_classes_counts_per_bar_across_voices():
    # bar 1: C, E, and C an octave down (same class) -> 2; bar 2: all rests -> 0
    g = grid([60, 64, R, R], [48, 48, R, R])
    assert M.used_pitch_classes(g, steps_per_bar=2) == pytest.approx((2 + 0) / 2)


def test_in_scale_rate():
    c_major = grid([60, 62, 64, 65, 67, 69, 71, 72])
    assert M.in_scale_rate(c_major) == 1.0
    chromatic = grid([60, 61, 62, 63])
    best = max(len({0, 1, 2, 3} & s) for s in scale_sets()) / 4
    assert M.in_scale_rate(chromatic) == pytest.approx(best)


def test_mean_note_length_merges_repeats():
    assert M.mean_note_length(grid([60, 60, 60, 62])) == pytest.approx((3 + 1) / 2)


def test_tonal_distance_zero_for_identical_voices_and_positive_otherwise():
    same = grid([60] * 4, [48] * 4)       # both C
    assert M.tonal_distance(same, 4)[(0, 1)] == pytest.approx(0.0)
    tritone = grid([60] * 4, [66] * 4)    # C against F#: opposite on the circle of fifths
    d = M.tonal_distance(tritone, 4)[(0, 1)]
    # angles k*7pi/6, k*3pi/2, k*2pi/3 for k = 0 and 6: opposite (7pi, radius 1), opposite (9pi, radius 1), equal (4pi)
    assert d == pytest.approx(math.sqrt(2 ** 2 + 2 ** 2 + 0 ** 2))
    assert math.isnan(M.tonal_distance(grid([60] * 4, [R] * 4), 4)[(0, 1)])


def test_in_range_and_voice_crossing():
    g = grid([72, 72, 50, 50], [60, 60, 60, 60])   # soprano in range, then drops below the alto
    assert M.in_range_rate(g, ((60, 81), (53, 74))) == [0.5, 1.0]
    assert M.voice_crossing_rate(g) == pytest.approx(2 / 4)


def test_grid_metrics_names_voices():
    g = np.stack([grid([72] * 16, [67] * 16, [64] * 16, [48] * 16)[0]])
    out = M.grid_metrics(g)
    assert out["rest_rate_S"] == 0.0 and out["in_range_B"] == 1.0 and out["voice_crossing"] == 0.0
    assert out["upc_per_bar"] == 3.0 and out["in_scale"] == 1.0 and out["note_length"] == 16.0
    assert {"tonal_distance_SA", "tonal_distance_TB"} <= set(out)


def test_midi_to_grid_is_tempo_aware():
    m = midi((60, 0.0, 0.5), (64, 0.5, 1.0), tempo=120.0)   # one beat each = 4 steps each
    g = M.midi_to_grid(m)
    assert g.shape == (1, 8) and g[0].tolist() == [60] * 4 + [64] * 4


def test_parallel_fifths_and_octaves_are_counted_per_100_16ths():
    # S and B a fifth apart (C5/F4 -> D5/G4: both up a step, still a fifth): one parallel fifth; A and T hold
    piece = np.array([[[72, 74], [67, 67], [64, 64], [65, 67]]])
    assert M.parallels_per_100(piece) == pytest.approx(100 * 1 / 2)
    # contrary motion into the same fifth is not parallel; oblique motion neither
    contrary = np.array([[[72, 74], [67, 67], [64, 64], [65, 55]]])
    assert M.parallels_per_100(contrary) == 0.0
    # octaves (compound too) in similar motion count; a rest in either voice breaks the pair
    octaves = np.array([[[72, 74], [67, 67], [64, 64], [48, 50]]])
    assert M.parallels_per_100(octaves) == pytest.approx(50.0)
    octaves[0, 3, 1] = M.REST
    assert M.parallels_per_100(octaves) == 0.0


def test_voices_sounding_rate_needs_every_voice_three_quarters_of_the_time():
    full = np.full((1, 4, 8), 60)
    bass_rests = full.copy()
    bass_rests[0, 3, :3] = M.REST   # sounds 5 of 8 = 62 %
    assert M.voices_sounding_rate(np.concatenate([full, bass_rests])) == pytest.approx(0.5)
    bass_rests[0, 3, 2] = 60        # 6 of 8 = 75 %: enough
    assert M.voices_sounding_rate(bass_rests) == 1.0


def test_distance_to_data_keeps_musegan_bachs_rule():
    """The release rule of musegan-bach weighs exactly its eight metrics; rows added later do not enter it."""
    base = {k: 0.5 for k in M.DISTANCE_METRICS}
    assert M.distance_to_data({**base, "parallels_per_100": 9.0}, {**base, "parallels_per_100": 0.0}) == 0.0


def pop_file(path, pitched: int, drums: int = 0, named: bool = False):
    """A 4-bar 120 bpm MIDI file of `pitched` pitched tracks (named S/A/T/B when `named`) and `drums` drum tracks."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    names = ["Bass", "Tenor", "Alto", "Soprano"] if named else [f"track {k}" for k in range(pitched)]
    for k in range(pitched):
        inst = pretty_midi.Instrument(0, name=names[k % len(names)] if k < len(names) else f"extra {k}")
        inst.notes = [pretty_midi.Note(80, 48 + 5 * k, b * 2.0, b * 2.0 + 1.9) for b in range(4)]
        midi.instruments.append(inst)
    for _ in range(drums):
        kit = pretty_midi.Instrument(0, is_drum=True)
        kit.notes = [pretty_midi.Note(80, 36, 0, 0.1)]
        midi.instruments.append(kit)
    midi.write(str(path))


def test_a_midi_folder_reports_how_tracks_became_four_voices(tmp_path, capsys):
    """(On a multitrack pop folder nothing said how 6-16 tracks were mapped to four voices.) One stderr line."""
    from zoo_chorales.data import load_midi_folder

    pop_file(tmp_path / "a.mid", pitched=6, drums=1)
    pop_file(tmp_path / "b.mid", pitched=16)
    pop_file(tmp_path / "satb.mid", pitched=4, named=True)
    data = load_midi_folder(tmp_path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == (
        f"zoo: {tmp_path}: 3 file(s) of 4-16 pitched tracks: voices by track name (Soprano, Alto, Tenor, Bass) in 1, "
        "the first 4 pitched tracks in file order in 2; 14 other pitched track(s) and 1 drum track(s) left out")
    assert {k: data.stats["tracks"][k] for k in ("by_name", "by_order", "left_out", "drums")} == \
        {"by_name": 1, "by_order": 2, "left_out": 14, "drums": 1}
