"""musezoo: a plugin-style model zoo for symbolic music generation (`import zoo` is light: no torch)."""

from __future__ import annotations

from pathlib import Path

from zoo.errors import ConfigError, UnknownNameError, ZooError
from zoo.hookspecs import hookimpl
from zoo.registry import PretrainedSpec
from zoo.version import __version__

__all__ = ["load", "create", "list_models", "info", "push_to_hub", "Model", "Tokenizer", "Trainer", "TrainConfig",
           "PretrainedSpec", "ZooError", "hookimpl", "__version__"]


def list_models(pattern: str = "*") -> list[str]:
    """Registered pretrained model names matching an fnmatch pattern, sorted."""
    from zoo.registry import get_registry

    if not isinstance(pattern, str):
        raise ConfigError(f"pattern must be a string such as '*' or 'musegan*', got {pattern!r}")

    return get_registry().names("pretrained", pattern)


def info(name: str) -> dict:
    """What the zoo knows about a pretrained name or an architecture."""
    from zoo.registry import _unknown, check_name, get_registry, local_folder

    check_name(name, "name")
    registry = get_registry()
    if registry.has("pretrained", name):   # two plugins' pretrained name: their conflict, not "unknown"
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
    if not registry.has("architectures", name):
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
    """The model and training config defaults `zoo.create(arch)` and `zoo train arch` use; {} without the plugin."""
    from zoo.config import config_from_dict, to_dict

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
    """A local folder's facts (zoo.modelinfo) and its architecture's generate options (not without the plugin)."""
    from zoo.modelinfo import folder_facts

    facts = folder_facts(folder) if folder is not None else {}
    try:
        facts["generate_options"] = [o.to_dict() for o in registry.architecture(arch).generate_options]
        facts["generate_always"] = ["--num (default 1)", "--seed (default: random)"]
    except ZooError as exc:
        facts["generate_options"] = f"unknown: {exc}"
    return facts


# these import torch or the Hub client, so they load only when asked for: zoo.load is zoo.loader.load
_LAZY = {"load": "zoo.loader", "create": "zoo.loader", "push_to_hub": "zoo.hub", "Model": "zoo.model",
         "Tokenizer": "zoo.tokenizer", "Trainer": "zoo.train", "TrainConfig": "zoo.train"}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
