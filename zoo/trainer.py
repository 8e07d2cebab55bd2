"""The training engine: one loop for every plugin.

A plugin's Trainer subclass supplies its data, optimizers and step; the core owns
device placement, bf16 autocast on CUDA, the LR schedule, clipping, accumulation,
seeding, evaluation, atomic checkpoints, --resume, torchrun/DDP, progress and logs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import random
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist

from zoo.checkpoint import load_tensors, save_tensors, verify, write_manifest
from zoo.config import config_from_dict, parse_overrides, to_dict, valid_keys
from zoo.outputs import atomic_folder
from zoo.errors import CheckpointError, ConfigError, DataError, PluginError
from zoo.safeio import read_json, write_text_atomic
from zoo.version import __version__


@dataclass(frozen=True)
class TrainConfig:
    """Training settings shared by every plugin. Plugins subclass it to add their own fields."""

    steps: int = 1000
    batch_size: int = 32            # global batch (split across torchrun processes)
    lr: float = 3e-4
    schedule: str = "cosine"        # "constant" or "cosine" (after linear warmup)
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1       # cosine floor, as a fraction of lr
    grad_clip: float = 1.0          # max global grad norm; 0 turns clipping off
    grad_accum: int = 1             # micro-batches per optimizer step (single-loss steps only)
    seed: int = 0
    amp: bool = True                # bf16 autocast on CUDA, and on CPUs where it pays (AMX); fp32 elsewhere
    log_every: int = 0              # plain log line on stderr every N steps; 0 = off
    metrics_every: int = 10         # a metrics.jsonl line every N steps
    eval_every: int = 0             # evaluate on the valid split every N steps; 0 = only at the end
    ckpt_every: int = 500           # checkpoint every N steps (and always at the end)
    keep_checkpoints: int = 3       # newest K checkpoints kept
    # data-loader worker processes per torchrun process; 0 = load in the main process; -1 = auto: 2 on a GPU,
    # 0 on a CPU, where loading costs under 1 % of a step and workers only compete with it for the cores
    num_workers: int = -1
    distributed: str = "ddp"        # under torchrun: "ddp" (replicated weights) or "fsdp" (sharded weights, fully_shard)
    init: str = ""                  # start from a saved model's weights (name, folder or hf://): fine-tuning

    def __post_init__(self):
        positive = ("steps", "batch_size", "grad_accum", "metrics_every", "ckpt_every", "keep_checkpoints")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("warmup_steps", "log_every", "eval_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if self.grad_clip < 0:
            raise ConfigError("grad_clip must be >= 0 (0 turns clipping off)")
        if not -1 <= self.num_workers <= 64:
            raise ConfigError(f"num_workers must be -1 (auto) or 0..64, got {self.num_workers}")
        if self.distributed not in ("ddp", "fsdp"):
            raise ConfigError(f"distributed must be 'ddp' or 'fsdp', got {self.distributed!r}")
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("min_lr_ratio must be between 0 and 1")
        from zoo import limits

        # every whole number has an upper bound (a plugin's own fields too): grad_accum=10**9 never finished a step.
        # numpy's seeding takes 0..2**32-1: -1 or 2**32 was a traceback after the data load
        limits.check_whole_numbers(self, {"seed": (0, limits.MAX_SEED), "steps": (1, limits.MAX_STEPS),
                                          "batch_size": (1, limits.MAX_BATCH),
                                          "grad_accum": (1, limits.MAX_GRAD_ACCUM),
                                          "keep_checkpoints": (1, limits.MAX_KEEP_CHECKPOINTS)})


class Trainer:
    """Base class of a plugin's training step. See docs/training.md and docs/plugins.md.

    The step follows one of two protocols, chosen by `manual_optimization` (as in Lightning):

    - False (the default): training_step returns {"loss": tensor with grad, ...logs}; the core does
      backward, gradient accumulation (grad_accum), clipping and the step of the one optimizer.
    - True: training_step calls self.optimize(name, loss) for every update (a GAN: the critic's, then
      the generator's) and returns only logs. grad_accum must be 1.

    Anything else (a loss without a gradient, two optimizers with a returned loss, a manual step
    that never calls optimize) is a PluginError, never a silent step that trains nothing.
    """

    config_class: ClassVar[type] = TrainConfig
    defaults: ClassVar[dict] = {}   # the plugin's TrainConfig defaults, e.g. {"lr": 1e-3}
    manual_optimization: ClassVar[bool] = False
    # the model card's YAML metadata this plugin knows: {"license": "mit", "tags": [...], "datasets": [...]}
    card_metadata: ClassVar[dict] = {}

    def __init__(self, model, config: TrainConfig, source: str | None = None, device="cpu"):
        self.model = model
        self.config = config
        self.source = source
        self.device = torch.device(device)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        self._loop = None
        self._optimize_calls = 0
        # the generate options `zoo eval` was given (e.g. a decoding precision), for an evaluate() that generates
        self.generate_options: dict = {}

    # ---- what a plugin implements -------------------------------------------------
    def build_dataset(self, source: str | None, split: str):
        """A map-style Dataset for 'train', 'valid' or 'test' (source None = the embedded data)."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict:
        """Name -> optimizer. One for a language model; e.g. 'critic' and 'generator' for a GAN."""
        return {"main": torch.optim.AdamW(self.model.parameters(), lr=self.config.lr)}

    def training_step(self, batch, step: int) -> dict:
        """One optimizer step: return {'loss': tensor, ...logs}, or (manual_optimization) call
        self.optimize() and return logs. Log values may be tensors: the core converts them only when it logs."""
        raise NotImplementedError

    def evaluate(self, dataset) -> dict:
        """Metrics on held-out data (optional). Under torchrun every process calls it: use eval_batches()
        and reduce_sum() to share the work, or compute on the whole dataset in each process."""
        return {}

    def card_sections(self, summary: dict) -> dict[str, str]:
        """The plugin's own sections of the model card (title -> markdown), added to the core's (zoo.card): a
        title Data, Training, Metrics or Limitations adds to that section. `summary` is what training measured."""
        return {}

    # ---- helpers a step uses ------------------------------------------------------
    @property
    def precision(self) -> str:
        """What autocast() does on this device, in words (recorded in run.json and the card)."""
        from zoo.device import cpu_bf16_pays

        if not self.config.amp:
            return "fp32 (amp off)"
        if self.device.type == "cuda":
            return "bf16 autocast (CUDA)"
        if self.device.type == "cpu":
            return cpu_bf16_pays()[1]
        return f"fp32 (no autocast on {self.device.type})"

    def autocast(self):
        """bf16 autocast when amp is on and it pays (CUDA, or a CPU with AMX); a no-op elsewhere.
        Parameters, gradients and optimizer state stay fp32 either way."""
        if self.precision.startswith("bf16"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def optimize(self, name: str, loss: torch.Tensor):
        """(manual_optimization) zero_grad, backward, clip, step of optimizer `name`. Under torchrun,
        DDP averages the gradients during backward. Returns the grad norm as a tensor (no host sync)."""
        if not self.manual_optimization:
            raise PluginError(f"{type(self).__name__}.training_step called self.optimize(); set "
                              f"manual_optimization = True on the trainer, or return {{'loss': loss}} for the core to step")
        if name not in self.optimizers:
            raise PluginError(f"self.optimize({name!r}): no such optimizer; configure_optimizers() "
                              f"returned {', '.join(self.optimizers)}")
        _check_loss(loss, f"the loss passed to self.optimize({name!r})", type(self).__name__)
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self._optimize_calls += 1
        return self._finish_step(opt)

    def next_batch(self):
        """Another batch of the training data, on self.device (for steps that need several)."""
        return _to_device(self._loop.next_batch(), self.device)

    def eval_batches(self, dataset, batch_size: int):
        """Batches of `dataset` on self.device, in order: under torchrun (ddp) this process's share only
        (examples rank, rank + N, ...). Sum what you measure and combine the sums with reduce_sum()."""
        indices = range(len(dataset))
        if self._shards_eval:
            indices = indices[self.rank::self.world_size]
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size)
        for batch in loader:
            yield _to_device(batch, self.device)

    def reduce_sum(self, *values) -> list[float]:
        """Each value summed over the processes that shared eval_batches() (itself in one process)."""
        totals = torch.tensor([float(v) for v in values], dtype=torch.float64)
        if self._shards_eval:
            totals = totals.to(self._comm_device)
            dist.all_reduce(totals)
        return totals.tolist()

    @property
    def _shards_eval(self) -> bool:
        # with fsdp every forward all-gathers weights, a collective: all processes must run the same
        # forwards, so each evaluates every batch (and nothing needs summing)
        return self.world_size > 1 and self.config.distributed == "ddp"

    @property
    def _comm_device(self) -> torch.device:
        """Where collectives' tensors live: the GPU for NCCL, the CPU for gloo."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _finish_step(self, opt):
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        norm = 0.0
        if self.config.grad_clip > 0 and params:
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)   # a tensor: no host sync
            norm = _full(norm)   # fsdp: the norm is a DTensor; every rank gathers it here, not only rank 0 when logging
        opt.step()
        return norm


def _check_loss(loss, what: str, trainer: str) -> None:
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        got = "a tensor without a gradient (detached, or computed under no_grad)" if isinstance(loss, torch.Tensor) \
            else f"{type(loss).__name__}"
        raise PluginError(f"{trainer}: {what} is {got}; it must be a tensor that requires grad, or nothing would "
                          f"be trained. A step that optimizes itself sets manual_optimization = True and calls "
                          f"self.optimize(name, loss)")


def _full(t):
    """An ordinary tensor for a possibly sharded one (fsdp's DTensor; a collective then), else t itself."""
    full_tensor = getattr(t, "full_tensor", None)
    return full_tensor() if full_tensor is not None else t


def _shard_like(current, full: torch.Tensor):
    """`full` cut to this process's shard of `current` when that is a DTensor (fsdp), else `full` as is."""
    if not hasattr(current, "device_mesh") or full.dim() == 0:
        return full
    from torch.distributed.tensor import distribute_tensor

    # every process read the whole tensor from the checkpoint: each keeps its slice, no communication
    return distribute_tensor(full.to(current.device), current.device_mesh, current.placements, src_data_rank=None)


def _distribute(trainer: Trainer) -> None:
    """Under torchrun, hand every trained network (each of model.state_files(), e.g. a GAN's generator and
    critic separately) to PyTorch: composable DDP (replicate: bucketed all-reduce overlapped with backward,
    the double backward of a gradient penalty included) or FSDP2 (fully_shard: weights, gradients and
    optimizer state sharded). Both change the modules in place, so a plugin's step and the checkpoint
    names stay what they are in one process. Must run before configure_optimizers (fsdp swaps parameters)."""
    if trainer.world_size == 1:
        return
    for module in trainer.model.state_files().values():
        if not any(p.requires_grad for p in module.parameters()):
            continue
        if trainer.config.distributed == "fsdp":
            from torch.distributed.fsdp import fully_shard

            # each block of a ModuleList (a transformer's layers) is its own unit: only one block's
            # weights are gathered at a time, which is what lets a model outgrow one GPU
            for sub in list(module.modules()):
                if isinstance(sub, torch.nn.ModuleList):
                    for block in sub:
                        if any(p.requires_grad for p in block.parameters()):
                            fully_shard(block)
            fully_shard(module)
        else:
            from torch.distributed._composable.replicate import replicate

            kwargs = {"device_id": trainer.device} if trainer.device.type == "cuda" else {}
            # gradient_as_bucket_view: gradients live in DDP's buckets, no second copy of them
            replicate(module, gradient_as_bucket_view=True, **kwargs)
            # build DDP now (a collective: it broadcasts rank 0's weights) rather than at the first forward,
            # which under sharded evaluation may come on some ranks only
            replicate.state(module).lazy_init()


def _set_grad_sync(trainer: Trainer, sync: bool) -> None:
    """Skip (or restore) DDP's/FSDP's gradient reduction: the micro-batches before the last accumulate locally."""
    if trainer.world_size == 1:
        return
    for module in trainer.model.state_files().values():
        if hasattr(module, "set_requires_gradient_sync"):
            module.set_requires_gradient_sync(sync)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base LR at a step: linear warmup, then constant or cosine to min_lr_ratio."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class _GlobalBatches(torch.utils.data.Sampler):
    """This rank's slice of every global batch, from (epoch, position) on, for ever. Epoch e's order is
    randperm(seed, e) and rank r takes the r-th 1/N of each global batch, so N processes together see
    exactly the batches one process would. Items are (epoch, index): a dataset copied into a worker
    process learns its epoch from them (set_epoch), not from the main process."""

    def __init__(self, n: int, config: TrainConfig, rank: int, world: int, epoch: int, position: int):
        self.n, self.config, self.rank, self.world = n, config, rank, world
        self.epoch, self.position = epoch, position

    def __iter__(self):
        b, local = self.config.batch_size, self.config.batch_size // self.world
        epoch, position = self.epoch, self.position
        while True:
            g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g)
            for pos in range(position, self.n // b):
                ids = order[pos * b:(pos + 1) * b][self.rank * local:(self.rank + 1) * local]
                yield [(epoch, int(i)) for i in ids]
            epoch, position = epoch + 1, 0


class _EpochItems(torch.utils.data.Dataset):
    """dataset[(epoch, i)] is dataset[i] as it is in that epoch (set_epoch, for random crops)."""

    def __init__(self, dataset):
        self.dataset, self.epoch = dataset, None

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        epoch, i = key
        if epoch != self.epoch and hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)
        self.epoch = epoch
        return self.dataset[i]


class _DataLoop:
    """Seeded, resumable, sharded batches through a DataLoader (worker processes, pinned memory on CUDA).
    (epoch, position) count global batches handed to the step, not what the workers prefetched, so a
    checkpoint resumes at the next unseen batch whatever the number of processes or workers."""

    def __init__(self, dataset, config: TrainConfig, rank: int, world: int, epoch=0, position=0, device="cpu"):
        self.dataset, self.config, self.rank, self.world = dataset, config, rank, world
        self.epoch, self.position = epoch, position
        self.device = torch.device(device)
        if config.batch_size % world:
            raise ConfigError(f"batch_size {config.batch_size} must be divisible by the {world} torchrun processes")
        self.per_batch = len(dataset) // config.batch_size
        if self.per_batch == 0:
            raise DataError(f"the training data has {len(dataset)} examples, fewer than one batch of "
                            f"{config.batch_size}; use a smaller --batch-size or more data")
        self._batches = None

    def next_batch(self):
        if self.position >= self.per_batch:
            self.epoch, self.position = self.epoch + 1, 0
        if self._batches is None:
            self._batches = iter(self._loader())
        self.position += 1
        return next(self._batches)

    def _loader(self):
        sampler = _GlobalBatches(len(self.dataset), self.config, self.rank, self.world, self.epoch, self.position)
        workers = self.config.num_workers
        if workers < 0:
            workers = 2 if self.device.type == "cuda" else 0
        return torch.utils.data.DataLoader(
            _EpochItems(self.dataset), batch_sampler=sampler, num_workers=workers,
            pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None,
            # its own generator: a DataLoader draws its workers' base seed when it starts, and from the
            # global RNG that would shift the training noise of a resumed run against an uninterrupted one
            generator=torch.Generator().manual_seed(self.config.seed))

    def close(self) -> None:
        """Stop the worker processes."""
        self._batches = None


def _to_device(batch, device):
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


# ---- checkpoints ------------------------------------------------------------------

def _optimizer_tensors(opt) -> tuple[dict, dict]:
    """Flatten an optimizer's state into tensors (safetensors) and JSON (everything else). No pickle.
    Under fsdp the state is sharded: every process must call this (it gathers), rank 0 writes."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = _full(value)
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(opt, tensors: dict, meta: dict) -> None:
    params = [p for g in opt.param_groups for p in g["params"]]   # the order of the state's integer ids
    state: dict = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = _shard_like(params[int(pid)], value)
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def _load_module(module, tensors: dict) -> None:
    current = module.state_dict()
    module.load_state_dict({k: _shard_like(current.get(k), v) for k, v in tensors.items()})


def _rng_state(device: torch.device) -> dict:
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


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)
    pos, has_gauss = (int(v) for v in state["numpy_pos"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), pos, has_gauss,
                         float(state["numpy_gauss"][0])))
    gauss = float(state["python_gauss"][0])
    random.setstate((3, tuple(int(v) for v in state["python_state"]), None if math.isnan(gauss) else gauss))


def _gather_rng(trainer: Trainer) -> list[dict]:
    """Every rank's random states (on rank 0; the others get them too: all_gather is the simplest
    collective that NCCL and gloo both have). Rank 0 writes them, so a multi-node run needs no shared disk."""
    mine = _rng_state(trainer.device)
    if trainer.world_size == 1:
        return [mine]
    ranks: list[dict] = [{} for _ in range(trainer.world_size)]
    for key, value in mine.items():   # the same keys and shapes on every rank
        parts = [torch.empty_like(value, device=trainer._comm_device) for _ in ranks]
        dist.all_gather(parts, value.to(trainer._comm_device))
        for r, part in enumerate(parts):
            ranks[r][key] = part.cpu()
    return ranks


_CHECKPOINT_NAME = re.compile(r"step-\d{6,10}")   # what save_checkpoint writes (steps go up to 10**9)


def checkpoint_dirs(run: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first by step. Only folders named as save_checkpoint names them:
    temp folders (a leading dot) and strays (step-000001.bak, step-latest, a link) are not checkpoints."""
    folder = run / "checkpoints"
    if folder.is_symlink() or not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _CHECKPOINT_NAME.fullmatch(p.name) and not p.is_symlink() and p.is_dir()]
    return sorted(found, key=lambda p: (int(p.name[5:]), p.name))


