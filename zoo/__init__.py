"""musezoo: a plugin-style model zoo for symbolic music generation.

`import zoo` stays light (no torch): heavy modules load on first use.
"""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ZooError
from zoo.hookspecs import hookimpl
from zoo.registry import PretrainedSpec
from zoo.version import __version__

__all__ = ["load", "create", "list_models", "info", "push_to_hub", "Model", "Tokenizer", "Trainer", "TrainConfig",
           "PretrainedSpec", "ZooError", "hookimpl", "__version__"]


def list_models(pattern: str = "*") -> list[str]:
    """Registered pretrained model names matching an fnmatch pattern, sorted."""
    from zoo.registry import get_registry

    if not isinstance(pattern, str):
        from zoo.errors import ConfigError

        raise ConfigError(f"pattern must be a string such as '*' or 'musegan*', got {pattern!r}")

    return get_registry().names("pretrained", pattern)


def info(name: str) -> dict:
    """What the zoo knows about a pretrained name or an architecture."""
    from zoo.registry import get_registry, local_folder

    _check_name(name, "name")
    registry = get_registry()
    if name in registry.entries["pretrained"]:
        spec = registry.pretrained(name)
        local = local_folder(spec)  # where zoo.load finds it without the Hub (None: the Hub, or nowhere)
        out = {"kind": "pretrained", "name": spec.name, "arch": spec.arch, "description": spec.description,
               "license": spec.license, "data": spec.data, "files": spec.files, "hub_repo": spec.hub_repo,
               "revision": spec.revision, "plugin": spec.plugin, "local_path": str(local) if local else None}
        return {**out, **_model_facts(registry, spec.arch, local)}
    if "/" in str(name) and Path(name).is_dir() and (Path(name) / "config.json").is_file():   # a run's final/
        from zoo.checkpoint import read_config

        arch = read_config(name)["arch"]
        return {"kind": "folder", "name": str(name), "arch": arch, "local_path": str(Path(name).resolve()),
                **_model_facts(registry, arch, Path(name))}
    if name not in registry.entries["architectures"] and ("architectures", name) not in registry.conflicts:
        from zoo.errors import UnknownNameError
        from zoo.registry import _unknown

        # suggest from both tables: "musegan-bahc" is closest to the pretrained "musegan-bach", not the arch
        known = [*registry.entries["pretrained"], *registry.entries["architectures"]]
        raise UnknownNameError(_unknown("model or architecture", name, known) + " (see zoo list)")
    entry = registry.get("architectures", name)
    return {"kind": "architecture", "name": name, "class": entry.target if isinstance(entry.target, str)
            else f"{entry.target.__module__}:{entry.target.__qualname__}", "plugin": entry.plugin,
            "trainer": name in registry.entries["trainers"], "dataset": name in registry.entries["datasets"],
            **_model_facts(registry, name, None),
            **_defaults(registry, name)}


def _defaults(registry, arch: str) -> dict:
    """What `zoo.create(arch)` and `zoo train arch` use when nothing is set: the model config's and the
    training config's defaults (the plugin's own included); empty where the plugin cannot be imported."""
    from zoo.config import config_from_dict, to_dict
    from zoo.errors import ZooError

    out = {}
    try:
        out["config_defaults"] = to_dict(registry.architecture(arch).config_class())
        if arch in registry.entries["trainers"]:
            trainer = registry.trainer(arch)
            out["train_defaults"] = to_dict(config_from_dict(trainer.config_class, dict(trainer.defaults)))
    except (ZooError, TypeError):   # a config without defaults for every field: nothing to show
        pass
    return out


def _model_facts(registry, arch: str, folder) -> dict:
    """Parameters, sizes and card metrics of a local folder (read from headers, nothing built), and the
    generate options of its architecture; a plugin that cannot be imported only loses the options."""
    from zoo.errors import ZooError
    from zoo.modelinfo import folder_facts, generate_options

    facts = folder_facts(folder) if folder is not None else {}
    try:
        facts["generate_options"] = generate_options(registry.architecture(arch))
        facts["generate_always"] = ["--num (default 1)", "--seed (default: random)"]
    except ZooError as exc:
        facts["generate_options"] = f"unknown: {exc}"
    return facts


def create(arch: str, **config_overrides):
    """A fresh, untrained model of an architecture, with config overrides."""
    from zoo.loader import create

    return create(arch, **config_overrides)


def load(name_or_path: str, device="auto", dtype=None, revision: str | None = None):
    """Load a pretrained model by name, local folder or hf://org/repo[@rev], straight onto `device`."""
    from zoo.loader import load

    return load(name_or_path, device=device, dtype=dtype, revision=revision)


def _check_name(name, what: str) -> None:
    """A model name or path must be a non-empty string (or path): None raised TypeError, "" meant '.'."""
    import os

    from zoo.errors import ConfigError

    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ConfigError(f"{what} must be a pretrained name, a folder or hf://org/repo, got {name!r}")


def push_to_hub(model_or_path, repo_id: str, **kwargs):
    """Publish a model (object, folder or pretrained name) to the Hugging Face Hub."""
    from zoo import hub

    return hub.push_to_hub(model_or_path, repo_id, **kwargs)


def __getattr__(name: str):
    # Model, Tokenizer and Trainer import torch, so they load only when asked for.
    if name == "Model":
        from zoo.model import Model

        return Model
    if name == "Tokenizer":
        from zoo.tokenizer import Tokenizer

        return Tokenizer
    if name == "Trainer":
        from zoo.train import Trainer

        return Trainer
    if name == "TrainConfig":
        from zoo.train import TrainConfig

        return TrainConfig
    raise AttributeError(f"module 'zoo' has no attribute {name!r}")
