"""`zoo plugins --check`: every registered class checked against the contract its base class declares."""

from __future__ import annotations

import dataclasses

from zoo.errors import PluginError
from zoo.model import Model
from zoo.registry import Registry
from zoo.tokenizer import Tokenizer
from zoo.trainer import Trainer

_BASES = {"architectures": Model, "tokenizers": Tokenizer, "trainers": Trainer}
_WHAT = {"architectures": "architecture", "tokenizers": "tokenizer", "trainers": "trainer"}


def check(registry: Registry) -> dict[str, list[str]]:
    """Import every registered class and check it; the problems found, by plugin (one bad target hides no other)."""
    problems: dict[str, list[str]] = {}
    for kind, base in _BASES.items():
        for entry in registry.entries[kind].values():
            target = entry.target if isinstance(entry.target, str) else repr(entry.target)
            try:
                obj = entry.load()
            except PluginError as exc:
                cause = exc.__cause__ or exc
                found = [f"cannot import {target} ({type(cause).__name__}: {' '.join(str(cause).split())})"]
            else:
                if isinstance(obj, type) and issubclass(obj, base):
                    found = model_problems(obj) if base is Model else []
                else:
                    found = [f"{target} is not a {base.__module__}.{base.__name__} subclass"]
            for problem in found:
                problems.setdefault(entry.plugin, []).append(f"{_WHAT[kind]} {entry.name!r}: {problem}")
    for entry in registry.entries["pretrained"].values():
        if entry.target.arch not in registry.entries["architectures"]:
            problems.setdefault(entry.plugin, []).append(
                f"pretrained model {entry.name!r}: no installed plugin registers its architecture {entry.target.arch!r}")
    return problems


def model_problems(cls: type[Model]) -> list[str]:
    """What a Model subclass declares that its base's contract does not allow (zoo/model.py lists the members)."""
    out = []
    if not cls.arch:
        out.append("sets no arch")
    if not (isinstance(cls.config_class, type) and dataclasses.is_dataclass(cls.config_class)):
        out.append("config_class must be a dataclass")
    if cls.prompt_role not in Model.PROMPT_ROLES:
        out.append(f"prompt_role must be one of {', '.join(Model.PROMPT_ROLES)}, got {cls.prompt_role!r}")
    stems = cls.optional_state_files
    if not isinstance(stems, tuple) or not all(isinstance(s, str) and s for s in stems):
        out.append("optional_state_files must be a tuple of file stems")
    return out