def save_checkpoint(run: Path, trainer: Trainer, loop: _DataLoop, step: int, state: dict) -> Path | None:
    """Write checkpoints/step-NNNNNN atomically, then keep only the newest K. Every process calls it: the
    random states of all ranks (and, under fsdp, the sharded weights) are gathered, and rank 0 writes."""
    modules = {stem: {k: _full(v) for k, v in module.state_dict().items()}
               for stem, module in trainer.model.state_files().items()}
    optimizers = {name: _optimizer_tensors(opt) for name, opt in trainer.optimizers.items()}
    rngs = _gather_rng(trainer)
    if trainer.rank != 0:
        return None

    def fill(tmp: Path):
        for stem, tensors in modules.items():
            save_tensors(tensors, tmp / f"{stem}.safetensors")
        meta = {}
        for name, (tensors, meta[name]) in optimizers.items():
            save_tensors(tensors, tmp / f"optimizer-{name}.safetensors")
        for r, rng in enumerate(rngs):
            save_tensors(rng, tmp / f"rng-rank{r}.safetensors")
        info = {"step": step, "epoch": loop.epoch, "position": loop.position, "optimizers": meta,
                "world_size": trainer.world_size, **state}
        (tmp / "trainer_state.json").write_text(json.dumps(info))
        write_manifest(tmp)

    path = atomic_folder(run / "checkpoints" / f"step-{step:06d}", fill)
    # prune only checkpoints up to this step: newer ones are left from a run that resumed past them because
    # they were damaged, and counting them deleted every fresh good checkpoint as soon as it was written
    done = [p for p in checkpoint_dirs(run) if int(p.name[5:]) <= step]
    for old in sorted(done, key=lambda p: int(p.name[5:]))[:-trainer.config.keep_checkpoints]:
        _remove(old)
    return path


