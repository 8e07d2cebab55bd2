"""The plugin contract, counted, and `zoo plugins --check`: every registered class checked against it.

Model, Tokenizer and Trainer declare their REQUIRED and OPTIONAL members on the class; a dataset builder is a
function, build_dataset(source, split, model), registered per architecture. docs/plugins.md's counts are checked against count() by a test.
"""

from __future__ import annotations

import dataclasses

from zoo.errors import PluginError
from zoo.model import Model
from zoo.registry import Registry
from zoo.tokenizer import Tokenizer
from zoo.train import Trainer

TRAINER_REQUIRED = Trainer.REQUIRED
TRAINER_OPTIONAL = Trainer.OPTIONAL
# what a plugin that ships weights to generate from implements, what a tokenizer adds, and what training adds
HOOKS_WEIGHTS = ("register_architectures", "register_pretrained")
HOOKS_TOKENIZER = ("register_tokenizers",)
HOOKS_TRAINING = ("register_trainers", "register_datasets")
CLASSES_WEIGHTS = ("config dataclass", "Model")
CLASSES_TOKENIZER = ("Tokenizer",)
CLASSES_TRAINING = ("Trainer", "build_dataset")   # the class and the registered build_dataset(source, split, model)

_BASES = {"architectures": Model, "tokenizers": Tokenizer, "trainers": Trainer}
_WHAT = {"architectures": "architecture", "tokenizers": "tokenizer", "trainers": "trainer"}


def required(trainable: bool) -> list[str]:
    """Every thing a plugin must write: its hooks, its classes and their required members."""
    out = [*HOOKS_WEIGHTS, *CLASSES_WEIGHTS, *(f"Model.{m}" for m in Model.REQUIRED)]
    if trainable:
        out += [*HOOKS_TRAINING, *CLASSES_TRAINING, *(f"Trainer.{m}" for m in TRAINER_REQUIRED)]
    return out


def tokenizer() -> list[str]:
    """What a plugin whose models read or write tokens adds: the hook, the class, its required members and
    Model.tokenizer_name naming it (counted among the optional members too)."""
    return [*HOOKS_TOKENIZER, *CLASSES_TOKENIZER, *(f"Tokenizer.{m}" for m in Tokenizer.REQUIRED), "Model.tokenizer_name"]


def optional() -> list[str]:
    """Every member a plugin may set or override, each with a default on its base class."""
    return [*(f"Model.{m}" for m in Model.OPTIONAL), *(f"Tokenizer.{m}" for m in Tokenizer.OPTIONAL),
            *(f"Trainer.{m}" for m in TRAINER_OPTIONAL)]


def check(registry: Registry) -> dict[str, list[str]]:
    """Import every registered class and check it; the problems found, by plugin (one bad target hides no other)."""
    problems: dict[str, list[str]] = {}
    checks = {"architectures": model_problems, "tokenizers": tokenizer_problems, "trainers": trainer_problems}
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
                    found = checks[kind](obj)
                else:
                    found = [f"{target} is not a {base.__module__}.{base.__name__} subclass"]
            for problem in found:
                problems.setdefault(entry.plugin, []).append(f"{_WHAT[kind]} {entry.name!r}: {problem}")
    for entry in registry.entries["datasets"].values():
        found = []
        try:
            if not callable(entry.load()):
                found.append(f"{entry.target!r} is not a function build_dataset(source, split, model)")
        except PluginError as exc:
            cause = exc.__cause__ or exc
            found.append(f"cannot import {entry.target} ({type(cause).__name__}: {' '.join(str(cause).split())})")
        if entry.name not in registry.entries["architectures"]:
            found.append(f"no installed plugin registers its architecture {entry.name!r}")
        for problem in found:
            problems.setdefault(entry.plugin, []).append(f"dataset builder {entry.name!r}: {problem}")
    for entry in registry.entries["trainers"].values():
        cls = entry.target
        if (entry.name not in registry.entries["datasets"] and isinstance(cls, type) and issubclass(cls, Trainer)
                and cls.build_dataset is Trainer.build_dataset):
            problems.setdefault(entry.plugin, []).append(
                f"trainer {entry.name!r}: has no data: register a build_dataset with the register_datasets hook, "
                f"or override build_dataset()")
    for entry in registry.entries["pretrained"].values():
        if entry.target.arch not in registry.entries["architectures"]:
            problems.setdefault(entry.plugin, []).append(
                f"pretrained model {entry.name!r}: no installed plugin registers its architecture {entry.target.arch!r}")
    return problems


def _overrides(cls: type, base: type, names) -> list[str]:
    """The methods among `names` that cls leaves as its base's (which raise NotImplementedError)."""
    return [n for n in names if callable(getattr(base, n, None)) and getattr(cls, n) is getattr(base, n)]


def model_problems(cls: type[Model]) -> list[str]:
    """What a Model subclass declares that its base's contract does not allow."""
    out = [f"does not implement {n}()" for n in _overrides(cls, Model, Model.REQUIRED)]
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
    out = [f"does not implement {n}()" for n in _overrides(cls, Tokenizer, Tokenizer.REQUIRED)]
    if not cls.name:
        out.append("sets no name")
    return out


def trainer_problems(cls: type[Trainer]) -> list[str]:
    """What a Trainer subclass leaves out of its contract, or declares in a shape the core cannot use."""
    out = [f"does not implement {n}()" for n in _overrides(cls, Trainer, TRAINER_REQUIRED)]
    select_by = cls.select_by
    if select_by is not None and not (isinstance(select_by, tuple) and len(select_by) == 2
                                      and isinstance(select_by[0], str) and select_by[1] in ("min", "max")):
        out.append(f"select_by must be (logged metric, 'min' or 'max'), got {select_by!r}")
    if not isinstance(cls.defaults, dict):
        out.append("defaults must be a dict of TrainConfig fields")
    return out
