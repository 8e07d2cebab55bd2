"""Model base class: an nn.Module with a frozen config, a tokenizer and the save/load contract."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from zoo.errors import CheckpointError, ConfigError, PluginError


@dataclass(frozen=True)
class GenerateOption:
    """One keyword of a model's generate(), declared as data: `zoo generate` makes it a flag, `zoo info` lists it."""

    name: str                       # generate()'s keyword; its flag is --name with "_" written "-"
    type: type = str                # int, float, bool or str (a file path is a str)
    default: object = None          # what generate() uses when the option is not given (None: "none"/"all")
    help: str = ""
    min: float | None = None        # inclusive range of a number, checked before any work
    max: float | None = None
    flag: str | None = None         # bool options only: one more switch that sets the opposite of the default
    midi_file: bool = False         # a str that names a MIDI file: checked (exists, is MIDI) before the model loads
    choices: tuple | None = None    # str options only: the values it takes, checked before any work

    def __post_init__(self):
        if self.type not in (int, float, bool, str):
            raise TypeError(f"GenerateOption {self.name!r}: type must be int, float, bool or str")
        if self.flag is not None and self.type is not bool:
            raise TypeError(f"GenerateOption {self.name!r}: only a bool option has a flag")
        if self.choices is not None and (self.type is not str or not self.choices):
            raise TypeError(f"GenerateOption {self.name!r}: only a str option has choices, and at least one")

    @property
    def cli(self) -> str:
        """The command-line flag: --top-k for top_k, or the declared switch of a bool."""
        return self.flag or _flag(self.name)

    def check(self, value, label: str | None = None) -> None:
        """Check a value against the range, choices or MIDI file declared; `label` names the option in errors."""
        if self.choices is not None and value is not None and value not in self.choices:
            raise ConfigError(f"{label or self.name} must be one of {', '.join(self.choices)}, got {value!r}")
        if self.midi_file and isinstance(value, (str, os.PathLike)):
            from zoo.midi import check_midi_file

            check_midi_file(value)
        if value is None or self.type not in (int, float):
            return
        from zoo.limits import MAX_WHOLE_NUMBER

        kind = int if self.type is int else (int, float)
        top = self.max if self.max is not None or self.type is not int else MAX_WHOLE_NUMBER   # no int unbounded
        ok = isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or (self.min is not None and value < self.min) or (top is not None and value > top):
            lo = "" if self.min is None else f" from {self.min:g}"
            hi = "" if top is None else f" to {top:g}"
            kind = "a whole number" if self.type is int else "a number"
            raise ConfigError(f"{label or self.name} must be {kind}{lo}{hi}, got {value!r}")

    def to_dict(self) -> dict:
        """JSON-ready, for `zoo info`."""
        return {**asdict(self), "type": self.type.__name__, "flag": self.cli}