def _remove(folder: Path) -> None:
    """Delete a folder without ever leaving it half-deleted under its name: rename first, then delete."""
    trash = folder.with_name(f".trash-{folder.name}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


_LEFTOVER_NAME = re.compile(r"\.(step-\d+\.(tmp|old)-.+|trash-step-\d+)")   # atomic_folder's and _remove's


def clean_leftovers(run: Path) -> None:
    """Remove the temp and trash folders a killed run left behind: only names this module and atomic_folder
    make (a `checkpoints` that is a link, say to ~, is never cleaned)."""
    folder = run / "checkpoints"
    if folder.is_dir() and not folder.is_symlink():
        for p in folder.iterdir():
            if _LEFTOVER_NAME.fullmatch(p.name) and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


def check_trainer_state(info, path) -> dict:
    """A checkpoint's trainer_state.json, its numbers in range, else a CheckpointError naming the field.
    Resume and release both read it; a tampered or damaged one is refused here, not deep in the data loop."""
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: must be a JSON object; the checkpoint is damaged")
    checks = (("step", True, lambda v: _whole(v) and 0 <= v <= 10 ** 9, "a whole number from 0 to 10^9"),
              ("optimizers", True, lambda v: isinstance(v, dict), "an object"),
              ("epoch", False, lambda v: _whole(v) and 0 <= v <= 10 ** 12, "a whole number from 0 to 10^12"),
              ("position", False, lambda v: _whole(v) and 0 <= v <= 10 ** 12, "a whole number from 0 to 10^12"),
              ("world_size", False, lambda v: _whole(v) and 1 <= v <= 2 ** 20, "a whole number from 1"),
              ("elapsed_s", False, lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v) and 0 <= v <= 10 ** 12, "a finite number of seconds, 0 or more"),
              ("last", False, lambda v: isinstance(v, dict), "an object"))
    for key, required, ok, what in checks:
        if key not in info:
            if required:
                raise CheckpointError(f"{path}: no {key!r}; the checkpoint is damaged")
            continue
        if not ok(info[key]):
            raise CheckpointError(f"{path}: {key!r} must be {what}, got {str(info[key])[:40]!r}; the checkpoint "
                                  f"is damaged or was edited")
    return info


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_run_json(run: Path, error=ConfigError) -> dict:
    """A run folder's run.json, checked: an object with arch, model_config and train_config (and, where present,
    data, hardware, precision as strings and world_size a whole number), else one `error`."""
    path = run / "run.json"
    saved = read_json(path, "run.json", error)
    fields = (("arch", str, True), ("model_config", dict, True), ("train_config", dict, True),
              ("data", str, False), ("hardware", str, False), ("precision", str, False), ("world_size", int, False))
    if not isinstance(saved, dict):
        raise error(f"{path}: malformed: must be a JSON object with arch, model_config and train_config (not "
                    f"{type(saved).__name__}); was it written by zoo train?")
    for key, kind, required in fields:
        value = saved.get(key)
        if value is None and not required:
            continue
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is int and not 1 <= value <= 2 ** 20):
            what = {dict: "an object", str: "a string", int: "a whole number from 1"}[kind]
            raise error(f"{path}: malformed: {key!r} must be {what}, got {str(value)[:40]!r}; was it written by zoo train?")
    return saved


