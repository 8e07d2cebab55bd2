"""The plugin contract, counted, and `zoo plugins --check`: every registered class checked against it.

Model, Tokenizer and Trainer declare their REQUIRED and OPTIONAL members on the class; a dataset builder is a
function, build_dataset(source, split, model), registered per architecture. A test checks docs/plugins.md's counts.
"""

from __future__ import annotations

import dataclasses

from zoo.errors import PluginError
from zoo.model import Model
from zoo.registry import Registry
from zoo.tokenizer import Tokenizer
from zoo.train import Trainer


def required(trainable: bool) -> list[str]:
    """Every thing a plugin must write: its hooks, its classes and their required members."""
    out = ["register_architectures", "register_pretrained", "config dataclass", "Model",
           *(f"Model.{m}" for m in Model.REQUIRED)]
    if trainable:   # the Trainer class and the registered build_dataset(source, split, model)
        out += ["register_trainers", "register_datasets", "Trainer", "build_dataset",
                *(f"Trainer.{m}" for m in Trainer.REQUIRED)]
    return out


def tokenizer() -> list[str]:
    """What a tokenizer adds: hook, class, members, and Model.tokenizer_name (counted among the optional too)."""
    return ["register_tokenizers", "Tokenizer", *(f"Tokenizer.{m}" for m in Tokenizer.REQUIRED), "Model.tokenizer_name"]


def optional() -> list[str]:
    """Every member a plugin may set or override, each with a default on its base class."""
    return [*(f"Model.{m}" for m in Model.OPTIONAL), *(f"Tokenizer.{m}" for m in Tokenizer.OPTIONAL),
            *(f"Trainer.{m}" for m in Trainer.OPTIONAL)]


def check(registry: Registry) -> dict[str, list[str]]:
    """Import every registered class and check it; the problems found, by plugin (one bad target hides no other)."""
    problems: dict[str, list[str]] = {}

    def report(entry, what: str, found: list[str]) -> None:
        if found:
            problems.setdefault(entry.plugin, []).extend(f"{what} {entry.name!r}: {problem}" for problem in found)

    for kind, what, base, judge in (("architectures", "architecture", Model, model_problems),
                                    ("tokenizers", "tokenizer", Tokenizer, tokenizer_problems),
                                    ("trainers", "trainer", Trainer, trainer_problems)):
        for entry in registry.entries[kind].values():
            target = _target(entry)   # as registered: loading replaces a "module:attr" string by its object
            obj, found = _load(entry)
            if not found and not (isinstance(obj, type) and issubclass(obj, base)):
                found = [f"{target} is not a {base.__module__}.{base.__name__} subclass"]
            report(entry, what, found or judge(obj))
    for entry in registry.entries["datasets"].values():
        obj, found = _load(entry)
        if not found and not callable(obj):
            found.append(f"{entry.target!r} is not a function build_dataset(source, split, model)")
        if entry.name not in registry.entries["architectures"]:
            found.append(f"no installed plugin registers its architecture {entry.name!r}")
        report(entry, "dataset builder", found)
    for entry in registry.entries["trainers"].values():
        cls = entry.target
        if (entry.name not in registry.entries["datasets"] and isinstance(cls, type) and issubclass(cls, Trainer)
                and cls.build_dataset is Trainer.build_dataset):
            report(entry, "trainer", ["has no data: register a build_dataset with the register_datasets hook, "
                                      "or override build_dataset()"])
    for entry in registry.entries["pretrained"].values():
        if entry.target.arch not in registry.entries["architectures"]:
            report(entry, "pretrained model", [f"no installed plugin registers its architecture {entry.target.arch!r}"])
    return problems


def _target(entry) -> str:
    return entry.target if isinstance(entry.target, str) else repr(entry.target)


def _load(entry) -> tuple[object, list[str]]:
    """The entry's object, or None and the one problem saying why it cannot be imported."""
    try:
        return entry.load(), []
    except PluginError as exc:
        cause = exc.__cause__ or exc
        return None, [f"cannot import {_target(entry)} ({type(cause).__name__}: {' '.join(str(cause).split())})"]


def _unimplemented(cls: type, base: type) -> list[str]:
    """The base's REQUIRED methods that cls leaves as the base's (which raise NotImplementedError)."""
    return [f"does not implement {n}()" for n in base.REQUIRED
            if callable(getattr(base, n, None)) and getattr(cls, n) is getattr(base, n)]


def model_problems(cls: type[Model]) -> list[str]:
    """What a Model subclass declares that its base's contract does not allow."""
    out = _unimplemented(cls, Model)
    if not cls.arch:
        out.append("sets no arch")
    if not (isinstance(cls.config_class, type) and dataclasses.is_dataclass(cls.config_class)):
        out.append("config_class must be a dataclass")
    if cls.prompt_role not in Model.PROMPT_ROLES:
        out.append(f"prompt_role must be one of {', '.join(Model.PROMPT_ROLES)}, got {cls.prompt_role!r}")
    stems = cls.optional_state_files
    if not isinstance(stems, tuple) or not all(isinstance(s, str) and s for s in stems):
        out.append("optional_state_files must be a tuple of file stems")
    if not isinstance(cls.score_layouts, dict) or not all(
            isinstance(staves, tuple) and all(isinstance(s, tuple) and len(s) == 3 for s in staves)
            for staves in cls.score_layouts.values()):
        out.append("score_layouts must map a layout name to a tuple of (staff name, clef, track indices)")
    if not (isinstance(cls.arch_version, int) and 1 <= cls.min_arch_version <= cls.arch_version):
        out.append("needs 1 <= min_arch_version <= arch_version")
    return out


def tokenizer_problems(cls: type[Tokenizer]) -> list[str]:
    """What a Tokenizer subclass leaves out of its contract."""
    return _unimplemented(cls, Tokenizer) + ([] if cls.name else ["sets no name"])


def trainer_problems(cls: type[Trainer]) -> list[str]:
    """What a Trainer subclass leaves out of its contract, or declares in a shape the core cannot use."""
    out = _unimplemented(cls, Trainer)
    select_by = cls.select_by
    if select_by is not None and not (isinstance(select_by, tuple) and len(select_by) == 2
                                      and isinstance(select_by[0], str) and select_by[1] in ("min", "max")):
        out.append(f"select_by must be (logged metric, 'min' or 'max'), got {select_by!r}")
    if not isinstance(cls.defaults, dict):
        out.append("defaults must be a dict of TrainConfig fields")
    return out