class Model(nn.Module):
    """Base of every architecture: a plugin's Model sets the REQUIRED members and may set or override the OPTIONAL
    ones, each declared below with its default; nothing else is read from it."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("arch", "config_class", "generate")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("tokenizer_name", "arch_version", "min_arch_version", "generate_options", "state_files",
                                           "optional_state_files", "score_layouts", "prompt_role", "card_metadata", "music_metrics")

    arch: ClassVar[str] = ""                 # the architecture's registered name
    arch_version: ClassVar[int] = 1          # bump when the tensor layout or config meaning changes
    min_arch_version: ClassVar[int] = 1      # oldest saved version this code still loads
    config_class: ClassVar[type] = None      # a frozen dataclass of JSON types: config.json's "config"
    # the registered tokenizer zoo.create / zoo train build for it, saved as tokenizer.json; "" (the default): the
    # model needs none (it writes its MIDI itself), and its folders have no tokenizer.json
    tokenizer_name: ClassVar[str] = ""
    # state_files() stems that may be absent (a GAN's critic): loaded when present, never by zoo generate
    optional_state_files: ClassVar[tuple[str, ...]] = ()
    generate_options: ClassVar[tuple[GenerateOption, ...]] = ()  # generate()'s keywords besides num and seed
    # how `zoo generate --score` engraves this model's music: layout name -> staves, top to bottom, each
    # (staff name, clef, track indices); clef is "treble", "treble8vb" or "bass", two tracks share a staff as
    # two voices. The first layout is the default; none: one staff per track, clefs chosen by pitch.
    score_layouts: ClassVar[dict[str, tuple[tuple[str, str, tuple[int, ...]], ...]]] = {}
    # what a `prompt` generate option is to the output: "continued" (the piece goes on after it: `--plot`
    # shades it and marks where the new music starts) or "kept" (its notes are parts of the piece, e.g. a
    # melody harmonized: nothing is marked)
    prompt_role: ClassVar[str] = "continued"
    # the model card's YAML metadata (as huggingface_hub's ModelHubMixin takes it): {"license": "mit", "tags": [...],
    # "datasets": [...]}; zoo train and zoo release write it into every card of this architecture
    card_metadata: ClassVar[dict] = {}
    PROMPT_ROLES: ClassVar[tuple[str, ...]] = ("continued", "kept")   # the values prompt_role may take

    def __init_subclass__(cls, **kwargs):
        # every plugin's generate() gets num, seed and its declared options checked (zoo.limits) before any work
        super().__init_subclass__(**kwargs)
        if not all(isinstance(o, GenerateOption) for o in cls.generate_options):
            raise TypeError(f"{cls.__name__}.generate_options must hold zoo.model.GenerateOption objects")
        own = cls.__dict__.get("generate")
        if own is not None and not getattr(own, "_zoo_checked", False):
            cls.generate = _checked_generate(own)

    def __init__(self, config, tokenizer=None):
        # the tokenizer comes from outside (zoo.load: tokenizer.json; zoo.create, zoo train: new_tokenizer), so a
        # model can be built with any tokenizer; a plugin may fall back to its own when none is given
        super().__init__()
        if self.config_class is not None and not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        """The device of the first parameter not on meta (a generate-only load leaves parts there); else CPU."""
        return next((p.device for p in self.parameters() if not p.is_meta), torch.device("cpu"))

    def num_parameters(self) -> int:
        """Number of parameters in all state files."""
        return sum(p.numel() for m in self.state_files().values() for p in m.parameters())

    def state_files(self) -> dict[str, nn.Module]:
        """File stem -> module whose state_dict is saved as <stem>.safetensors."""
        return {"model": self}

    @classmethod
    def check_options(cls, options: dict, flags: bool = False) -> dict:
        """Every option declared and in range (a ConfigError naming it as a --flag with flags=True); returns them."""
        declared = {o.name: o for o in cls.generate_options}
        label = _flag if flags else str
        unknown = sorted(set(options) - set(declared))
        if unknown:
            takes = ", ".join(o.cli if flags else o.name for o in cls.generate_options)
            raise ConfigError(f"{cls.arch or cls.__name__} does not take {', '.join(map(label, unknown))}; it takes: "
                              f"{takes or ('only --num/--seed' if flags else 'no options')}")
        for name, value in options.items():
            declared[name].check(value, label=label(name))
        return dict(options)

    def generate(self, num: int = 1, seed: int | None = None, **options) -> list:
        """A list of `num` PrettyMIDI pieces (same seed, same pieces); `options`: the declared generate_options."""
        raise NotImplementedError

    def music_metrics(self, pieces: list) -> dict[str, float]:
        """This kind of music's own metrics of a list of pieces, generated or real, for `zoo eval`'s table."""
        return {}

    def save_pretrained(self, folder, card: str | None = None, extra_files: dict | None = None,
                        overwrite: bool = False):
        """Save atomically in the Hub layout; an existing folder is replaced only as zoo.outputs allows."""
        if not isinstance(folder, (str, os.PathLike)) or not str(folder).strip():
            raise ConfigError(f"save_pretrained needs a folder to write (a path), got {folder!r}")
        from zoo.loader import save_model

        return save_model(self, folder, card=card, extra_files=extra_files, overwrite=overwrite)

    @classmethod
    def from_pretrained(cls, name_or_path, device="auto", dtype=None, revision: str | None = None):
        """zoo.load(name_or_path, ...), which must give a model of this class."""
        from zoo.loader import load

        model = load(name_or_path, device=device, dtype=dtype, revision=revision)
        if not isinstance(model, cls):
            raise CheckpointError(f"{name_or_path} holds a {model.arch!r} model, not {cls.arch or cls.__name__!r}")
        return model

    def push_to_hub(self, repo_id: str, **kwargs):
        """zoo.push_to_hub(self, repo_id, **kwargs): publish this model to the Hugging Face Hub."""
        from zoo import hub

        return hub.push_to_hub(self, repo_id, **kwargs)


def _checked_generate(generate):
    """Wrap a plugin's generate(): num, seed and options checked before any work, the result after it."""
    import functools
    import inspect

    from zoo.limits import check_num, check_seed

    signature = inspect.signature(generate)
    var_keyword = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)

    @functools.wraps(generate)
    def checked(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as exc:   # an unknown or doubled keyword: the same error whichever plugin it reaches
            takes = ", ".join(["num", "seed", *(o.name for o in type(self).generate_options)])
            raise ConfigError(f"{type(self).__name__}.generate(): {exc}; it takes {takes}") from None
        bound.apply_defaults()
        if "num" in bound.arguments:
            check_num(bound.arguments["num"])
        if "seed" in bound.arguments:
            check_seed(bound.arguments["seed"])
        declared = {o.name for o in type(self).generate_options}
        given = {**bound.arguments.get(var_keyword, {}), **bound.arguments}
        type(self).check_options({name: value for name, value in given.items() if name in declared})
        return _check_pieces(generate(self, *args, **kwargs), bound.arguments.get("num"), type(self).__name__)

    checked._zoo_checked = True
    return checked


def _check_pieces(pieces, num, cls: str) -> list:
    """generate()'s result, if it is a list of `num` PrettyMIDI (any number when num is not a parameter)."""
    import pretty_midi

    ok = isinstance(pieces, list) and all(isinstance(p, pretty_midi.PrettyMIDI) for p in pieces)
    if not ok or (isinstance(num, int) and len(pieces) != num):
        got = f"a list of {len(pieces)}" if isinstance(pieces, list) else type(pieces).__name__
        raise PluginError(f"{cls}.generate(num={num}) returned {got}; it must return a list of {num} "
                          f"pretty_midi.PrettyMIDI objects (a list also when num is 1)")
    return pieces


def _flag(name: str) -> str:
    """The command-line flag of a generate() keyword: --top-k for top_k."""
    return "--" + name.replace("_", "-")