def load_checkpoint(run: Path, trainer: Trainer) -> dict | None:
    """Restore the newest checkpoint that verifies; returns its trainer_state or None."""
    for path in reversed(checkpoint_dirs(run)):
        try:
            verify(path)   # trainer_state.json included: it must be in the manifest
            info = check_trainer_state(read_json(path / "trainer_state.json", "trainer_state.json", CheckpointError),
                                       "trainer_state.json")
        except CheckpointError as exc:
            print(f"zoo: warning: skipping damaged checkpoint {path.name}: {exc}", file=sys.stderr)
            continue
        try:
            _restore(path, trainer, info)
        except CheckpointError:
            raise
        except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:  # e.g. a changed --set n_layer
            raise CheckpointError(f"{path} does not fit this run's model or optimizer ({type(exc).__name__}: "
                                  f"{str(exc)[:200]}); --resume keeps the run's model sizes and optimizer, so "
                                  f"drop those --set values or start a new --out") from None
        return info
    return None


def _restore(path: Path, trainer: Trainer, info: dict) -> None:
    """Load one verified checkpoint's weights, optimizer and random states into a trainer."""
    for stem, module in trainer.model.state_files().items():
        _load_module(module, load_tensors(path / f"{stem}.safetensors", trainer.device))
    for name, opt in trainer.optimizers.items():
        _load_optimizer(opt, load_tensors(path / f"optimizer-{name}.safetensors", trainer.device),
                        info["optimizers"][name])
    mine = path / f"rng-rank{trainer.rank}.safetensors"
    if mine.is_file():
        _set_rng_state(load_tensors(mine), trainer.device)
    elif (path / "rng.safetensors").is_file() and trainer.rank == 0:
        _restore_single_process_rng(path, info)   # written before per-rank states: one process's, rank 0's
    else:
        # this rank did not exist when the checkpoint was written (more processes now): a fresh stream of its
        # own, never a copy of another rank's, which would make two GPUs draw the same noise
        saved = info.get("world_size", 1)
        print(f"zoo: warning: rank {trainer.rank}: the checkpoint holds the random states of {saved} process(es); "
              f"this one starts a new seeded stream, so the run is not bit-identical to one without the change",
              file=sys.stderr)
        seed = (trainer.config.seed * 7919 + trainer.rank) * 1_000_003 + info["step"]
        torch.manual_seed(seed)
        np.random.seed(seed % 2**32)
        random.seed(seed)


