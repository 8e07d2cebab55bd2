"""The Trainer base class: what a plugin implements (REQUIRED, OPTIONAL), and the helpers its step uses."""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
import torch.distributed as dist

from zoo.errors import PluginError

from .config import TrainConfig
from .data import to_device
from .dist import DDPModule, all_reduce_sum


class Trainer:
    """Base class of a plugin's training step (docs/plugins.md), in one of two protocols (as in Lightning):

    - manual_optimization False (default): training_step returns {"loss": tensor, ...logs}, or {"loss_sum": tensor,
      "count": tensor, ...logs} for a sum over a count that varies between batches; the core does backward,
      grad_accum, the division by the count of all processes and micro-batches, clipping and the one optimizer's step.
    - True: training_step calls self.optimize(name, loss) for every update (a GAN: critic, then generator) and
      returns only logs; grad_accum must be 1.

    Anything else (a loss without a gradient, two optimizers with a returned loss, a manual step that never calls
    optimize) is a PluginError, never a silent step that trains nothing.
    """

    REQUIRED: ClassVar[tuple[str, ...]] = ("training_step",)
    OPTIONAL: ClassVar[tuple[str, ...]] = ("config_class", "defaults", "manual_optimization", "build_dataset",
                                           "configure_optimizers", "parallelize", "evaluate", "select_by",
                                           "release_files", "card_sections")

    config_class: ClassVar[type] = TrainConfig
    defaults: ClassVar[dict] = {}   # the plugin's TrainConfig defaults, e.g. {"lr": 1e-3}
    manual_optimization: ClassVar[bool] = False
    # how `zoo release` picks a checkpoint: (a key evaluate() logs on the valid split, as "valid_KEY", "min" or
    # "max"); None: the newest checkpoint
    select_by: ClassVar[tuple[str, str] | None] = None

    def __init__(self, model, config: TrainConfig, source: str | None = None, device="cpu"):
        self.model = model              # what the step calls: under torchrun, possibly wrapped by parallelize
        self.raw_model = model          # the model itself (nanoGPT's raw_model), never wrapped
        self.config = config
        self.source = source
        self.device = torch.device(device)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        self.units: dict = dict(model.state_files())   # the trained networks by file stem (zoo.train.dist)
        self._swapped: list = []
        self.loop = None                # the DataLoop next_batch() reads
        self.optimize_calls = 0         # how often a manual step called optimize() (checked by the core)
        # the generate options `zoo eval` was given (e.g. a decoding precision), for an evaluate() that generates
        self.generate_options: dict = {}

    # ---- what a plugin implements -------------------------------------------------
    def build_dataset(self, source: str | None, split: str):
        """A map-style Dataset for 'train', 'valid' or 'test' (source None: the embedded data)."""
        # the builder the plugin registers (hook register_datasets), which zoo eval and zoo release use too; a
        # trainer overrides this only for what training alone needs (augmentation, a cap on the eval windows)
        from zoo.registry import get_registry

        builder = get_registry().dataset_builder(self.raw_model.arch)
        if builder is None:
            raise PluginError(f"no plugin registers a dataset builder for {self.raw_model.arch!r}: register one with "
                              f"the register_datasets hook, or override {type(self).__name__}.build_dataset")
        return builder(source, split, self.raw_model)

    def configure_optimizers(self) -> dict:
        """Name -> optimizer. One for a language model; e.g. 'critic' and 'generator' for a GAN."""
        return {"main": torch.optim.AdamW(self.model.parameters(), lr=self.config.lr)}

    def parallelize(self, module: torch.nn.Module, mesh) -> torch.nn.Module:
        """Under torchrun, one trained network made data-parallel on the 1-D `mesh`; returns what the step calls."""
        # default: DDP, or one fully_shard unit; a plugin overrides it to fully_shard each block first, then the
        # whole module, so that only one block's weights are gathered at a time (as torchtitan does)
        if self.config.distributed == "fsdp":
            from torch.distributed.fsdp import fully_shard

            fully_shard(module, mesh=mesh)
            return module
        # gradient_as_bucket_view: gradients live in DDP's buckets, no second copy of them
        return DDPModule(module, device_ids=[self.device] if self.device.type == "cuda" else None,
                         gradient_as_bucket_view=True)

    def training_step(self, batch, step: int) -> dict:
        """One optimizer step under the protocol above; log values may be tensors (converted only when logged)."""
        raise NotImplementedError

    def evaluate(self, dataset) -> dict:
        """Metrics on held-out data (optional); every process calls it: share the work with eval_batches, reduce_sum."""
        return {}

    def release_files(self) -> dict[str, bytes]:
        """Extra files `zoo release` puts in the model folder (name -> bytes), e.g. an example the card shows."""
        return {}

    def card_sections(self, summary: dict) -> dict[str, str]:
        """The plugin's own model card sections (title -> markdown); Data, Training, ... add to the core's."""
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
        """bf16 autocast where it pays (CUDA, a CPU with AMX), else a no-op; weights, grads, optimizer stay fp32."""
        if self.precision.startswith("bf16"):
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def optimize(self, name: str, loss: torch.Tensor):
        """(manual_optimization) zero_grad, backward, clip and step optimizer `name`; the grad norm (no host sync)."""
        if not self.manual_optimization:
            raise PluginError(f"{type(self).__name__}.training_step called self.optimize(); set "
                              f"manual_optimization = True on the trainer, or return {{'loss': loss}} for the core to step")
        if name not in self.optimizers:
            raise PluginError(f"self.optimize({name!r}): no such optimizer; configure_optimizers() "
                              f"returned {', '.join(self.optimizers)}")
        check_loss(loss, f"the loss passed to self.optimize({name!r})", type(self).__name__)
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        self.optimize_calls += 1
        return self._clip_and_step(opt)

    def next_batch(self):
        """Another batch of the training data, on self.device (for steps that need several)."""
        return to_device(self.loop.next_batch(), self.device)

    def eval_batches(self, dataset, batch_size: int):
        """Batches of `dataset` on self.device, in order; under ddp this process's share (rank, rank + N, ...)."""
        indices = range(len(dataset))
        if self._shards_eval:
            indices = indices[self.rank::self.world_size]
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=batch_size)
        for batch in loader:
            yield to_device(batch, self.device)

    def reduce_sum(self, *values) -> list[float]:
        """Each value summed over the processes that shared eval_batches() (itself in one process)."""
        totals = torch.tensor([float(v) for v in values], dtype=torch.float64)
        return (all_reduce_sum(totals, self) if self._shards_eval else totals).tolist()

    @property
    def _shards_eval(self) -> bool:
        # only under ddp: with fsdp every forward all-gathers weights (a collective), so all processes must run
        # the same forwards on every batch
        return self.world_size > 1 and self.config.distributed == "ddp"

    @property
    def _comm_device(self) -> torch.device:
        """Where collectives' tensors live: the GPU for NCCL, the CPU for gloo."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _clip_and_step(self, opt, scale: float = 1.0):
        """Scale the gradients, clip them to config.grad_clip and step `opt`; the grad norm (a tensor)."""
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if scale != 1.0:
            for p in params:
                p.grad.mul_(scale)
        norm = torch.zeros(())
        if self.config.grad_clip > 0 and params:
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)   # a tensor: no host sync
            if hasattr(norm, "full_tensor"):   # fsdp: a DTensor; every rank gathers it here, not rank 0 when logging
                norm = norm.full_tensor()
        opt.step()
        return norm


def check_loss(loss, what: str, trainer: str) -> None:
    """Refuse a loss that cannot train anything (not a tensor, or without a gradient) with a PluginError."""
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        got = "a tensor without a gradient (detached, or computed under no_grad)" if isinstance(loss, torch.Tensor) \
            else f"{type(loss).__name__}"
        raise PluginError(f"{trainer}: {what} is {got}; it must be a tensor that requires grad, or nothing would "
                          f"be trained. A step that optimizes itself sets manual_optimization = True and calls "
                          f"self.optimize(name, loss)")
