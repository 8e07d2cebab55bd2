"""Training Coconet: erase random cells of Bach chorale windows and learn to fill them in (orderless NADE)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from zoo.errors import ConfigError
from zoo.metrics import Metrics
from zoo.train import TrainConfig, Trainer

from .data import split_windows
from .model import nade_loss, random_mask


@dataclass(frozen=True)
class CoconetTrainConfig(TrainConfig):
    """TrainConfig plus the data window and augmentation."""

    n_bars: int = 4               # training windows of this many 4/4 bars (the network is fully convolutional)
    transpose: int = 6            # random shift in [-K, K] semitones, kept inside every voice's range: all 12 keys
    eval_masks: int = 2           # random masks per held-out window for the NLL estimate
    # zoo eval sets this to --num: harmonize that many held-out sopranos (0, in training: skip; it takes minutes)
    eval_samples: int = 0

    def __post_init__(self):
        super().__post_init__()
        for name, lo, hi in (("n_bars", 1, 32), ("transpose", 0, 12), ("eval_masks", 1, 64), ("eval_samples", 0, 100_000)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ConfigError(f"{name} must be a whole number from {lo} to {hi}, got {value!r}")


class CoconetTrainer(Trainer):
    """One step: a batch of windows, a random mask per window, the mean NLL of the erased cells."""

    config_class = CoconetTrainConfig
    select_by = ("valid_framewise_nll", "min")   # zoo release: the lowest held-out NLL (fixed before training)
    defaults = {"lr": 1e-3, "batch_size": 16, "schedule": "constant", "warmup_steps": 100, "grad_clip": 1.0,
                "ckpt_every": 250, "eval_every": 250, "amp": False}

    def _windows(self, source):
        from zoo_chorales.data import load_data

        key = (str(source), self.config.n_bars)
        if getattr(self, "_data_key", None) != key:
            self._data = load_data(source, n_bars=self.config.n_bars, steps_per_bar=self.model.config.steps_per_bar,
                                   n_pitches=84)   # the cached parse; no chorale note lies above 83
            self._data_key = key
        return self._data

    def build_dataset(self, source, split):
        """The registered builder's windows (data.py), with this run's n_bars, and its transposition on 'train'."""
        transpose = self.config.transpose if split == "train" else 0
        return split_windows(self._windows(source), split, self.model, transpose=transpose, seed=self.config.seed)

    def release_files(self) -> dict:
        """tune.mid (the first 8 bars of "Ode to Joy") and harmonized.mid, the model's harmonization of it with
        the default options and seed 0: what the card and the README show."""
        import io
        import tempfile
        from pathlib import Path

        from .example import ode_to_joy

        files = {}
        with tempfile.TemporaryDirectory() as tmp:
            tune = Path(tmp) / "tune.mid"
            ode_to_joy().write(str(tune))
            files["tune.mid"] = tune.read_bytes()
            buffer = io.BytesIO()
            self.model.generate(num=1, seed=0, prompt=str(tune))[0].write(buffer)
            files["harmonized.mid"] = buffer.getvalue()
        return files

    def card_sections(self, summary):
        from .card import card_sections

        return card_sections(summary)

    def parallelize(self, module, mesh):
        """Under fsdp each residual block is its own unit, then the rest (input and output convolutions)."""
        if self.config.distributed != "fsdp":
            return super().parallelize(module, mesh)
        from torch.distributed.fsdp import fully_shard

        for block in module.blocks:
            fully_shard(block, mesh=mesh)
        fully_shard(module, mesh=mesh)
        return module

    def training_step(self, batch, step):
        model = self.model
        classes = model.grid_to_classes(batch)
        b, voices, steps = classes.shape
        mask = random_mask(b, voices, steps, device=classes.device)
        loss = nade_loss(model(model.one_hot(classes), mask), classes, mask)
        return {"loss": loss}

    def evaluate(self, dataset):
        """The NLL of held-out windows, estimated as Uria et al. (2014) do for an orderless NADE: the mean NLL
        of the erased cells under random masks, times the cells per frame, is the expected NLL per 16th
        (summed over the voices) under a random ordering. Fixed masks (seeded), so checkpoints compare."""
        model = self.model
        gen = torch.Generator().manual_seed(1234)
        total, count = 0.0, 0
        for batch in self.eval_batches(dataset, 64):
            batch = model.grid_to_classes(batch)
            for _ in range(self.config.eval_masks):
                b, voices, steps = batch.shape
                mask = random_mask(b, voices, steps, generator=gen).to(batch.device)
                total += float(nade_loss(model(model.one_hot(batch), mask), batch, mask)) * b
                count += b
        total, count = self.reduce_sum(total, count)
        cell = total / max(count, 1)
        out = {"cell_nll": cell, "framewise_nll": cell * model.config.n_voices}
        if self.config.eval_samples:
            from .harmonize import harmonization_scores

            n = min(self.config.eval_samples, len(dataset))
            windows = model.grid_to_classes(torch.stack([dataset[i] for i in range(n)]))
            out.update(harmonization_scores(model, windows, seed=self.config.seed))
        return Metrics(scores=out)   # NLL per 16th frame, not per token: scores of its own
