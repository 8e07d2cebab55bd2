"""Model base class: an nn.Module with a frozen config, a tokenizer and the save/load contract."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


class Model(nn.Module):
    """Base of every architecture. Subclasses set the class attributes and implement generate()."""

    arch: ClassVar[str] = ""
    arch_version: ClassVar[int] = 1          # bump when the tensor layout or config meaning changes
    min_arch_version: ClassVar[int] = 1      # oldest saved version this code still loads
    config_class: ClassVar[type] = None
    tokenizer_name: ClassVar[str] = ""       # the registered tokenizer built when none is given
    optional_state_files: ClassVar[tuple[str, ...]] = ()
    generate_options: ClassVar[tuple[str, ...]] = ()  # CLI options generate() accepts

    def __init_subclass__(cls, **kwargs):
        # every plugin's generate() gets num and seed checked first (zoo.limits): MuseGAN's
        # generate(num=0 | -1 | 2.5) raised raw torch errors, a huge num or seed exhausted memory
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("generate")
        if own is not None and not getattr(own, "_zoo_checked", False):
            cls.generate = _checked_generate(own)

    def __init__(self, config, tokenizer=None):
        super().__init__()
        if self.config_class is not None and not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        self.config = config
        if tokenizer is None and self.tokenizer_name:
            from zoo.registry import get_registry

            tokenizer = get_registry().tokenizer(self.tokenizer_name)()
        self.tokenizer = tokenizer

    @property
    def device(self) -> torch.device:
        """The device of the first parameter (CPU for a model without parameters)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def num_parameters(self) -> int:
        """Number of parameters in all state files."""
        return sum(p.numel() for m in self.state_files().values() for p in m.parameters())

    def state_files(self) -> dict[str, nn.Module]:
        """File stem -> module whose state_dict is saved as <stem>.safetensors."""
        return {"model": self}

    def generate(self, num: int = 1, seed: int | None = None, **options):
        """Return one PrettyMIDI (num == 1) or a list of them."""
        raise NotImplementedError

    def save_pretrained(self, folder, card: str | None = None, extra_files: dict | None = None):
        """Save atomically in the Hub layout (config.json, safetensors, tokenizer.json, README.md, manifest)."""
        from zoo.checkpoint import save_model

        return save_model(self, folder, card=card, extra_files=extra_files)

    @classmethod
    def from_pretrained(cls, folder, device="auto", dtype=None):
        """Load a saved folder; the architecture comes from its config.json."""
        from zoo.checkpoint import load_model

        model = load_model(folder, device=device, dtype=dtype)
        if not isinstance(model, cls):
            from zoo.errors import CheckpointError

            raise CheckpointError(f"{folder} holds a {model.arch!r} model, not {cls.arch or cls.__name__!r}")
        return model


def _checked_generate(generate):
    """Wrap a plugin's generate() so num and seed are validated (ConfigError) before any work."""
    import functools
    import inspect

    from zoo.limits import check_num, check_seed

    signature = inspect.signature(generate)

    @functools.wraps(generate)
    def checked(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError:
            return generate(self, *args, **kwargs)   # let the plugin's own signature error through
        bound.apply_defaults()
        if "num" in bound.arguments:
            check_num(bound.arguments["num"])
        if "seed" in bound.arguments:
            check_seed(bound.arguments["seed"])
        return generate(self, *args, **kwargs)

    checked._zoo_checked = True
    return checked
