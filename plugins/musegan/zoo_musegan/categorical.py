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
                     straight_through: bool = False, sample: bool = True, noise: str = "cell",
                     temperature: float = 1.0, hold: bool = False) -> torch.Tensor:
    """Logits (B, tracks, bars, steps, pitches + 1) -> a +1/-1 roll (..., pitches): one pitch or a rest (the
    last logit) per voice and step: the largest logit, or with sample a draw from softmax(logits / temperature)
    by the Gumbel-max trick, with fresh noise per cell or (noise="voice") one noise vector per piece and voice,
    shared by all its steps. With straight_through, the gradient is that of softmax(noisy / tau), noisy being
    the tempered logits plus the noise (so tau acts on logits / temperature); the forward value is the hard
    one-hot either way.

    With hold, the logits have one more column after the rest, "hold": the voice plays at that 16th what it
    played at the 16th before (a held note, or a rest that goes on); the piece's first 16th cannot hold. The
    straight-through gradient then follows the same recurrence on the soft choices."""
    noisy = logits.float()
    if sample:
        noisy = noisy / temperature
        shape = logits.shape if noise == "cell" else (*logits.shape[:2], *[1] * (logits.dim() - 3), logits.shape[-1])
        noisy = noisy + gumbel_noise(shape, generator, logits.device)
    if hold:
        first = torch.zeros(noisy.shape[-3:], dtype=torch.bool, device=noisy.device)
        first[0, 0, -1] = True
        noisy = noisy.masked_fill(first, float("-inf"))
    choice = noisy.argmax(dim=-1)
    if hold:
        choice = resolve_holds(choice, logits.shape[-1] - 1)
    hard = F.one_hot(choice, logits.shape[-1] - int(hold)).to(logits.dtype)
    if straight_through:
        soft = torch.softmax(noisy / tau, dim=-1)
        soft = resolve_soft_holds(soft).to(logits.dtype) if hold else soft.to(logits.dtype)
        hard = hard - soft.detach() + soft
    return 2 * hard[..., :-1] - 1                          # the rest column is dropped: a rest is all -1


def resolve_holds(choice: torch.Tensor, hold_index: int) -> torch.Tensor:
    """Choices (B, tracks, bars, steps) with hold_index meaning "as before" -> the pitch or rest each 16th plays."""
    flat = choice.flatten(-2)
    t = torch.arange(flat.shape[-1], device=flat.device)
    latest = torch.where(flat != hold_index, t, 0).cummax(dim=-1).values   # the last 16th that chose for itself
    return flat.gather(-1, latest).view(choice.shape)


def resolve_soft_holds(soft: torch.Tensor) -> torch.Tensor:
    """Probabilities (B, tracks, bars, steps, pitches + 2) -> (..., pitches + 1): what each 16th plays if hold
    (the last column) passes on the 16th before, p_t = q_t + hold_t * p_(t-1); 32 small steps, cheap."""
    flat = soft.flatten(2, 3)
    played = [flat[:, :, 0, :-1]]
    for t in range(1, flat.shape[2]):
        played.append(flat[:, :, t, :-1] + flat[:, :, t, -1:] * played[-1])
    return torch.stack(played, dim=2).view(*soft.shape[:-1], soft.shape[-1] - 1)
