"""The training settings every plugin shares, the LR schedule, and how --set/--config values are split."""

from __future__ import annotations

import math
from dataclasses import dataclass

from zoo import limits
from zoo.config import removed_keys, valid_keys
from zoo.errors import ConfigError
from zoo.safeio import read_json


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
    # under torchrun: "ddp" (replicated weights) or "fsdp" (sharded weights); Trainer.parallelize applies it
    distributed: str = "ddp"
    init: str = ""                  # start from a saved model's weights (name, folder or hf://): fine-tuning

    def __post_init__(self):
        for name, lo in (("steps", 1), ("batch_size", 1), ("grad_accum", 1), ("metrics_every", 1), ("ckpt_every", 1),
                         ("keep_checkpoints", 1), ("warmup_steps", 0), ("log_every", 0), ("eval_every", 0)):
            if getattr(self, name) < lo:
                raise ConfigError(f"{name} must be at least {lo}, got {getattr(self, name)}")
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
        # every whole number has an upper bound (a plugin's own fields too): grad_accum=10**9 never finished a step.
        # numpy's seeding takes 0..2**32-1: -1 or 2**32 was a traceback after the data load
        limits.check_whole_numbers(self, {"seed": (0, limits.MAX_SEED), "steps": (1, limits.MAX_STEPS),
                                          "batch_size": (1, limits.MAX_BATCH),
                                          "grad_accum": (1, limits.MAX_GRAD_ACCUM),
                                          "keep_checkpoints": (1, limits.MAX_KEEP_CHECKPOINTS)})


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base LR at a step: linear warmup, then constant or cosine to min_lr_ratio."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def split_overrides(values: dict, model_cls, trainer_cls) -> tuple[dict, dict]:
    """Send each key to the model config or the train config; unknown keys list the valid ones."""
    model_keys = set(valid_keys(model_cls.config_class))
    train_keys = set(valid_keys(trainer_cls.config_class))
    # a key a class removed (an old run or --config may name it) goes to it, to drop or refuse it
    # (zoo.config.drop_removed_keys), unless the other class still has it
    to_model = model_keys | (set(removed_keys(model_cls.config_class)) - train_keys)
    to_train = train_keys | (set(removed_keys(trainer_cls.config_class)) - model_keys)
    unknown = sorted(set(values) - to_model - to_train)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; valid model keys: {', '.join(sorted(model_keys))}; "
                          f"valid training keys: {', '.join(sorted(train_keys))}")
    return ({k: v for k, v in values.items() if k in to_model},
            {k: v for k, v in values.items() if k in to_train and k not in to_model})


def read_config_file(path) -> dict:
    """A --config JSON file as flat key: value pairs ({"model": {...}, "train": {...}} sections are merged)."""
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
