"""`zoo eval` (generated vs test data, side by side, --json) and `zoo generate --plot/--render/--score`."""

import json
import math
import shutil

import pytest

from zoo import evaluation, metrics
from zoo.errors import ConfigError


@pytest.fixture
def saved(tiny_model, tmp_path):
    return tiny_model.save_pretrained(tmp_path / "model")


def test_evaluate_puts_generated_beside_test_data(tiny, saved):
    res = evaluation.evaluate(str(saved), num=5, device="cpu", batch_size=2, length=8)
    assert res["samples"] == 5 and res["arch"] == "tiny-lm"
    assert res["test_pieces"] == 5   # evenly spaced items of the plugin's test split, decoded by its tokenizer
    assert set(metrics.MIDI_METRICS) <= set(res["table"])
    # the test split of the tiny plugin is rising C-major scales: all in scale, one note at a time
    assert res["table"]["in_scale"]["test"] == 1.0 and res["table"]["polyphony"]["test"] == 1.0
    assert res["table"]["in_scale"]["generated"] <= 1.0
    assert "loss" in res["scores"]   # the plugin's own evaluate() is a row of its own


def test_plugin_metrics_pairs_become_rows_and_nll_gains_bits(tiny, saved, monkeypatch):
    """A trainer's Metrics: a pair is a table row (beside the core's rows), the NLL a score with its bits."""
    from zoo.errors import PluginError
    from zoo_tiny.model import TinyTrainer

    typed = metrics.Metrics(paired={"in_scale": (0.25, 0.5), "own": (1.0, 2.0)}, scores={"ppl": 2.0}, nll=math.log(2))
    monkeypatch.setattr(TinyTrainer, "evaluate", lambda self, dataset: typed)
    res = evaluation.evaluate(str(saved), num=2, device="cpu", batch_size=2, length=4)
    assert res["table"]["own"] == {"generated": 1.0, "test": 2.0}
    assert res["table"]["in_scale"] == {"generated": 0.25, "test": 0.5}   # the plugin's pair wins over the core's
    assert res["scores"] == {"nll": math.log(2), "ppl": 2.0, "nll_bits": pytest.approx(1.0)}
    monkeypatch.setattr(TinyTrainer, "evaluate", lambda self, dataset: {"loss": 2.0})   # a plain mapping: scores
    assert evaluation.evaluate(str(saved), num=2, device="cpu", length=4)["scores"] == {"loss": 2.0}
    monkeypatch.setattr(TinyTrainer, "evaluate", lambda self, dataset: [1.0])
    with pytest.raises(PluginError, match="must return a zoo.metrics.Metrics"):
        evaluation.evaluate(str(saved), num=2, device="cpu", length=4)


def test_plugin_gen_data_keys_become_table_rows():
    res = {"model": "m", "arch": "a", "samples": 2, "test_pieces": 2, "table": {"x": {"generated": 1.0, "test": float("nan")}},
           "scores": {"nll": math.log(2)}}
    lines = evaluation.format_table(res).splitlines()
    assert next(l for l in lines if l.startswith("x ")).split() == ["x", "1.0000", "-"]
    assert next(l for l in lines if l.startswith("nll ")).split() == ["nll", "0.6931"]
    assert evaluation.flat(res) == {"samples": 2, "test_pieces": 2, "gen_x": 1.0, "test_x": None, "nll": math.log(2)}


def cli(capsys, *args):
    """Run the CLI in this process (a subprocess costs seconds of start-up): (exit code, stdout, stderr)."""
    from zoo.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_zoo_eval_cli_prints_a_table_and_writes_json(tiny, saved, capsys, tmp_path):
    code, out, err = cli(capsys, "eval", saved, "--num", 4, "--length", 8, "--device", "cpu", "--json", tmp_path / "e.json")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("4 generated pieces, 4 test pieces")
    header = next(l for l in lines if l.startswith("metric"))
    assert header.split() == ["metric", "generated", "test"]
    row = next(l for l in lines if l.startswith("in_scale "))
    assert row.split()[-1] == "1.0000"
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["samples"] == 4 and data["test_in_scale"] == 1.0 and "gen_pitch_class_entropy" in data and "loss" in data
    code, _, err = cli(capsys, "eval", saved, "--num", 0)
    assert code == 2 and "--num must be a whole number from 1 to" in err


def test_generate_plot_render_score(tiny, saved, capsys, tmp_path):
    args = ["generate", saved, "-o", tmp_path / "g.mid", "--num", 2, "--length", 8, "--seed", 1,
            "--plot", tmp_path / "g.png", "--score", tmp_path / "g.musicxml"]
    if shutil.which("fluidsynth"):
        args += ["--render", tmp_path / "g.wav"]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    made = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    expect = ["g-1.mid", "g-1.musicxml", "g-1.png", "g-2.mid", "g-2.musicxml", "g-2.png"]
    if shutil.which("fluidsynth"):
        expect += ["g-1.wav", "g-2.wav"]
    assert made == sorted(expect)


