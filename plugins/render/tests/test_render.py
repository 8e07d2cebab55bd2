"""Piano rolls, audio through FluidSynth and sheet music: real files a user would open."""

import shutil
import struct
import time
import wave

import numpy as np
import pretty_midi
import pytest

import zoo_render as render
from zoo.errors import ZooError
from zoo.testing import cli_in_process, one_error_line

HAS_FLUIDSYNTH = shutil.which("fluidsynth") is not None
HAS_SOUNDFONT = any(__import__("os").path.isfile(p) for p in render.SOUNDFONTS)
HAS_ENGRAVER = render.engraver() is not None
needs_fluidsynth = pytest.mark.skipif(not (HAS_FLUIDSYNTH and HAS_SOUNDFONT),
                                      reason="FluidSynth or a GM soundfont is not installed "
                                             "(apt-get install fluidsynth fluid-soundfont-gm)")
needs_engraver = pytest.mark.skipif(not HAS_ENGRAVER, reason="no engraver installed (apt-get install lilypond)")

# a two-bar chorale in F major (Bb in the alto and bass), 66 bpm, 16th-note steps
STEP = 60 / 66 / 4
CHORALE = {"Soprano": [(72, 0, 8), (70, 8, 12), (69, 12, 16), (67, 16, 24), (65, 24, 32)],
           "Alto": [(65, 0, 8), (65, 8, 16), (64, 16, 24), (60, 24, 32)],
           "Tenor": [(57, 0, 8), (58, 8, 16), (60, 16, 24), (57, 24, 32)],
           "Bass": [(53, 0, 8), (46, 8, 16), (48, 16, 24), (41, 24, 32)]}


# staff layouts as a plugin declares them (Model.score_layouts): four staves, or two with two voices each
FOUR_STAVES = (("Soprano", "treble", (0,)), ("Alto", "treble", (1,)), ("Tenor", "treble8vb", (2,)),
               ("Bass", "bass", (3,)))
TWO_STAVES = (("S A", "treble", (0, 1)), ("T B", "bass", (2, 3)))


def chorale():
    m = pretty_midi.PrettyMIDI(initial_tempo=66)
    m.time_signature_changes.append(pretty_midi.TimeSignature(4, 4, 0))
    for name, notes in CHORALE.items():
        inst = pretty_midi.Instrument(program=19, name=name)
        inst.notes = [pretty_midi.Note(80, p, s * STEP, e * STEP) for p, s, e in notes]
        m.instruments.append(inst)
    return m


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_pitch_name():
    assert [render.pitch_name(p) for p in (60, 61, 21, 108)] == ["C4", "C#4", "A0", "C8"]


@pytest.mark.parametrize("time", ["beats", "seconds"])
def test_plot_pianoroll_draws_every_track_with_a_legend(tmp_path, time, monkeypatch):
    import matplotlib.axes

    seen = {}
    orig = matplotlib.axes.Axes.legend

    def spy(self, *a, **kw):
        seen["labels"] = [h.get_label() for h in kw["handles"]]
        seen["xlabel"], seen["yticks"] = self.get_xlabel(), [t.get_text() for t in self.get_yticklabels()]
        seen["xlim"] = self.get_xlim()
        return orig(self, *a, **kw)

    monkeypatch.setattr(matplotlib.axes.Axes, "legend", spy)
    out = render.plot_pianoroll(chorale(), tmp_path / "roll.png", time=time)
    w, h = png_size(out)
    assert w > 400 and h > 200
    assert seen["labels"] == ["Soprano (5 notes)", "Alto (4 notes)", "Tenor (4 notes)", "Bass (4 notes)"]
    assert seen["xlabel"] == f"time ({time})" and "C4" in seen["yticks"] and "C3" in seen["yticks"]  # every C and G over two octaves
    assert seen["xlim"][1] == pytest.approx(8.0 if time == "beats" else 32 * STEP, rel=1e-3)


def test_zoo_plot_cli(tmp_path, capsys):
    from zoo.cli import main

    mid = tmp_path / "c.mid"
    chorale().write(str(mid))
    assert main(["plot", str(mid), "-o", str(tmp_path / "c.png"), "--time", "seconds"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "c.png") and png_size(tmp_path / "c.png")[0] > 400
    assert main(["plot", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "x.png")]) == 2
    assert "no such MIDI file" in capsys.readouterr().err


def test_missing_fluidsynth_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ZooError, match="apt-get install fluidsynth fluid-soundfont-gm"):
        render.render_audio(chorale(), tmp_path / "x.wav")
    with pytest.raises(ZooError, match="apt-get install lilypond"):
        render.write_score(chorale(), tmp_path / "x.pdf")


def test_missing_soundfont_is_a_clear_error(tmp_path):
    with pytest.raises(ZooError, match="soundfont .* does not exist"):
        render.find_soundfont(tmp_path / "none.sf2")


@needs_fluidsynth
def test_render_audio_has_the_right_length_and_is_not_silent(tmp_path):
    midi = chorale()
    out = render.render_audio(midi, tmp_path / "c.wav", sample_rate=22050)
    stats = render.wav_stats(out)
    end = midi.get_end_time()
    # the music plus the release/reverb tail of the last chord, never shorter than the music
    assert end <= stats["seconds"] <= end + 5.0, (stats, end)
    assert stats["sample_rate"] == 22050 and stats["channels"] == 2
    assert stats["peak_dbfs"] == pytest.approx(-1.0, abs=0.1)     # normalised: loud, never clipped
    assert stats["rms_dbfs"] > -30
    with wave.open(str(out)) as w:   # sound while the music plays, not only at the start
        a = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    music = a[: int(end * 22050)]
    quarters = np.array_split(music, 4)
    assert all(np.abs(q).max() > 1000 for q in quarters)


