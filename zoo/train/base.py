"""The Trainer base class: what a plugin implements, and the helpers its step uses."""

from __future__ import annotations

import contextlib
from typing import ClassVar

import torch
import torch.distributed as dist

from zoo.errors import PluginError

from .config import TrainConfig
from .data import to_device
from .dist import all_reduce_sum, data_parallel, full_tensor


class Trainer:
    """Base class of a plugin's training step. See docs/training.md and docs/plugins.md.

    The step follows one of two protocols, chosen by `manual_optimization` (as in Lightning):

    - False (the default): training_step returns {"loss": tensor with grad, ...logs}, or {"loss_sum": tensor
      with grad, "count": tensor, ...logs} when the loss is a sum over a count that varies between batches
      (tokens that are not padding); the core does backward, gradient accumulation (grad_accum), the
      division by the count of all processes and micro-batches, clipping and the step of the one optimizer.
    - True: training_step calls self.optimize(name, loss) for every update (a GAN: the critic's, then
      the generator's) and returns only logs. grad_accum must be 1.

    Anything else (a loss without a gradient, two optimizers with a returned loss, a manual step
    that never calls optimize) is a PluginError, never a silent step that trains nothing.
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
        """A map-style Dataset for 'train', 'valid' or 'test' (source None = the embedded data). Default: the
        build_dataset(source, split, model) the plugin registers for its architecture (hook register_datasets),
        which `zoo eval` and `zoo release` use too. Override it only for what training alone needs from the
        training config (augmentation of the train split, a cap on the eval windows)."""
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
        """Under torchrun, make one trained network (one of model.state_files()) data-parallel on `mesh` (a 1-D
        DeviceMesh of all processes) and return what the step should call. Default: DistributedDataParallel
        under distributed=ddp; under distributed=fsdp, fully_shard(module) as one unit. Override it to choose
        FSDP units: fully_shard each block first, then the whole module, so that only one block's weights are
        gathered at a time (torchtitan's parallelize functions do the same)."""
        if self.config.distributed == "fsdp":
            from torch.distributed.fsdp import fully_shard

            fully_shard(module, mesh=mesh)
            return module
        return data_parallel(module, self.device)

    def training_step(self, batch, step: int) -> dict:
        """One optimizer step: return {'loss': tensor, ...logs} or {'loss_sum': tensor, 'count': tensor, ...logs},
        or (manual_optimization) call self.optimize() and return logs. Log values may be tensors: the core
        converts them only when it logs."""
        raise NotImplementedError

    def evaluate(self, dataset) -> dict:
        """Metrics on held-out data (optional). Under torchrun every process calls it: use eval_batches()
        and reduce_sum() to share the work, or compute on the whole dataset in each process."""
        return {}

    def release_files(self) -> dict[str, bytes]:
        """Extra files `zoo release` puts in the model folder (name -> bytes), e.g. an example the card shows."""
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
        """Batches of `dataset` on self.device, in order: under torchrun (ddp) this process's share only
        (examples rank, rank + N, ...). Sum what you measure and combine the sums with reduce_sum()."""
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
        """Whether eval_batches() splits the data across processes: under ddp. With fsdp every forward
        all-gathers weights, a collective, so all processes run the same forwards on every batch."""
        return self.world_size > 1 and self.config.distributed == "ddp"

    @property
    def _comm_device(self) -> torch.device:
        """Where collectives' tensors live: the GPU for NCCL, the CPU for gloo."""
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _clip_and_step(self, opt, scale: float = 1.0):
        """Multiply the gradients by `scale`, clip them to config.grad_clip and step `opt`; the grad norm (a tensor)."""
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if scale != 1.0:
            for p in params:
                p.grad.mul_(scale)
        norm = torch.zeros(())
        if self.config.grad_clip > 0 and params:
            norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)   # a tensor: no host sync
            norm = full_tensor(norm)   # fsdp: a DTensor; every rank gathers it here, not only rank 0 when logging
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
