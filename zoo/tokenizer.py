"""Tokenizer base: MIDI <-> tensors, saved as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

from zoo.errors import ConfigError


class Tokenizer:
    """Turns a PrettyMIDI into a tensor and back. Subclasses keep their params JSON-serialisable.

    The contract: a plugin's Tokenizer sets the REQUIRED members and may override the OPTIONAL ones."""

    REQUIRED: ClassVar[tuple[str, ...]] = ("name", "encode", "decode")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("vocab_size", "to_dict", "from_dict")

    name: ClassVar[str] = ""                 # the registered name, saved in tokenizer.json
    vocab_size: int | None = None            # the number of token ids (None: not a token model)

    def encode(self, midi):
        """PrettyMIDI -> torch.Tensor."""
        raise NotImplementedError

    def decode(self, tokens):
        """torch.Tensor -> PrettyMIDI. Must never crash on anything the model can emit."""
        raise NotImplementedError

    def to_dict(self) -> dict:
        """The constructor parameters, as JSON types."""
        return {}

    @classmethod
    def from_dict(cls, params: dict) -> "Tokenizer":
        """Rebuild from to_dict()'s output."""
        if not isinstance(params, dict):
            raise ConfigError(f"bad {cls.name} tokenizer parameters: 'params' must be an object, got {params!r:.80}")
        try:
            return cls(**params)
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, ZeroDivisionError) as exc:
            raise ConfigError(f"bad {cls.name} tokenizer parameters: {str(exc)[:200]}") from None

    def save(self, path) -> None:
        """Write tokenizer.json."""
        Path(path).write_text(json.dumps({"tokenizer": self.name, "params": self.to_dict()}, indent=2) + "\n")
