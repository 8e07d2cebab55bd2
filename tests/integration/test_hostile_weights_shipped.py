"""Hostile weights folders across the shipped plugins: a folder of one architecture named as another's.

The core's own cases, with the zoo-tiny fixture alone, are in tests/test_hostile_weights.py.
"""

from __future__ import annotations

import json

import pytest

import zoo
from zoo.checkpoint import write_manifest
from zoo.errors import CheckpointError, ConfigError


def _edit_config(folder, fn) -> None:
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(fn(data)))
    write_manifest(folder)  # a consistent but wrong folder: the manifest agrees with the bad file


def _load(folder):
    return zoo.load(str(folder), device="cpu")


def test_config_for_another_installed_arch(monkeypatch, tiny_path, tmp_path):
    """A music-transformer config.json over tiny-lm files, with every plugin installed."""
    from zoo import registry

    monkeypatch.syspath_prepend(str(tiny_path))
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    registry.reset()
    try:
        folder = zoo.create("tiny-lm").save_pretrained(tmp_path / "m")
        _edit_config(folder, lambda c: {**c, "arch": "music-transformer"})
        with pytest.raises(ConfigError, match=r"config.json: unknown music-transformer config key\(s\) context"):
            _load(folder)
        # the config fits the other arch, but the tensors do not: named, on one line
        mt = zoo.create("music-transformer", block_size=8, n_layer=1, n_head=1, n_embd=8)
        mt_folder = mt.save_pretrained(tmp_path / "mt")
        (mt_folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes())
        write_manifest(mt_folder)
        with pytest.raises(CheckpointError, match=r"model.safetensors does not fit the model \(missing: .*unexpected: "
                                                  r"embed.weight, head.bias, head.weight"):
            _load(mt_folder)
    finally:
        registry.reset()
