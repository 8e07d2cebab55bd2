"""A model without a tokenizer (tokenizer_name left at ""): the smallest plugin the contract allows, 7 things.

It is created, saved (no tokenizer.json), loaded and generates through the same paths as every model, passes
`zoo plugins --check`, and a model that names a tokenizer still needs its tokenizer.json."""

from __future__ import annotations

from dataclasses import dataclass

import pretty_midi
import pytest
import torch
from torch import nn

import zoo
from zoo import checkpoint, contract, registry
from zoo.errors import CheckpointError
from zoo.testing import cli_in_process


@dataclass(frozen=True)
class DroneConfig:
    pitches: int = 12


class Drone(zoo.Model):
    """Plays one note whose pitch a tiny network picks from the seed; writes its MIDI itself."""

    arch = "drone"
    config_class = DroneConfig

    def __init__(self, config, tokenizer=None):
        super().__init__(config, tokenizer)
        self.logits = nn.Linear(1, config.pitches)

    def generate(self, num=1, seed=None):
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        pieces = []
        for _ in range(num):
            x = torch.randn(1, 1, generator=gen).to(self.device)
            midi = pretty_midi.PrettyMIDI()
            voice = pretty_midi.Instrument(program=0)
            voice.notes.append(pretty_midi.Note(velocity=80, pitch=60 + int(self.logits(x).argmax()), start=0, end=1))
            midi.instruments.append(voice)
            pieces.append(midi)
        return pieces


class DronePlugin:
    @zoo.hookimpl
    def register_architectures(register):
        register("drone", Drone)


@pytest.fixture
def drone():
    registry.register_plugin(DronePlugin, "zoo-drone")
    try:
        yield
    finally:
        registry._EXTRA.remove(("zoo-drone", DronePlugin))
        registry.reset()


def test_a_model_without_a_tokenizer_saves_loads_and_generates(drone, tmp_path, capsys):
    torch.manual_seed(0)
    model = zoo.create("drone")
    assert model.tokenizer is None
    folder = model.save_pretrained(tmp_path / "drone")
    assert not (folder / "tokenizer.json").exists()
    loaded = zoo.load(folder, device="cpu")
    assert loaded.tokenizer is None
    assert torch.equal(loaded.logits.weight, model.logits.weight)
    (a,), (b,) = model.generate(num=1, seed=3), loaded.generate(num=1, seed=3)
    assert a.instruments[0].notes[0].pitch == b.instruments[0].notes[0].pitch
    code, err = cli_in_process(capsys, "generate", folder, "-o", tmp_path / "x.mid", "--seed", 1)
    assert code == 0, err
    assert pretty_midi.PrettyMIDI(str(tmp_path / "x.mid")).instruments[0].notes
    code, err = cli_in_process(capsys, "info", folder)
    assert code == 0, err


def test_the_contract_check_passes_a_model_without_a_tokenizer(drone):
    problems = contract.check(registry.get_registry())
    assert "zoo-drone" not in problems
    assert len(contract.required(trainable=False)) == 7 and "Model.tokenizer_name" in contract.optional()


def test_a_model_that_names_a_tokenizer_still_needs_tokenizer_json(tiny, tmp_path):
    folder = zoo.create("tiny-lm").save_pretrained(tmp_path / "tiny")
    (folder / "tokenizer.json").unlink()
    checkpoint.write_manifest(folder)   # a manifest without it: only the architecture's tokenizer_name can tell
    with pytest.raises(CheckpointError, match="tokenizer.json: missing"):
        zoo.load(folder, device="cpu")


def test_test_items_without_a_tokenizer_must_be_midi(drone):
    from zoo.errors import PluginError
    from zoo.evaluation import held_out_pieces

    model = zoo.create("drone")
    midi = model.generate(num=2, seed=0)
    assert held_out_pieces(model, midi, 2) == midi
    with pytest.raises(PluginError, match="drone: its test items are Tensor, not PrettyMIDI, and it has no tokenizer"):
        held_out_pieces(model, [torch.zeros(3), torch.zeros(3)], 2)