def _restore_single_process_rng(path: Path, info: dict) -> None:
    """The random states of a checkpoint written before ranks had their own: rng.safetensors plus numpy's and
    Python's in trainer_state.json."""
    rng = load_tensors(path / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    n = info["numpy_rng"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))
    p = info["python_rng"]
    random.setstate((p[0], tuple(p[1]), p[2]))


# ---- the run ------------------------------------------------------------------------

def split_overrides(values: dict, model_cls, trainer_cls) -> tuple[dict, dict]:
    """Send each key to the model config or the train config; unknown keys list the valid ones."""
    model_keys = set(valid_keys(model_cls.config_class))
    train_keys = set(valid_keys(trainer_cls.config_class))
    unknown = sorted(set(values) - model_keys - train_keys)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid model keys: {', '.join(sorted(model_keys))}; "
                          f"valid training keys: {', '.join(sorted(train_keys))}")
    return ({k: v for k, v in values.items() if k in model_keys},
            {k: v for k, v in values.items() if k in train_keys and k not in model_keys})


def _read_config_file(path) -> dict:
    from zoo.safeio import read_json

    data = read_json(path, "--config file", ConfigError)   # bounded, regular files only ("--config /dev/zero")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a JSON object of key: value")
    flat = {}
    for key, value in data.items():
        if key in ("model", "train") and isinstance(value, dict):
            flat.update(value)
        elif not key.startswith("_"):  # "_comment" keys document presets
            flat[key] = value
    return flat


def train_from_args(args) -> Path:
    """`zoo train`: build everything from CLI args and run (resuming if asked)."""
    values = _read_config_file(args.config) if args.config else {}
    values.update(parse_overrides(args.overrides))
    for flag in ("steps", "batch_size", "lr", "seed", "log_every"):
        if getattr(args, flag, None) is not None:
            values[flag] = getattr(args, flag)
    from zoo.device import set_threads

    set_threads(getattr(args, "threads", None))
    return train(args.arch, out=args.out, data=args.data, values=values, resume=args.resume, device=args.device)


