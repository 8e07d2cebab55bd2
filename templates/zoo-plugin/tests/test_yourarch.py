"""The plugin's own tests. Run `pytest` after `pip install -e .` (the plugin must be installed:
musezoo finds it through its entry point, exactly as users will)."""

import json
import os
import subprocess
import sys

import pretty_midi
import pytest
import torch

import zoo
from zoo.errors import CheckpointError, ConfigError, DataError
from zoo.train import train
from zoo_yourarch.data import build_dataset
from zoo_yourarch.tokenizer import HOLD, REST, MelodyTokenizer


def test_the_plugin_is_registered():
    info = zoo.info("yourarch")
    assert info["plugin"] == "musezoo-yourarch"
    assert info["trainer"] is True and info["dataset"] is True


def test_registration_imports_no_torch():
    # `zoo list` imports every plugin's plugin.py: it must stay light.
    # (zoo.info would import the model class, and torch with it, to list its generate options)
    code = ("import sys, zoo.registry; assert 'yourarch' in zoo.registry.get_registry().entries['architectures']; "
            "assert 'torch' not in sys.modules, 'plugin.py imported torch'")
    env = {**os.environ, "ZOO_PLUGINS": "musezoo-yourarch"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


def test_tokenizer_round_trip():
    tok = MelodyTokenizer()
    melody = [60, HOLD, 62, REST, 64, HOLD, HOLD, 67]
    midi = tok.decode(torch.tensor(melody))
    assert [n.pitch for n in midi.instruments[0].notes] == [60, 62, 64, 67]
    assert tok.encode(midi).tolist() == melody


def test_tokenizer_decodes_anything():
    tok = MelodyTokenizer()
    midi = tok.decode(torch.tensor([HOLD, -5, 999, REST, HOLD, 61]))   # never raises
    assert [n.pitch for n in midi.instruments[0].notes] == [61]
    assert tok.encode(pretty_midi.PrettyMIDI()).numel() == 0
    short = pretty_midi.PrettyMIDI()
    short.instruments.append(pretty_midi.Instrument(0))
    short.instruments[0].notes.append(pretty_midi.Note(80, 64, 1.0, 1.05))  # shorter than a step
    assert tok.encode(short).tolist() == [REST, REST, REST, REST, 64]


def test_a_folder_of_midi_files_is_split_three_ways(tmp_path):
    tok = MelodyTokenizer()
    for i in range(20):
        tok.decode(torch.tensor([60 + i % 12, HOLD, 64, REST])).write(str(tmp_path / f"song{i}.mid"))
    model = zoo.create("yourarch", context=4)
    sizes = {split: len(build_dataset(str(tmp_path), split, model)) for split in ("train", "valid", "test")}
    assert sum(sizes.values()) == 20 * 3   # one window per token; the trailing rest is not encoded
    assert sizes["train"] > sizes["valid"] + sizes["test"] > 0
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .mid files"):
        build_dataset(str(tmp_path / "empty"), "train", model)


def test_bad_config_is_a_clear_error():
    with pytest.raises(ConfigError, match="context"):
        zoo.create("yourarch", context=0)


def test_generate_is_seeded_midi():
    torch.manual_seed(0)
    model = zoo.create("yourarch", context=4)
    a, b = model.generate(num=2, seed=3, length=16)
    again = model.generate(num=2, seed=3, length=16)[0]
    assert isinstance(a, pretty_midi.PrettyMIDI) and isinstance(b, pretty_midi.PrettyMIDI)
    assert [(n.pitch, n.start) for n in a.instruments[0].notes] == \
           [(n.pitch, n.start) for n in again.instruments[0].notes]


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = zoo.create("yourarch", n_hidden=16)
    model.save_pretrained(tmp_path / "m")
    loaded = zoo.load(str(tmp_path / "m"), device="cpu")
    assert loaded.config == model.config
    x = torch.randint(0, 130, (2, model.config.context))
    assert torch.equal(loaded(x), model.eval()(x))


def test_a_newer_arch_version_is_refused(tmp_path):
    folder = zoo.create("yourarch").save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["arch_version"] += 1
    (folder / "config.json").write_text(json.dumps(config))
    from zoo.checkpoint import write_manifest

    write_manifest(folder)
    with pytest.raises(CheckpointError, match="arch_version"):
        zoo.load(str(folder), device="cpu")


def test_training_lowers_the_loss(tmp_path):
    final = train("yourarch", out=tmp_path / "run", values={"steps": 30, "seed": 0}, device="cpu")
    first, *_, last = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert last["loss"] < first["loss"]
    assert zoo.load(str(final), device="cpu").generate(seed=0, length=8)[0].instruments[0].notes
