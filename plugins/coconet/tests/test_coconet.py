"""Coconet plugin: the network, the orderless-NADE loss, Gibbs sampling, prompts, training."""

from __future__ import annotations

import numpy as np
import pretty_midi
import pytest

torch = pytest.importorskip("torch")

from zoo.errors import ConfigError, MidiError  # noqa: E402
from zoo_coconet.model import Coconet, CoconetConfig, nade_loss, random_mask  # noqa: E402
from zoo_coconet.prompt import VOICE_RANGES, read_prompt  # noqa: E402
from zoo_coconet.sampling import annealed_alpha, gibbs  # noqa: E402
from zoo_coconet.tokenizer import SATBGridTokenizer  # noqa: E402

TINY = dict(channels=8, n_layers=2)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Coconet(CoconetConfig(**TINY), SATBGridTokenizer()).eval()


def midi_of(tracks, tempo=90.0, signature=(4, 4), resolution=480):
    """tracks: [(name, [(pitch, start_16th, end_16th), ...]), ...] -> PrettyMIDI at `tempo`."""
    m = pretty_midi.PrettyMIDI(initial_tempo=tempo, resolution=resolution)
    m.time_signature_changes.append(pretty_midi.TimeSignature(*signature, 0.0))
    step = 60.0 / tempo / 4
    for name, notes in tracks:
        inst = pretty_midi.Instrument(0, name=name)
        inst.notes = [pretty_midi.Note(80, p, s * step, e * step) for p, s, e in notes]
        m.instruments.append(inst)
    return m


MELODY = [(67, 0, 4), (69, 4, 8), (71, 8, 12), (72, 12, 16), (74, 16, 24), (72, 24, 28), (71, 28, 32)]


def test_paper_preset_has_the_papers_size():
    """64 convolution layers of 128 channels, 3x3: input (8 -> 128), 62 inner (128 -> 128, each with batch
    norm), output (128 -> 4); plus the batch norm before the output."""
    model = Coconet(CoconetConfig.paper())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 64 and {c.kernel_size for c in convs} == {(3, 3)}
    expected = (8 * 128 * 9 + 128) + 62 * (128 * 128 * 9 + 128 + 2 * 128) + 2 * 128 + (128 * 4 * 9 + 4)
    assert model.num_parameters() == expected == 9_180_292


def test_random_mask_follows_the_orderless_nade_distribution():
    g = torch.Generator().manual_seed(0)
    mask = random_mask(4000, 4, 8, generator=g)
    counts = mask.sum(dim=(1, 2))
    assert mask.shape == (4000, 4, 8) and set(mask.unique().tolist()) == {0.0, 1.0}
    assert counts.min() >= 1 and counts.max() <= 32
    # the erased count is uniform on 1..32: every value appears, the mean is near 16.5
    assert len(counts.unique()) == 32 and abs(float(counts.mean()) - 16.5) < 0.6


def test_nade_loss_is_the_mean_nll_of_erased_cells_only():
    logits = torch.randn(2, 4, 3, 5)
    classes = torch.randint(0, 5, (2, 4, 3))
    mask = torch.zeros(2, 4, 3)
    mask[0, 1, 2] = mask[1, 0, 0] = mask[1, 3, 1] = 1
    nll = -torch.log_softmax(logits, -1).gather(-1, classes.unsqueeze(-1)).squeeze(-1)
    want = (nll[0, 1, 2] + (nll[1, 0, 0] + nll[1, 3, 1]) / 2) / 2
    assert torch.allclose(nade_loss(logits, classes, mask), want)


def test_erased_cells_cannot_leak_into_the_prediction(tiny):
    classes = torch.randint(0, tiny.config.n_classes, (1, 4, 16))
    mask = torch.zeros(1, 4, 16)
    mask[0, 2, 5:9] = 1
    other = classes.clone()
    other[0, 2, 5:9] = (other[0, 2, 5:9] + 7) % tiny.config.n_classes
    with torch.no_grad():
        assert torch.equal(tiny(tiny.one_hot(classes), mask), tiny(tiny.one_hot(other), mask))


def test_fully_convolutional_along_time(tiny):
    for steps in (32, 128):
        with torch.no_grad():
            out = tiny(tiny.one_hot(torch.zeros(2, 4, steps, dtype=torch.long)), torch.ones(2, 4, steps))
        assert out.shape == (2, 4, steps, tiny.config.n_classes)