def test_score_musicxml_follows_the_staff_layout(tmp_path):
    import music21

    out = render.write_score(chorale(), tmp_path / "c.musicxml", title="Test chorale", staves=FOUR_STAVES)
    score = music21.converter.parse(str(out))
    parts = list(score.parts)
    assert [p.partName for p in parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    clefs = [type(p.recurse().getElementsByClass(music21.clef.Clef).first()).__name__ for p in parts]
    assert clefs == ["TrebleClef", "TrebleClef", "Treble8vbClef", "BassClef"]
    keysigs = {p.recurse().getElementsByClass(music21.key.KeySignature).first().sharps for p in parts}
    assert keysigs == {-1}                                      # F major: one flat
    soprano = [n for n in parts[0].recurse().notes]
    assert [n.nameWithOctave for n in soprano] == ["C5", "B-4", "A4", "G4", "F4"]   # Bb, not A#
    # held notes come out as one note value each (half, quarter, quarter, half, half), not tied 16ths
    assert [n.quarterLength for n in soprano] == [2.0, 1.0, 1.0, 2.0, 2.0]
    assert len(parts[0].getElementsByClass("Measure")) == 2


def test_score_on_two_staves_puts_two_voices_on_each(tmp_path):
    import music21

    out = render.write_score(chorale(), tmp_path / "c2.musicxml", staves=TWO_STAVES)
    score = music21.converter.parse(str(out))
    assert [p.partName for p in score.parts] == ["S A", "T B"]
    first = score.parts[0].getElementsByClass("Measure")[0]
    soprano, alto = [[n.nameWithOctave for n in v.notes] for v in first.voices]
    assert soprano == ["C5", "B-4", "A4"] and alto == ["F4", "F4"]
    assert {n.stemDirection for n in first.voices[0].notes} == {"up"}
    assert first.voices[0].duration.quarterLength == first.voices[1].duration.quarterLength == 4.0
    lower = score.parts[1].recurse().getElementsByClass(music21.clef.Clef).first()
    assert isinstance(lower, music21.clef.BassClef)
    with pytest.raises(ZooError, match="a staff must be"):
        render.to_score(chorale(), staves=(("S", "tenor", (0,)),))


def test_score_without_a_layout_chooses_clefs_by_pitch():
    """The core knows no four-part layout: without one, each track's clef follows its pitches."""
    import music21

    score = render.to_score(chorale())
    clefs = [type(p.recurse().getElementsByClass(music21.clef.Clef).first()).__name__ for p in score.parts]
    assert clefs == ["TrebleClef", "TrebleClef", "TrebleClef", "BassClef"]   # the tenor sits around A3: treble
    # a layout that does not place every track once is not used
    three = render.to_score(chorale(), staves=FOUR_STAVES[:3])
    assert len(three.parts) == 4


def test_score_keeps_a_silent_voice_and_writes_chords(tmp_path):
    import music21

    m = chorale()
    m.instruments[1].notes = []                                  # the alto rests throughout
    piano = pretty_midi.Instrument(0, name="Piano")
    piano.notes = [pretty_midi.Note(80, p, 0.0, 1.0) for p in (60, 64, 67)]
    score = render.to_score(m)
    assert [p.partName for p in score.parts] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert not list(score.parts[1].recurse().notes) and len(score.parts[1].getElementsByClass("Measure")) == 2
    solo = pretty_midi.PrettyMIDI(initial_tempo=120)
    solo.instruments.append(piano)
    first = next(iter(render.to_score(solo).parts[0].recurse().notes))
    assert isinstance(first, music21.chord.Chord) and [p.midi for p in first.pitches] == [60, 64, 67]
    assert first.quarterLength == 2.0                            # one second at 120 bpm
    piano.notes.append(pretty_midi.Note(80, 36, 0.0, 1.0))      # C2: too wide for one staff -> a grand staff
    grand = render.to_score(solo)
    assert [p.partName for p in grand.parts] == ["Piano (right hand)", "Piano (left hand)"]
    assert isinstance(grand.parts[1].recurse().getElementsByClass(music21.clef.Clef).first(), music21.clef.BassClef)


def test_score_rejects_unknown_formats(tmp_path):
    with pytest.raises(ZooError, match="musicxml"):
        render.write_score(chorale(), tmp_path / "c.doc")


@needs_engraver
def test_score_png_is_engraved(tmp_path):
    out = render.write_score(chorale(), tmp_path / "c.png", first_system=True)
    w, h = png_size(out)
    assert w > 300 and h > 150



# ---- item 11: zoo plot bounded in beats -----------------------------------------------------------

def test_plot_of_ten_million_beats_is_refused_quickly(tmp_path, capsys):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=1, initial_tempo=6e7)   # 1 microsecond per quarter, 1 tick each
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(80, 60, 0.0, 9.0))   # 9 seconds: 9 * 10^6 beats
    midi.instruments.append(inst)
    midi.write(str(tmp_path / "fast.mid"))
    t0 = time.monotonic()
    code, err = cli_in_process(capsys, "plot", tmp_path / "fast.mid", "-o", tmp_path / "fast.png")
    one_error_line(code, err)
    assert "beats" in err and "--time seconds" in err and time.monotonic() - t0 < 10
    code, err = cli_in_process(capsys, "plot", tmp_path / "fast.mid", "-o", tmp_path / "fast.xyz")
    one_error_line(code, err)
