"""The yourarch model: predicts the next melody token from the previous `context` tokens.

Deliberately tiny (an embedding and a two-layer MLP over a fixed window, as in
Bengio et al. 2003) so that the template trains in seconds on a CPU. Replace the
layers with your architecture; keep the class attributes and generate()'s signature.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from zoo.errors import ConfigError
from zoo.model import GenerateOption, Model
from zoo_yourarch.tokenizer import REST, VOCAB_SIZE


@dataclass(frozen=True)
class MelodyConfig:
    """Hyperparameters: frozen, JSON types only, saved as config.json["config"]."""

    context: int = 8        # tokens the model looks back at
    n_embd: int = 32
    n_hidden: int = 128
    dropout: float = 0.0

    def __post_init__(self):
        if min(self.context, self.n_embd, self.n_hidden) < 1:
            raise ConfigError("context, n_embd and n_hidden must be at least 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


class MelodyModel(Model):
    arch = "yourarch"                 # the name plugin.py registers
    arch_version = 1                  # bump when saved tensors or config fields change meaning
    config_class = MelodyConfig
    tokenizer_name = "yourarch-melody"
    # generate()'s options as data: `zoo generate` makes them flags (--top-k), `zoo info` lists them
    generate_options = (
        GenerateOption("length", int, 64, "melody length in steps", min=1, max=100_000),
        GenerateOption("temperature", float, 1.0, "sampling temperature", min=1e-3, max=1e3),
        GenerateOption("top_k", int, None, "sample from the k most likely tokens (default: all)", min=1, max=1_000_000),
    )

    def __init__(self, config: MelodyConfig, tokenizer=None):
        super().__init__(config, tokenizer)
        self.embed = nn.Embedding(VOCAB_SIZE, config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.context * config.n_embd, config.n_hidden),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.n_hidden, VOCAB_SIZE),
        )

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(batch, context) token ids -> (batch, vocab) logits of the next token."""
        return self.mlp(self.embed(idx).flatten(1))

    @torch.no_grad()
    def generate(self, num: int = 1, seed: int | None = None, length: int = 64,
                 temperature: float = 1.0, top_k: int | None = None):
        """Sample `num` melodies of `length` steps, as a list of `num` PrettyMIDI; the same seed gives the same music."""
        if length < 1 or not temperature > 0 or (top_k is not None and top_k < 1):
            raise ConfigError("length and top_k must be at least 1 and temperature positive")
        self.eval()
        g = torch.Generator(device=self.device)
        if seed is None:
            g.seed()            # fresh randomness
        else:
            g.manual_seed(seed)
        # Start from silence: training windows are padded with REST the same way (data.py).
        seq = torch.full((num, self.config.context), REST, dtype=torch.long, device=self.device)
        for _ in range(length):
            logits = self(seq[:, -self.config.context:]).float() / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=g)
            seq = torch.cat([seq, nxt], dim=1)
        return [self.tokenizer.decode(s) for s in seq[:, self.config.context:].cpu()]