def test_annealing_schedule_is_yaos_with_magentas_constants():
    assert annealed_alpha(0, 100) == pytest.approx(0.9)
    assert annealed_alpha(70, 100) == pytest.approx(0.1)
    assert annealed_alpha(99, 100) == pytest.approx(0.1)
    assert annealed_alpha(35, 100) == pytest.approx(0.5)


def test_gibbs_never_changes_given_cells(tiny):
    g = torch.Generator().manual_seed(1)
    classes = torch.randint(0, tiny.config.n_classes, (3, 4, 16))
    redo = torch.zeros(3, 4, 16, dtype=torch.bool)
    redo[:, 1:] = True
    out = gibbs(tiny, classes, redo, steps=6, generator=g)
    assert torch.equal(out[:, 0], classes[:, 0])
    assert not torch.equal(out[:, 1:], classes[:, 1:])


def test_harmonizing_keeps_the_melody_exactly_and_writes_satb(tiny, tmp_path):
    path = tmp_path / "tune.mid"
    midi_of([("", MELODY)], tempo=72.0).write(str(path))
    pieces = tiny.generate(num=2, seed=3, prompt=str(path), gibbs_steps=4)
    assert len(pieces) == 2
    for piece in pieces:
        assert [i.name for i in piece.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
        assert piece.get_tempo_changes()[1][0] == pytest.approx(72.0)
        grid = tiny.tokenizer.encode(piece).numpy()
        want = read_prompt(pretty_midi.PrettyMIDI(str(path)), 1024).grid[0]
        assert np.array_equal(grid[0, :32], want[:32])
        assert grid.shape[1] == 32


def test_a_repeated_melody_note_stays_two_notes(tiny, tmp_path):
    """The grid cannot tell B-B from one long B; the given notes are written as they were struck."""
    path = tmp_path / "repeat.mid"
    tune = [(71, 0, 4), (71, 4, 8), (72, 8, 12), (74, 12, 16)]
    midi_of([("", tune)]).write(str(path))
    piece = tiny.generate(num=1, seed=0, prompt=str(path), gibbs_steps=2)[0]
    step = 60 / 90 / 4
    assert [(n.pitch, round(n.start / step), round(n.end / step)) for n in piece.instruments[0].notes] == tune


def test_a_melody_an_octave_too_high_is_harmonized_in_place(tiny, tmp_path):
    high = [(p + 12, s, e) for p, s, e in MELODY]   # 79..86: above the soprano's 60..81
    path = tmp_path / "high.mid"
    midi_of([("", high)]).write(str(path))
    assert read_prompt(pretty_midi.PrettyMIDI(str(path)), 1024).shift == -12
    piece = tiny.generate(num=1, seed=0, prompt=str(path), gibbs_steps=2)[0]
    assert [(n.pitch) for n in piece.instruments[0].notes] == [p for p, _, _ in high]


def test_several_tracks_keep_every_voice_they_hold(tiny, tmp_path):
    bass = [(48, 0, 16), (43, 16, 32)]
    path = tmp_path / "sb.mid"
    midi_of([("melody", MELODY), ("low line", bass)]).write(str(path))
    prompt = read_prompt(pretty_midi.PrettyMIDI(str(path)), 1024)
    assert prompt.given == (True, False, False, True)   # placed by pitch: soprano and bass
    piece = tiny.generate(num=1, seed=0, prompt=str(path), gibbs_steps=2)[0]
    assert [n.pitch for n in piece.instruments[3].notes] == [48, 43]
    # --rewrite bass redoes the bass and keeps the soprano
    redone = tiny.generate(num=1, seed=0, prompt=str(path), rewrite="b", gibbs_steps=2)[0]
    assert [n.pitch for n in redone.instruments[0].notes] == [p for p, _, _ in MELODY]


@pytest.mark.parametrize("tracks, message", [
    ([("", [(67, 0, 4), (64, 0, 4)])], "two notes at once"),
    ([("", [(67, 0, 4), (69, 4, 8)]), ("", [(60, 0, 4)]), ("", [(55, 0, 4)]), ("", [(50, 0, 4)]),
      ("", [(40, 0, 4)])], "5 tracks"),
    ([("", [(30, 0, 4), (90, 4, 8)])], "do not fit"),
    ([], "no notes"),
])
def test_prompts_that_cannot_be_served_are_refused(tracks, message):
    with pytest.raises(MidiError, match=message):
        read_prompt(midi_of(tracks), 1024)


def test_a_rhythm_finer_than_16ths_is_refused():
    m = midi_of([("", [(67, 0, 4)])])
    m.instruments[0].notes.append(pretty_midi.Note(80, 69, m.instruments[0].notes[0].end + 0.07, 2.0))  # a triplet-ish onset
    with pytest.raises(MidiError, match="between 16th notes"):
        read_prompt(m, 1024)


def test_a_too_long_prompt_is_refused():
    with pytest.raises(MidiError, match="at most 4 bars"):
        read_prompt(midi_of([("", [(67, 0, 80)])]), max_steps=64)


def test_generate_options_are_checked_first(tiny):
    with pytest.raises(ConfigError):
        tiny.generate(num=1, length=0)
    with pytest.raises(ConfigError):
        tiny.generate(num=1, temperature=0)
    with pytest.raises(ConfigError, match="--rewrite"):
        tiny.generate(num=1, length=1, rewrite="piccolo", gibbs_steps=1)


def test_from_scratch_length_in_bars(tiny):
    piece = tiny.generate(num=1, seed=0, length=2, gibbs_steps=2)[0]
    assert len(piece.instruments) == 4
    assert max(n.end for i in piece.instruments for n in i.notes) <= 2 * 4 * 60 / 66 + 1e-6


def test_cli_refuses_a_polyphonic_melody_in_one_line(tmp_path, zoo_cli, tiny):
    folder = tmp_path / "model"
    tiny.save_pretrained(folder)
    tune = tmp_path / "chords.mid"
    midi_of([("", [(67, 0, 4), (64, 0, 4)])]).write(str(tune))
    out = tmp_path / "out.mid"
    r = zoo_cli("generate", folder, "--prompt", tune, "-o", out)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "two notes at once" in r.stderr
    assert not out.exists()


def test_training_on_a_midi_folder_reports_the_held_out_nll(tmp_path, zoo_cli):
    """zoo train coconet --data FOLDER on a tiny config: it trains, and the test split's framewise NLL is
    near the uniform guess of an untrained network (ln 47 = 3.85 nats per cell, x 4 voices per 16th)."""
    import json

    rng = np.random.default_rng(0)
    data = tmp_path / "chorales"
    data.mkdir()
    for i in range(40):   # 4-voice, 2-bar pieces in C major triads; 40 files so that every split gets some
        chords = [rng.choice([[72, 67, 64, 48], [71, 67, 62, 43], [72, 69, 65, 53]]) for _ in range(8)]
        voices = [[(c[v], 4 * k, 4 * k + 4) for k, c in enumerate(chords)] for v in range(4)]
        midi_of(list(zip(["Soprano", "Alto", "Tenor", "Bass"], voices))).write(str(data / f"piece{i:02d}.mid"))
    run = tmp_path / "run"
    r = zoo_cli("train", "coconet", "--data", data, "--out", run, "--steps", "2", "--set", "channels=8",
                "--set", "n_layers=2", "--set", "batch_size=4", "--set", "n_bars=2", timeout=600,
                env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert 4 * 3.0 < summary["test_metrics"]["framewise_nll"] < 4 * 4.5
    assert (run / "final" / "model.safetensors").is_file()


def test_the_registered_builder_gives_zoo_eval_the_split_a_default_trainer_reads(tmp_path, tiny):
    """zoo eval reads the registered data.build_dataset, no Trainer built: the same test windows as a trainer
    with the default config, untransposed; the trainer's train split alone is transposed (its config)."""
    from zoo.config import config_from_dict
    from zoo.registry import get_registry
    from zoo_coconet.train import CoconetTrainer

    rng = np.random.default_rng(1)
    data = tmp_path / "chorales"
    data.mkdir()
    for i in range(30):   # 4-bar pieces: the default window length
        chords = [rng.choice([[72, 67, 64, 48], [71, 67, 62, 43], [72, 69, 65, 53]]) for _ in range(16)]
        voices = [[(c[v], 4 * k, 4 * k + 4) for k, c in enumerate(chords)] for v in range(4)]
        midi_of(list(zip(["Soprano", "Alto", "Tenor", "Bass"], voices))).write(str(data / f"piece{i:02d}.mid"))
    build = get_registry().dataset_builder("coconet")
    split = build(str(data), "test", tiny)
    trainer = CoconetTrainer(tiny, config_from_dict(CoconetTrainer.config_class, dict(CoconetTrainer.defaults)),
                             source=str(data))
    assert len(split) > 0 and split.transpose == 0
    assert np.array_equal(split.grids, trainer.build_dataset(str(data), "test").grids)
    assert trainer.build_dataset(str(data), "train").transpose == trainer.config.transpose > 0