def test_generate_extras_fail_before_generating(tiny, saved, capsys, tmp_path, monkeypatch):
    code, _, err = cli(capsys, "generate", saved, "-o", tmp_path / "g.mid", "--score", tmp_path / "g.doc")
    assert code == 2 and "sheet music is written as" in err
    code, _, err = cli(capsys, "generate", saved, "-o", tmp_path / "g.mid", "--soundfont", tmp_path / "x.sf2")
    assert code == 2 and "--soundfont is for --render" in err
    code, _, err = cli(capsys, "generate", saved, "-o", tmp_path / "g.mid", "--staves", "4")   # was ignored
    assert code == 2 and err.count("\n") == 1 and "--staves is for --score" in err, err
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = cli(capsys, "generate", saved, "-o", tmp_path / "g.mid", "--render", tmp_path / "g.wav")
    assert code == 2 and "apt-get install fluidsynth" in err
    assert not (tmp_path / "g.mid").exists()


def test_a_plugin_without_a_trainer_or_test_data_gets_the_generated_column(tiny, saved, monkeypatch):
    from zoo.errors import UnknownNameError
    from zoo.registry import Registry

    def no_trainer(self, arch):
        raise UnknownNameError(f"unknown trainer {arch!r}")

    monkeypatch.setattr(Registry, "trainer", no_trainer)
    monkeypatch.setattr(Registry, "dataset_builder", lambda self, arch: None)
    res = evaluation.evaluate(str(saved), num=2, device="cpu", length=4)
    assert res["test_pieces"] == 0 and res["scores"] == {}
    assert math.isnan(res["table"]["in_scale"]["test"]) and res["table"]["in_scale"]["generated"] <= 1.0
    with pytest.raises(ConfigError, match="registers no dataset builder"):
        evaluation.evaluate(str(saved), num=2, device="cpu", data=str(saved), length=4)


@pytest.fixture
def weights_only(tiny):
    """A third-party plugin that ships weights and a dataset builder, but no trainer: architecture tiny-weights
    (the tiny model under another name), whose every split is three windows of a C-major scale."""
    import torch

    from zoo import hookimpl, registry
    from zoo_tiny.model import TinyLM

    class WeightsOnly(TinyLM):
        arch = "tiny-weights"

    calls = []

    def build_dataset(source, split, model):
        calls.append((source, split, model.arch))
        scale = [60, 62, 64, 65, 67, 69, 71, 72, 74, 76]
        return [torch.tensor(scale[i:i + 8]) for i in range(3)]

    class Plugin:
        @hookimpl
        def register_architectures(register):
            register("tiny-weights", WeightsOnly)

        @hookimpl
        def register_datasets(register):
            register("tiny-weights", build_dataset)

    registry.register_plugin(Plugin, "weights-only")
    try:
        yield calls
    finally:
        registry._EXTRA.remove(("weights-only", Plugin))
        registry.reset()


def test_a_weights_only_plugin_with_a_dataset_builder_gets_test_columns_without_a_trainer(weights_only, tmp_path,
                                                                                          monkeypatch, capsys):
    import torch

    import zoo
    from zoo.train import Trainer

    def no_trainer(*args, **kwargs):
        raise AssertionError("zoo eval built a Trainer")

    monkeypatch.setattr(Trainer, "__init__", no_trainer)
    torch.manual_seed(0)
    folder = zoo.create("tiny-weights").save_pretrained(tmp_path / "model")
    assert zoo.info("tiny-weights")["trainer"] is False and zoo.info("tiny-weights")["dataset"] is True
    res = evaluation.evaluate(str(folder), num=2, device="cpu", length=4)
    assert weights_only == [(None, "test", "tiny-weights")]
    assert res["test_pieces"] == 2   # items 0 and 2 of the three, evenly spaced, decoded by the tokenizer
    assert res["table"]["in_scale"]["test"] == 1.0 and res["table"]["polyphony"]["test"] == 1.0
    assert res["scores"] == {}   # no trainer, no evaluate(): only the table
    code, out, _ = cli(capsys, "eval", folder, "--num", 2, "--length", 4, "--device", "cpu", "--json", tmp_path / "e.json")
    assert code == 0 and "2 test pieces" in out, out
    written = json.loads((tmp_path / "e.json").read_text())
    assert written["test_pieces"] == 2 and written["test_in_scale"] == 1.0


def test_the_trainers_evaluate_sees_the_generate_options_zoo_eval_was_given(tiny, saved, monkeypatch):
    """A trainer whose evaluate() generates (the Music Transformer's continuations) decodes as `zoo eval` asks."""
    from zoo_tiny.model import TinyTrainer

    seen = []
    monkeypatch.setattr(TinyTrainer, "evaluate", lambda self, dataset: seen.append(self.generate_options) or {})
    evaluation.evaluate(str(saved), num=2, device="cpu", length=4, temperature=0.5)
    assert seen == [{"length": 4, "temperature": 0.5}]