def train(arch: str, out, data: str | None = None, values: dict | None = None, resume: bool = False,
          device="auto") -> Path:
    """Train `arch` into run folder `out`; returns the final/ folder."""
    from zoo.registry import get_registry

    registry = get_registry()
    model_cls, trainer_cls = registry.architecture(arch), registry.trainer(arch)
    run = Path(out)
    if int(os.environ.get("RANK", "0")) == 0:
        check_run_folder(run, resume)
    if resume and not (run / "run.json").is_file():
        raise ConfigError(f"{run} has no run.json to resume; start a new run without --resume")
    if int(os.environ.get("RANK", "0")) != 0:   # torchrun: rank 0 holds the run's lock for all
        return _train_locked(arch, run, model_cls, trainer_cls, data, values, resume, device)
    from zoo.locks import hold

    made = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    # one process per run folder: a second `zoo train --out RUN` would interleave checkpoints and metrics;
    # flock is released by the OS when a run dies, so a killed run never blocks the next one
    with hold(run / RUN_LOCK, f"run folder {run}", error=ConfigError):
        try:
            return _train_locked(arch, run, model_cls, trainer_cls, data, values, resume, device)
        except BaseException:
            if made and [p.name for p in run.iterdir()] == [RUN_LOCK]:   # refused before anything was written
                (run / RUN_LOCK).unlink(missing_ok=True)
                run.rmdir()
            raise


RUN_LOCK = ".lock"


def check_run_folder(run: Path, resume: bool) -> None:
    """zoo.outputs' policy for a run folder, before any work: a new path or a real folder (never a link, a
    file, a device or a FIFO); without --resume an existing one must be empty but for the run's own lock file;
    its final/, replaced when the run ends, must be one the run may replace (checked now, not after training)."""
    from zoo.locks import check_lock_file
    from zoo.outputs import check_folder_target, lstat_target

    if lstat_target(run, "run folder") is None:
        return
    check_lock_file(run / RUN_LOCK, error=ConfigError)
    if not resume and any(p.name != RUN_LOCK for p in run.iterdir()):
        raise ConfigError(f"{run} already exists; pass --resume to continue it, or choose a new --out")
    check_folder_target(run / "final", what="final model folder",
                        advice="the run replaces it at the end: move what musezoo did not write out of it, "
                               "or train into a new --out")


def _train_locked(arch, run: Path, model_cls, trainer_cls, data, values, resume: bool, device) -> Path:
    from zoo.device import resolve_device

    values = dict(values or {})
    if resume:
        saved = read_run_json(run)
        if saved["arch"] != arch:
            raise ConfigError(f"{run} is a {saved['arch']} run, not {arch}")
        data = saved.get("data") if data is None else data
        values = {**saved["model_config"], **saved["train_config"], **values}
    elif run.exists() and any(p.name != RUN_LOCK for p in run.iterdir()):   # the lock itself: checked by hold()
        raise ConfigError(f"{run} already exists; pass --resume to continue it, or choose a new --out")
    model_values, train_values = split_overrides(values, model_cls, trainer_cls)
    init_state = None
    if train_values.get("init") and not resume:
        # fine-tuning: the saved model's config is the base that --set changes; its weights replace the init
        init_config, init_state = _init_weights(train_values["init"], arch)
        model_values = {**init_config, **model_values}
    model_config = config_from_dict(model_cls.config_class, model_values, what=f"{arch} config")
    train_config = config_from_dict(trainer_cls.config_class, {**trainer_cls.defaults, **train_values},
                                    what="training config")
    from zoo.build import check_buildable

    check_buildable(model_cls, model_config, what=f"{arch} config")   # --set n_layer=10**6: refused, not allocated

    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    dev = resolve_device(device)
    if distributed and not dist.is_initialized():
        if dev.type == "cuda":
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    try:
        result = _run(run, arch, model_cls, trainer_cls, model_config, train_config, data, dev, resume, init_state)
        if distributed and dist.is_initialized():
            # rank 0 still writes final/ and its card: the others wait, so that no rank tears down its gloo
            # threads while a peer is still connected (a rank leaving early aborted in about 1 run in 7)
            dist.barrier()
        return result
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _init_weights(name: str, arch: str) -> tuple[dict, dict]:
    """The model config and weights (on the CPU) of the saved model `init` names, which must be an `arch`."""
    from zoo.loader import load

    saved = load(name, device="cpu")
    if saved.arch != arch:
        raise ConfigError(f"init={name} is a {saved.arch} model, not {arch}; fine-tune it with zoo train {saved.arch}")
    return to_dict(saved.config), saved.state_dict()


