"""Each process's random states (torch, CUDA, numpy, Python) as tensors, saved per rank so a resume is bit-identical."""

from __future__ import annotations

import math
import random
import sys

import numpy as np
import torch
import torch.distributed as dist


def rng_state(device: torch.device) -> dict:
    """This process's random states as tensors: torch's (and its GPU's), numpy's and Python's."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    _, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
             "numpy_pos": torch.tensor([pos, has_gauss], dtype=torch.int64),
             "numpy_gauss": torch.tensor([gauss], dtype=torch.float64),
             "python_state": torch.tensor(internal, dtype=torch.int64),
             "python_gauss": torch.tensor([math.nan if gauss_next is None else gauss_next], dtype=torch.float64)}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what rng_state() returned."""
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    pos, has_gauss = (int(v) for v in state["numpy_pos"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_gauss"][0])))
    gauss = float(state["python_gauss"][0])
    random.setstate((3, tuple(int(v) for v in state["python_state"]), None if math.isnan(gauss) else gauss))


def gather_rng(trainer) -> list[dict]:
    """Every rank's random states, for rank 0 to write (so saving needs no shared disk)."""
    mine = rng_state(trainer.device)
    if trainer.world_size == 1:
        return [mine]
    ranks: list[dict] = [{} for _ in range(trainer.world_size)]
    for key, value in mine.items():   # the same keys and shapes on every rank; all_gather: NCCL and gloo have it
        parts = [torch.empty_like(value, device=trainer._comm_device) for _ in ranks]
        dist.all_gather(parts, value.to(trainer._comm_device))
        for r, part in enumerate(parts):
            ranks[r][key] = part.cpu()
    return ranks


def seed_new_rank(trainer, saved_world: int, step: int) -> None:
    """A rank the checkpoint has no state for: a fresh stream of its own, never a copy of another rank's noise."""
    print(f"zoo: warning: rank {trainer.rank}: the checkpoint holds the random states of {saved_world} process(es); "
          f"this one starts a new seeded stream, so the run is not bit-identical to one without the change",
          file=sys.stderr)
    seed_everything((trainer.config.seed * 7919 + trainer.rank) * 1_000_003 + step)


def seed_everything(seed: int) -> None:
    """The same seed for torch, numpy (which takes 0..2**32-1) and Python's random."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
