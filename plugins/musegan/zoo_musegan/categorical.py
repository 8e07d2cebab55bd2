"""MuseGAN's categorical outputs: per voice and 16th, one pitch or a rest, chosen from the generator's logits.

`output="onehot"` plays the largest logit; `output="gumbel"` draws from softmax(logits / T) with the Gumbel-max
trick. In training the critic judges exactly that one-hot, with a straight-through softmax gradient
(Jang et al. 2017; the "deterministic binary neurons" of Dong & Yang, ISMIR 2018).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gumbel_noise(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Standard Gumbel noise -log(-log(U)); seeded draws happen on the CPU (the same music on every device)."""
    if generator is None:
        u = torch.rand(shape, device=device)
    else:
        u = torch.rand(shape, generator=generator).to(device)
    tiny = torch.finfo(u.dtype).tiny
    return -torch.log((-torch.log(u.clamp(tiny, 1.0))).clamp_min(tiny))


def categorical_roll(logits: torch.Tensor, tau: float = 1.0, generator: torch.Generator | None = None,
                     straight_through: bool = False, sample: bool = True, temperature: float = 1.0) -> torch.Tensor:
    """Logits (B, tracks, bars, steps, pitches + 1) -> a +1/-1 roll (..., pitches): one pitch or a rest (the
    last logit) per voice and step: the largest logit, or with sample a draw from softmax(logits / temperature)
    by the Gumbel-max trick, with fresh noise per cell. With straight_through, the gradient is that of
    softmax(noisy / tau), noisy being the tempered logits plus the noise (so tau acts on logits / temperature);
    the forward value is the hard one-hot either way."""
    noisy = logits.float()
    if sample:
        noisy = noisy / temperature + gumbel_noise(logits.shape, generator, logits.device)
    hard = F.one_hot(noisy.argmax(dim=-1), logits.shape[-1]).to(logits.dtype)
    if straight_through:
        soft = torch.softmax(noisy / tau, dim=-1).to(logits.dtype)
        hard = hard - soft.detach() + soft
    return 2 * hard[..., :-1] - 1                          # the rest column is dropped: a rest is all -1
