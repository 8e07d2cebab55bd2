"""Blocked Gibbs sampling with annealed masking (Coconet, section 4; Yao et al. 2014).

The first step erases every cell to be written and draws them all given the cells that were given.
Each later step erases each of those cells with probability alpha, asks the model for all erased cells
at once, and draws them independently. alpha falls linearly from alpha_max to alpha_min over the first
eta of the steps, then stays: early steps redraw most notes, late steps polish a few given all the
others. Cells that were given never change. The schedule's constants are those of Magenta's released
Coconet sampler (lib_sampling.YaoSchedule: pmax 0.9, pmin 0.1, alpha 0.7).
"""

from __future__ import annotations

import torch


def annealed_alpha(step: int, steps: int, alpha_max: float = 0.9, alpha_min: float = 0.1, eta: float = 0.7) -> float:
    """Yao et al.'s schedule: max(alpha_min, alpha_max - step / (eta * steps) * (alpha_max - alpha_min))."""
    return max(alpha_min, alpha_max - step / (eta * steps) * (alpha_max - alpha_min))


@torch.inference_mode()
def gibbs(model, classes: torch.Tensor, redo: torch.Tensor, steps: int, temperature: float = 1.0,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """classes (B, voices, T) long: the given cells hold their notes (the rest are ignored);
    redo (B, voices, T) bool: the cells to write. Returns the completed classes."""
    classes = classes.clone()
    redo = redo.to(classes.device)
    if not bool(redo.any()):
        return classes
    for step in range(steps):
        if step == 0:
            erase = redo
        else:
            alpha = annealed_alpha(step, steps)
            draw = torch.rand(redo.shape, generator=generator, device=classes.device)
            erase = redo & (draw < alpha)
            if not bool(erase.any()):
                continue
        logits = model(model.one_hot(classes), erase.float()) / temperature
        probs = torch.softmax(logits.float(), dim=-1)
        flat = probs.reshape(-1, probs.shape[-1])
        drawn = torch.multinomial(flat, 1, generator=generator).view(classes.shape)
        classes = torch.where(erase, drawn, classes)
    return classes
