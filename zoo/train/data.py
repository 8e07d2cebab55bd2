"""The resumable sampler and data loop: seeded, sharded across torchrun processes, restartable mid-epoch."""

from __future__ import annotations

import torch

from zoo.errors import ConfigError, DataError


class GlobalBatches(torch.utils.data.Sampler):
    """This rank's slice of every global batch from (epoch, position) on, for ever, as (epoch, index) items."""
    # epoch e's order is randperm(seed, e); rank r takes the r-th 1/N of each global batch, so N processes
    # together see exactly the batches one process would

    def __init__(self, n: int, batch_size: int, seed: int, rank: int, world: int, epoch: int, position: int):
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.position = epoch, position

    def __iter__(self):
        b, local = self.batch_size, self.batch_size // self.world
        epoch, position = self.epoch, self.position
        while True:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g)
            for pos in range(position, self.n // b):
                ids = order[pos * b:(pos + 1) * b][self.rank * local:(self.rank + 1) * local]
                yield [(epoch, int(i)) for i in ids]
            epoch, position = epoch + 1, 0


class EpochItems(torch.utils.data.Dataset):
    """dataset[(epoch, i)] is dataset[i] in that epoch (set_epoch, for random crops), in worker processes too."""

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


class DataLoop:
    """Seeded, resumable, sharded batches through a DataLoader (worker processes, pinned memory on CUDA)."""
    # (epoch, position) count batches handed to the step, not prefetched ones: a resume starts at the next unseen

    def __init__(self, dataset, config, rank: int = 0, world: int = 1, epoch: int = 0, position: int = 0,
                 device="cpu"):
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
        """The next batch (this process's share of the next global batch), on the CPU."""
        if self.position >= self.per_batch:
            self.epoch, self.position = self.epoch + 1, 0
        if self._batches is None:
            c = self.config
            sampler = GlobalBatches(len(self.dataset), c.batch_size, c.seed, self.rank, self.world, self.epoch,
                                    self.position)
            workers = c.num_workers if c.num_workers >= 0 else (2 if self.device.type == "cuda" else 0)
            self._batches = iter(torch.utils.data.DataLoader(
                EpochItems(self.dataset), batch_sampler=sampler, num_workers=workers,
                pin_memory=self.device.type == "cuda", prefetch_factor=4 if workers else None,
                # its own generator: a DataLoader draws its workers' base seed when it starts, and from the
                # global RNG that would shift the training noise of a resumed run against an uninterrupted one
                generator=torch.Generator().manual_seed(c.seed)))
        self.position += 1
        return next(self._batches)

    def close(self) -> None:
        """Stop the worker processes."""
        self._batches = None


def to_device(batch, device):
    """A batch (tensor, or lists, tuples and dicts of them) on `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch
