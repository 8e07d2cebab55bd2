"""zoo.load runs one way: resolve, read the folder once, verify only the files it loads, build, load.

Counted on the tiny fixture with an optional state file (a critic that generating does not need), by
wrapping the functions that read, hash and resolve: each small file is read once, the architecture is
resolved once, and a generate-only load never hashes or reads the critic."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from torch import nn

import zoo
from zoo import checkpoint, loader, registry, safeio
from zoo.errors import CheckpointError
from zoo.testing import cli_in_process


def _critic_plugin():
    from zoo_tiny.model import TinyLM

    class TinyWithCritic(TinyLM):
        """A tiny melody model with a critic kept in its own, optional state file (as a GAN's is)."""

        arch = "tiny-critic"
        optional_state_files = ("critic",)

        def __init__(self, config, tokenizer=None):
            super().__init__(config, tokenizer)
            self.critic = nn.Linear(config.n_embd, 1)

        def state_files(self):
            lm = nn.ModuleDict({"embed": self.embed, "head": self.head})
            return {"model": lm, "critic": self.critic}

    class Plugin:
        @zoo.hookimpl
        def register_architectures(register):
            register("tiny-critic", TinyWithCritic)

    return Plugin


@pytest.fixture
def critic_folder(tiny, tmp_path):
    plugin = _critic_plugin()
    registry.register_plugin(plugin, "tiny-critic-plugin")
    try:
        torch.manual_seed(0)
        yield zoo.create("tiny-critic").save_pretrained(tmp_path / "tiny-critic")
    finally:
        registry._EXTRA.remove(("tiny-critic-plugin", plugin))
        registry.reset()


@pytest.fixture
def counted(monkeypatch):
    """Counters of what a load does: files read whole (by name), files hashed, tensors files loaded,
    architectures resolved. The process-wide digest memo is bypassed, so every hash is a real read."""
    reads, hashes, tensors, archs = Counter(), Counter(), Counter(), Counter()
    read_bytes, load_tensors, architecture = loader.read_bytes, loader.load_tensors, registry.Registry.architecture

    def counting_read(path, *a, **k):
        reads[Path(path).name] += 1
        return read_bytes(path, *a, **k)

    def counting_hash(path):
        hashes[Path(path).name] += 1
        return checkpoint.sha256_file(path)

    def counting_load(path, *a, **k):
        tensors[Path(path).name] += 1
        return load_tensors(path, *a, **k)

    def counting_architecture(self, name):
        archs[name] += 1
        return architecture(self, name)

    monkeypatch.setattr(loader, "read_bytes", counting_read)
    monkeypatch.setattr(safeio, "read_bytes", counting_read)   # what the loader reads through safeio.read_json
    monkeypatch.setattr(loader, "file_digest", counting_hash)
    monkeypatch.setattr(checkpoint, "file_digest", counting_hash)
    monkeypatch.setattr(loader, "load_tensors", counting_load)
    monkeypatch.setattr(registry.Registry, "architecture", counting_architecture)
    return reads, hashes, tensors, archs


def test_generate_only_load_reads_each_file_once_and_never_the_critic(critic_folder, counted):
    reads, hashes, tensors, archs = counted
    model = loader.load(str(critic_folder), device="cpu", generate_only=True)
    assert reads == {"manifest.json": 1, "config.json": 1, "tokenizer.json": 1}
    assert hashes == {"model.safetensors": 1}            # config/tokenizer are checked from the bytes read
    assert tensors == {"model.safetensors": 1}
    assert archs == {"tiny-critic": 1}
    assert all(p.is_meta for p in model.critic.parameters())


def test_full_load_hashes_and_reads_the_critic_too(critic_folder, counted):
    reads, hashes, tensors, archs = counted
    model = loader.load(str(critic_folder), device="cpu")
    assert reads == {"manifest.json": 1, "config.json": 1, "tokenizer.json": 1}
    assert hashes == {"model.safetensors": 1, "critic.safetensors": 1}
    assert tensors == {"model.safetensors": 1, "critic.safetensors": 1}
    assert archs == {"tiny-critic": 1}
    assert not any(p.is_meta for p in model.critic.parameters())


def test_zoo_generate_reads_config_once(critic_folder, counted, tmp_path, monkeypatch, capsys):
    """The command line checks the model's options from the same read as the load (no second config.json)."""
    reads, hashes, _, archs = counted
    monkeypatch.chdir(tmp_path)
    code, _ = cli_in_process(capsys, "generate", str(critic_folder), "-o", "x.mid", "--seed", "1", "--length", "4",
                      "--threads", "1")
    assert code == 0 and (tmp_path / "x.mid").is_file()
    assert reads == {"manifest.json": 1, "config.json": 1, "tokenizer.json": 1}
    assert hashes == {"model.safetensors": 1} and archs == {"tiny-critic": 1}


def test_a_changed_critic_fails_the_full_load_only(critic_folder):
    """Only what is loaded is verified: a generate-only load does not read the critic, a full load refuses it."""
    path = critic_folder / "critic.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    loader.load(str(critic_folder), device="cpu", generate_only=True)
    with pytest.raises(CheckpointError, match="critic.safetensors: sha256 does not match"):
        loader.load(str(critic_folder), device="cpu")


@pytest.mark.parametrize("name", ["config.json", "tokenizer.json"])
def test_a_changed_small_file_is_refused_from_the_bytes_read(critic_folder, name):
    path = critic_folder / name
    path.write_text(path.read_text().replace("\n", " \n", 1))
    with pytest.raises(CheckpointError, match=f"{name}: sha256 does not match"):
        loader.read_folder(critic_folder)


def test_the_model_folder_value_holds_everything_but_the_tensors(critic_folder):
    saved = loader.read_folder(critic_folder)
    assert saved.cls.arch == "tiny-critic" and saved.state_stems == {"model", "critic"}
    assert set(saved.manifest) >= {"config.json", "tokenizer.json", "model.safetensors", "critic.safetensors"}
    assert loader.load_model(saved, device="cpu").config == saved.config