def _run(run, arch, model_cls, trainer_cls, model_config, config, data, device, resume, init_state=None) -> Path:
    from zoo.progress import bar

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    from zoo.registry import get_registry

    model = model_cls(model_config, get_registry().new_tokenizer(model_cls))
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device)
    model.train()
    if dist.is_initialized() and dist.get_world_size() > 1:
        torch.manual_seed(config.seed * 7919 + dist.get_rank())  # same init everywhere, own noise per process
    trainer = trainer_cls(model, config, source=data, device=device)
    rank0 = trainer.rank == 0
    _distribute(trainer)
    trainer.optimizers = trainer.configure_optimizers()
    _check_protocol(trainer)
    base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in trainer.optimizers.items()}
    dataset = trainer.build_dataset(data, "train")

    if resume and trainer.rank == 0:
        clean_leftovers(run)
    info = load_checkpoint(run, trainer) if resume else None
    step = info["step"] if info else 0
    elapsed = info.get("elapsed_s", 0.0) if info else 0.0
    loop = _DataLoop(dataset, config, trainer.rank, trainer.world_size,
                     epoch=info["epoch"] if info else 0, position=info["position"] if info else 0, device=device)
    trainer._loop = loop
    if rank0:
        run.mkdir(parents=True, exist_ok=True)
        _write_run_json(run, arch, model_config, config, data, trainer.world_size, trainer.precision, hardware(device))
        n = model.num_parameters()
        state_mb = n * 16 / 2**20   # fp32 weights + gradients + Adam's two moments
        print(f"zoo: training {arch}: {n:,} parameters; {config.batch_size} examples per step"
              f"{f' in {config.grad_accum} micro-batches' if config.grad_accum > 1 else ''}; weights, gradients and "
              f"optimizer state ~{state_mb:,.0f} MB (activations come on top: the first steps measure them); "
              f"{hardware(device)}; {trainer.precision}", file=sys.stderr)
        _truncate_metrics(run / "metrics.jsonl", step)
    if resume and rank0:
        print(f"zoo: resuming {run} at step {step}" if info else f"zoo: no checkpoint in {run}; starting at step 0",
              file=sys.stderr)

    progress = bar(total=config.steps, desc=arch, initial=step) if rank0 else None
    last: dict = {}
    t0, steps_this_session = time.monotonic(), 0
    while step < config.steps:
        factor = lr_factor(step, config)
        for name, opt in trainer.optimizers.items():
            for group, lr in zip(opt.param_groups, base_lrs[name]):
                group["lr"] = lr * factor
        logs = _one_step(trainer, step)
        step += 1
        steps_this_session += 1
        if rank0 and steps_this_session == _FIRST_REPORT and step < config.steps:
            _report_first_steps(steps_this_session, time.monotonic() - t0, config.steps - step)
        evaluated = bool(config.eval_every and step % config.eval_every == 0 and step < config.steps)
        valid = _evaluate(trainer, data, "valid") if evaluated else {}
        checkpointing = step % config.ckpt_every == 0 or step == config.steps
        logging = step % config.metrics_every == 0 or step == config.steps or evaluated or checkpointing \
            or bool(config.log_every and step % config.log_every == 0)
        if logging:   # float() waits for the device: only here, never on every step
            last = {k: float(v) for k, v in logs.items()}
            last["lr"] = config.lr * factor
            last.update({f"valid_{k}": v for k, v in valid.items()})
        if rank0:
            now = time.monotonic()
            rate = steps_this_session / max(now - t0, 1e-9)
            if step % config.metrics_every == 0 or step == config.steps or evaluated:
                with open(run / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, **last, "time_s": round(elapsed + now - t0, 3)}) + "\n")
            if progress is not None:
                progress.update(1)
                if logging:
                    progress.set_postfix({k: f"{v:.4g}" for k, v in last.items() if k != "lr"}, refresh=False)
            if config.log_every and step % config.log_every == 0:
                eta = (config.steps - step) / rate if rate else 0
                losses = " ".join(f"{k}={v:.4g}" for k, v in last.items())
                print(f"step {step}/{config.steps} {losses} {rate:.2f} it/s eta {eta:.0f}s", file=sys.stderr, flush=True)
        if checkpointing:
            save_checkpoint(run, trainer, loop, step, {"elapsed_s": elapsed + time.monotonic() - t0, "last": last})
            if trainer.world_size > 1:
                dist.barrier()
    loop.close()
    if progress is not None:
        progress.close()
    elapsed += time.monotonic() - t0

    final_metrics = _evaluate(trainer, data, "test")
    summary = {"arch": arch, "steps": config.steps, "model_config": to_dict(model_config),
               "train_config": to_dict(config), "data": data_name(data), "last": last,
               "test_metrics": final_metrics, "hardware": hardware(device), "world_size": trainer.world_size,
               "train_time_s": round(elapsed, 1), "parameters": model.num_parameters(),
               "precision": trainer.precision}
    final = run / "final"
    plain = _gathered_copy(trainer, model_cls)   # under fsdp: the whole model, on rank 0 (a collective)
    if rank0:
        plain.eval()
        from zoo.card import build_card

        plain.save_pretrained(final, card=build_card(plain, summary, trainer.card_sections(summary),
                                                     trainer.card_metadata))
        write_text_atomic(run / "summary.json", json.dumps(summary, indent=2) + "\n")
        print(f"zoo: trained {arch} for {config.steps} steps; model saved to {final}", file=sys.stderr)
    return final


_FIRST_REPORT = 3   # steps after which the measured speed, memory and ETA are printed once


def _report_first_steps(done: int, seconds: float, left: int) -> None:
    """One line after the first steps: seconds per step, peak memory so far, and the time to the end."""
    import resource

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux
    per_step = seconds / done
    eta = per_step * left
    when = f"{eta / 3600:.1f} h" if eta >= 3600 else f"{eta / 60:.1f} min" if eta >= 60 else f"{eta:.0f} s"
    print(f"zoo: {per_step:.2f} s/step over the first {done} steps, peak memory {peak_gb:.2f} GB; "
          f"{left} steps left: about {when} (ETA, includes nothing for evaluation)", file=sys.stderr, flush=True)


