"""Distribution under torchrun on PyTorch's public APIs: each trained network (each of model.state_files(), e.g. a
GAN's generator and critic) goes through Trainer.parallelize(module, mesh), as in torchtitan and Lightning."""

from __future__ import annotations

import contextlib
import json
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel


class DDPModule(DistributedDataParallel):
    """DistributedDataParallel that answers the wrapped module's attributes, so a step reads the same without it."""

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":   # not built yet: no recursion through the fallback below
                raise
            return getattr(self.module, name)

    def forward(self, *args, **kwargs):
        # without autograd there is nothing to reduce: evaluation calls the module itself, so ranks that run
        # different numbers of forwards (sharded evaluation) never wait on each other's buffer broadcast
        if not torch.is_grad_enabled():
            return self.module(*args, **kwargs)
        return super().forward(*args, **kwargs)


def init_process_group(device: torch.device) -> torch.device:
    """Under torchrun (WORLD_SIZE > 1): join the process group (NCCL on CUDA, gloo on the CPU); the device to use."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def distribute(trainer) -> None:
    """Hand every trained network to trainer.parallelize and put what it returns where the step calls it."""
    # trainer.model, or the model's attribute that held the network (model.critic); the original modules stay in
    # trainer.units for checkpoints, keyed by their own parameter names. Runs before configure_optimizers,
    # because fully_shard swaps parameters for sharded ones
    trainer.units = dict(trainer.raw_model.state_files())   # as they are now: a Trainer may have swapped one since
    if trainer.world_size == 1:
        return
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(trainer.device.type, (trainer.world_size,))
    owners = {id(m): name for name, m in trainer.raw_model.named_modules()}
    for module in trainer.units.values():
        if not any(p.requires_grad for p in module.parameters()):
            continue
        wrapped = trainer.parallelize(module, mesh)
        if wrapped is module:   # changed in place (fully_shard)
            continue
        if module is trainer.raw_model:
            trainer.model = wrapped
            continue
        parent_name, _, attr = owners[id(module)].rpartition(".")
        parent = trainer.raw_model.get_submodule(parent_name)
        setattr(parent, attr, wrapped)
        trainer._swapped.append((parent, attr, module))


def undistribute(trainer) -> None:
    """Put the original networks back (after training: the model is saved and evaluated as one process has it)."""
    for parent, attr, module in trainer._swapped:
        setattr(parent, attr, module)
    trainer._swapped = []
    trainer.model = trainer.raw_model


@contextlib.contextmanager
def no_grad_sync(trainer, skip: bool):
    """While `skip`, gradients accumulate locally (micro-batches before the last): DDP's no_sync, FSDP's switch."""
    if not skip or trainer.world_size == 1:
        yield
        return
    wrapped = [getattr(parent, attr) for parent, attr, _ in trainer._swapped]
    with contextlib.ExitStack() as stack:
        for module in (trainer.model, *wrapped, *trainer.units.values()):
            if isinstance(module, DistributedDataParallel):
                stack.enter_context(module.no_sync())
            elif hasattr(module, "set_requires_gradient_sync"):
                module.set_requires_gradient_sync(False)
                stack.callback(module.set_requires_gradient_sync, True)
        yield


def all_reduce_sum(tensor: torch.Tensor, trainer) -> torch.Tensor:
    """tensor summed over the processes (itself in one process), on the tensor's own device."""
    if trainer.world_size == 1:
        return tensor
    on_comm = tensor.to(trainer._comm_device)
    dist.all_reduce(on_comm)
    return on_comm.to(tensor.device)


def broadcast_json(obj, trainer):
    """Rank 0's JSON-able `obj` on every rank (as UTF-8 bytes in a tensor: nothing is unpickled)."""
    data = json.dumps(obj).encode() if trainer.rank == 0 else b""
    size = torch.tensor([len(data)], dtype=torch.int64, device=trainer._comm_device)
    dist.broadcast(size, 0)
    buf = torch.zeros(int(size), dtype=torch.uint8, device=trainer._comm_device)
    if trainer.rank == 0:
        buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
    dist.broadcast(buf, 0)
    return json.loads(bytes(buf.cpu().tolist()).decode())
