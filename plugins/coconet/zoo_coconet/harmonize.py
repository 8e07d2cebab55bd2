"""Harmonizing held-out soprano lines: the model writes alto, tenor and bass under Bach's own soprano.

Measures what a user of harmonization cares about: the chorale table of the results, how many given
notes changed (must be none), and how often the model chose Bach's own note (a 16th-level agreement).
"""

from __future__ import annotations

import numpy as np
import torch

from zoo_chorales.metrics import chorale_metrics

from .sampling import gibbs


def harmonize_sopranos(model, windows: torch.Tensor, gibbs_steps: int = 32, temperature: float = 0.75,
                       seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """windows (N, voices, T) class indices -> the same with every voice but the soprano rewritten."""
    generator = torch.Generator(device=model.device).manual_seed(seed)
    out = []
    for start in range(0, len(windows), batch_size):
        batch = windows[start:start + batch_size].to(model.device)
        redo = torch.ones_like(batch, dtype=torch.bool)
        redo[:, 0] = False
        out.append(gibbs(model, batch, redo, gibbs_steps, temperature, generator).cpu())
    return torch.cat(out)


def harmonization_scores(model, windows: torch.Tensor, **options) -> dict[str, float]:
    """The chorale table of harmonized test sopranos (harmonized_*), the given notes changed, and the share
    of alto, tenor and bass 16ths where the model chose Bach's own pitch (or rest)."""
    result = harmonize_sopranos(model, windows, **options)
    grids = model.classes_to_grid(result).numpy()
    bach = model.classes_to_grid(windows).numpy()
    out = {f"harmonized_{k}": v for k, v in chorale_metrics(grids).items()}
    out["harmonized_melody_cells_changed"] = float((grids[:, 0] != bach[:, 0]).sum())
    out["harmonized_bach_agreement"] = float(np.mean(grids[:, 1:] == bach[:, 1:]))
    return out
