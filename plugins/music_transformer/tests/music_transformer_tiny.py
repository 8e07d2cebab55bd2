"""What several Music Transformer test files share: a tiny model whose logits spread like a trained one's."""

from __future__ import annotations

import torch

from zoo_music_transformer.model import MusicTransformer, MusicTransformerConfig


def tiny(attention: str = "relative", block_size: int = 32, n_embd: int = 32) -> MusicTransformer:
    """Two layers and two heads, seeded, in eval mode."""
    torch.manual_seed(0)
    cfg = MusicTransformerConfig(block_size=block_size, n_layer=2, n_head=2, n_embd=n_embd, dropout=0.0,
                                 attention=attention)
    model = MusicTransformer(cfg).eval()
    # logits spread like a trained model's (std ~1.6 rather than ~0.2): greedy choices and top-1 agreement
    # are then decided by real margins, not by near-ties of an untrained head
    torch.nn.init.normal_(model.lm_head.weight, std=0.2)
    return model