def _check_protocol(trainer: Trainer) -> None:
    """Refuse, before the first step, a trainer whose optimizers do not fit its protocol."""
    name, names = type(trainer).__name__, ", ".join(trainer.optimizers) or "none"
    if trainer.manual_optimization:
        if trainer.config.grad_accum > 1:
            raise ConfigError(f"grad_accum > 1 needs a training_step that returns a loss; {name} optimizes itself "
                              f"(manual_optimization = True): accumulate inside its training_step, or set grad_accum=1")
    elif len(trainer.optimizers) != 1:
        raise PluginError(f"{name}.training_step returns a loss for the core to step, which needs exactly one "
                          f"optimizer, but configure_optimizers() returned {len(trainer.optimizers)} ({names}); with "
                          f"several, set manual_optimization = True and call self.optimize(name, loss) for each")


def _gathered_copy(trainer: Trainer, model_cls):
    """The model itself, or under fsdp a plain copy with the gathered weights (on rank 0; None elsewhere)."""
    model = trainer.model
    if trainer.world_size == 1 or trainer.config.distributed != "fsdp":
        return model
    states = {stem: {k: _full(v).cpu() for k, v in m.state_dict().items()} for stem, m in model.state_files().items()}
    if trainer.rank != 0:
        return None
    plain = model_cls(model.config, model.tokenizer)
    for stem, module in plain.state_files().items():
        module.load_state_dict(states[stem])
    return plain


def _one_step(trainer: Trainer, step: int) -> dict:
    """One optimizer step under the trainer's protocol (see Trainer). Logs stay tensors: no host sync here."""
    name, config = type(trainer).__name__, trainer.config
    if trainer.manual_optimization:
        trainer._optimize_calls = 0
        with trainer.autocast():
            out = trainer.training_step(trainer.next_batch(), step)
        if trainer._optimize_calls == 0:
            raise PluginError(f"{name}.training_step (manual_optimization = True) never called self.optimize(), "
                              f"so it trained nothing; call it once per update, or return {{'loss': loss}} and set "
                              f"manual_optimization = False")
        return _logs(out, name)
    logs: dict = {}
    for micro in range(config.grad_accum):
        # DDP/FSDP reduce gradients in the last micro-batch's backward only; the others accumulate locally
        _set_grad_sync(trainer, micro == config.grad_accum - 1)
        with trainer.autocast():
            out = trainer.training_step(trainer.next_batch(), step)
        out = _logs(out, name)
        _check_loss(out.get("loss"), "the 'loss' that training_step returned", name)
        if micro == 0:
            for opt in trainer.optimizers.values():
                opt.zero_grad(set_to_none=True)
        (out["loss"] / config.grad_accum).backward()
        for k, v in out.items():
            v = v.detach() if isinstance(v, torch.Tensor) else v
            logs[k] = logs.get(k, 0.0) + v / config.grad_accum
    (opt,) = trainer.optimizers.values()   # _check_protocol made sure there is exactly one
    logs["grad_norm"] = trainer._finish_step(opt)
    return logs


def _logs(out, trainer: str) -> dict:
    if not isinstance(out, dict):
        raise PluginError(f"{trainer}.training_step returned {type(out).__name__}; it must return a dict "
                          f"({{'loss': tensor, ...}}, or the logs of a manual_optimization step)")
    return out


def _evaluate(trainer: Trainer, data, split: str) -> dict:
    """The plugin's metrics on a split; every process calls it (evaluate may share the work, reduce_sum)."""
    if type(trainer).evaluate is Trainer.evaluate:
        return {}
    was_training = trainer.model.training
    trainer.model.eval()
    try:
        with torch.no_grad():
            return {k: float(v) for k, v in trainer.evaluate(trainer.build_dataset(data, split)).items()}
    except DataError as exc:
        # a small dataset can leave a split empty: the run still finishes (and --resume is not stuck forever
        # repeating the failure after the last checkpoint), and says so
        if trainer.rank == 0:
            print(f"zoo: warning: no {split} metrics: {exc}", file=sys.stderr)
        return {}
    finally:
        trainer.model.train(was_training)


def _write_run_json(run: Path, arch, model_config, config, data, world, precision="fp32", where=None) -> None:
    from zoo.registry import get_registry

    plugin = get_registry().get("architectures", arch).plugin
    try:
        import importlib.metadata as md

        plugin_version = md.version(plugin)
    except Exception:
        plugin_version = None
    info = {"arch": arch, "model_config": to_dict(model_config), "train_config": to_dict(config), "data": data,
            "zoo_version": __version__, "plugin": plugin, "plugin_version": plugin_version,
            "torch_version": torch.__version__, "world_size": world, "precision": precision,
            "hardware": where,   # what the card names: zoo release may run on another machine
            "command": sys.argv}
    tmp = run / ".run.json.tmp"
    tmp.write_text(json.dumps(info, indent=2) + "\n")
    os.replace(tmp, run / "run.json")


def _truncate_metrics(path: Path, step: int) -> None:
    """After a resume, drop log lines from steps that are about to be redone."""
    if not path.exists():
        return
    keep = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (ValueError, KeyError, TypeError, RecursionError):
            continue  # a line cut short by a kill
    write_text_atomic(path, "".join(l + "\n" for l in keep))   # O_TRUNC in place: a kill there left 0 bytes


def hardware(device) -> str:
    """A one-line description of where training ran."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def data_name(data) -> str:
    """The training data as the model card names it: the folder's or file's name only, because the card is
    published by `zoo push` and a local path (/home/you/...) is nobody else's business. run.json keeps the path."""
    if not data:
        return "embedded default"
    return Path(str(data)).expanduser().name or str(data)

