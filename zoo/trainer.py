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
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.distributed as dist

import zoo
from zoo.checkpoint import atomic_folder, load_tensors, save_tensors, verify, write_manifest
from zoo.config import config_from_dict, parse_overrides, to_dict, valid_keys
from zoo.errors import CheckpointError, ConfigError, DataError
from zoo.safeio import read_json, write_text_atomic


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
        if self.schedule not in ("constant", "cosine"):
            raise ConfigError(f"schedule must be 'constant' or 'cosine', got {self.schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError("min_lr_ratio must be between 0 and 1")
        from zoo.limits import MAX_BATCH, MAX_STEPS, check_int, check_seed

        check_seed(self.seed)   # numpy's seeding takes 0..2**32-1: -1 or 2**32 was a traceback after the data load
        check_int(self.steps, "steps", 1, MAX_STEPS)
        check_int(self.batch_size, "batch_size", 1, MAX_BATCH)


class Trainer:
    """Base class of a plugin's training step. See docs/training.md and docs/contract.md."""

    config_class: ClassVar[type] = TrainConfig
    defaults: ClassVar[dict] = {}   # the plugin's TrainConfig defaults, e.g. {"lr": 1e-3}

    def __init__(self, model, config: TrainConfig, source: str | None = None, device="cpu"):
        self.model = model
        self.config = config
        self.source = source
        self.device = torch.device(device)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        self._loop = None

    # ---- what a plugin implements -------------------------------------------------
    def build_dataset(self, source: str | None, split: str):
        """A map-style Dataset for 'train', 'valid' or 'test' (source None = the embedded data)."""
        raise NotImplementedError

    def configure_optimizers(self) -> dict:
        """Name -> optimizer. One for a language model; e.g. 'critic' and 'generator' for a GAN."""
        return {"main": torch.optim.AdamW(self.model.parameters(), lr=self.config.lr)}

    def training_step(self, batch, step: int) -> dict:
        """One optimizer step. Return {'loss': tensor, ...} or call self.optimize() and return floats."""
        raise NotImplementedError

    def evaluate(self, dataset) -> dict:
        """Metrics on held-out data (optional)."""
        return {}

    def model_card(self, summary: dict) -> str:
        """The README.md of final/; plugins may override to add their metrics."""
        return default_card(summary)

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

    def optimize(self, name: str, loss: torch.Tensor) -> float:
        """zero_grad, backward, gradient all-reduce (torchrun), clip, step. Returns the grad norm."""
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return self._finish_step(opt)

    def next_batch(self):
        """Another batch from the training data (for steps that need several, e.g. critic steps)."""
        return self._loop.next_batch()

    def _finish_step(self, opt) -> float:
        params = [p for g in opt.param_groups for p in g["params"] if p.grad is not None]
        if self.world_size > 1:
            _allreduce_mean([p.grad for p in params])
        norm = 0.0
        if self.config.grad_clip > 0 and params:
            norm = float(torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip))
        opt.step()
        return norm


def _allreduce_mean(grads: list[torch.Tensor]) -> None:
    """Average gradients over processes in one flat buffer (what DDP's reducer does)."""
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of the base LR at a step: linear warmup, then constant or cosine to min_lr_ratio."""
    if config.warmup_steps and step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return 1.0
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class _DataLoop:
    """Seeded, resumable, sharded batches: epoch e's order is randperm(seed, e); rank r takes its slice
    of every global batch, so N processes see exactly the batches one process would."""

    def __init__(self, dataset, config: TrainConfig, rank: int, world: int, epoch=0, position=0):
        self.dataset, self.config, self.rank, self.world = dataset, config, rank, world
        self.epoch, self.position = epoch, position
        if config.batch_size % world:
            raise ConfigError(f"batch_size {config.batch_size} must be divisible by the {world} torchrun processes")
        self.per_batch = len(dataset) // config.batch_size
        if self.per_batch == 0:
            raise DataError(f"the training data has {len(dataset)} examples, fewer than one batch of "
                            f"{config.batch_size}; use a smaller --batch-size or more data")
        self._set_epoch()

    def _set_epoch(self):
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        g = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.epoch)
        self.order = torch.randperm(len(self.dataset), generator=g)

    def next_batch(self):
        if self.position >= self.per_batch:
            self.epoch, self.position = self.epoch + 1, 0
            self._set_epoch()
        b, local = self.config.batch_size, self.config.batch_size // self.world
        ids = self.order[self.position * b:(self.position + 1) * b][self.rank * local:(self.rank + 1) * local]
        self.position += 1
        return torch.utils.data.default_collate([self.dataset[int(i)] for i in ids])


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
    """Flatten an optimizer's state into tensors (safetensors) and JSON (everything else). No pickle."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _load_optimizer(opt, tensors: dict, meta: dict) -> None:
    state: dict = {}
    for name, value in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for pid, values in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(values)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def checkpoint_dirs(run: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temp folders start with a dot and are ignored)."""
    folder = run / "checkpoints"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-"))


def save_checkpoint(run: Path, trainer: Trainer, loop: _DataLoop, step: int, state: dict) -> Path:
    """Write checkpoints/step-NNNNNN atomically, then keep only the newest K."""
    def fill(tmp: Path):
        for stem, module in trainer.model.state_files().items():
            save_tensors(module.state_dict(), tmp / f"{stem}.safetensors")
        meta = {}
        for name, opt in trainer.optimizers.items():
            tensors, meta[name] = _optimizer_tensors(opt)
            save_tensors(tensors, tmp / f"optimizer-{name}.safetensors")
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng.update({f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        save_tensors(rng, tmp / "rng.safetensors")
        np_state = np.random.get_state()
        py_state = random.getstate()
        info = {"step": step, "epoch": loop.epoch, "position": loop.position, "optimizers": meta,
                "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
                "python_rng": [py_state[0], list(py_state[1]), py_state[2]], **state}
        (tmp / "trainer_state.json").write_text(json.dumps(info))
        write_manifest(tmp)

    path = atomic_folder(run / "checkpoints" / f"step-{step:06d}", fill)
    # prune only checkpoints up to this step: newer ones are left from a run that resumed past them because
    # they were damaged, and counting them deleted every fresh good checkpoint as soon as it was written
    done = [p for p in checkpoint_dirs(run) if p.name[5:].isdigit() and int(p.name[5:]) <= step]
    for old in sorted(done, key=lambda p: int(p.name[5:]))[:-trainer.config.keep_checkpoints]:
        _remove(old)
    return path


def _remove(folder: Path) -> None:
    """Delete a folder without ever leaving it half-deleted under its name: rename first, then delete."""
    trash = folder.with_name(f".trash-{folder.name}")
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def clean_leftovers(run: Path) -> None:
    """Remove temp and trash folders a killed run left behind (their names start with a dot)."""
    folder = run / "checkpoints"
    if folder.is_dir():
        for p in folder.iterdir():
            if p.name.startswith("."):
                shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(run: Path, trainer: Trainer) -> dict | None:
    """Restore the newest checkpoint that verifies; returns its trainer_state or None."""
    for path in reversed(checkpoint_dirs(run)):
        try:
            verify(path)   # trainer_state.json included: it must be in the manifest
            info = read_json(path / "trainer_state.json", "trainer_state.json", CheckpointError)
            if not isinstance(info, dict) or isinstance(info.get("step"), bool) or not isinstance(info.get("step"), int) \
                    or not 0 <= info["step"] <= 10 ** 9 or not isinstance(info.get("optimizers"), dict):
                raise CheckpointError("trainer_state.json: malformed step or optimizers")
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
        module.load_state_dict(load_tensors(path / f"{stem}.safetensors", trainer.device))
    for name, opt in trainer.optimizers.items():
        _load_optimizer(opt, load_tensors(path / f"optimizer-{name}.safetensors", trainer.device),
                        info["optimizers"][name])
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
    from zoo.device import resolve_device
    from zoo.registry import get_registry

    registry = get_registry()
    model_cls, trainer_cls = registry.architecture(arch), registry.trainer(arch)
    run = Path(out)
    values = dict(values or {})
    if resume:
        if not (run / "run.json").is_file():
            raise ConfigError(f"{run} has no run.json to resume; start a new run without --resume")
        saved = read_json(run / "run.json", "run.json", ConfigError)
        if not isinstance(saved, dict) or not isinstance(saved.get("arch"), str) \
                or not isinstance(saved.get("model_config"), dict) or not isinstance(saved.get("train_config"), dict):
            raise ConfigError(f"{run / 'run.json'}: malformed (arch, model_config, train_config); "
                              f"start a new run with a new --out")
        if saved["arch"] != arch:
            raise ConfigError(f"{run} is a {saved['arch']} run, not {arch}")
        data = saved["data"] if data is None else data
        values = {**saved["model_config"], **saved["train_config"], **values}
    elif run.exists() and any(run.iterdir()):
        raise ConfigError(f"{run} already exists; pass --resume to continue it, or choose a new --out")
    model_values, train_values = split_overrides(values, model_cls, trainer_cls)
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
        return _run(run, arch, model_cls, trainer_cls, model_config, train_config, data, dev, resume)
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _run(run, arch, model_cls, trainer_cls, model_config, config, data, device, resume) -> Path:
    from zoo.progress import bar

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = model_cls(model_config).to(device)
    model.train()
    if dist.is_initialized() and dist.get_world_size() > 1:
        torch.manual_seed(config.seed * 7919 + dist.get_rank())  # same init everywhere, own noise per process
    trainer = trainer_cls(model, config, source=data, device=device)
    rank0 = trainer.rank == 0
    trainer.optimizers = trainer.configure_optimizers()
    base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in trainer.optimizers.items()}
    dataset = trainer.build_dataset(data, "train")

    if resume and trainer.rank == 0:
        clean_leftovers(run)
    info = load_checkpoint(run, trainer) if resume else None
    step = info["step"] if info else 0
    elapsed = info.get("elapsed_s", 0.0) if info else 0.0
    loop = _DataLoop(dataset, config, trainer.rank, trainer.world_size,
                     epoch=info["epoch"] if info else 0, position=info["position"] if info else 0)
    trainer._loop = loop
    if rank0:
        run.mkdir(parents=True, exist_ok=True)
        _write_run_json(run, arch, model_config, config, data, trainer.world_size, trainer.precision)
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
        last = {k: float(v) for k, v in logs.items()}
        last["lr"] = config.lr * factor
        if config.eval_every and step % config.eval_every == 0 and step < config.steps:
            last.update({f"valid_{k}": v for k, v in _evaluate(trainer, data, "valid").items()})
        if rank0:
            now = time.monotonic()
            rate = steps_this_session / max(now - t0, 1e-9)
            if step % config.metrics_every == 0 or step == config.steps or "valid_loss" in last:
                with open(run / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({"step": step, **last, "time_s": round(elapsed + now - t0, 3)}) + "\n")
            if progress is not None:
                progress.update(1)
                progress.set_postfix({k: f"{v:.4g}" for k, v in last.items() if k != "lr"}, refresh=False)
            if config.log_every and step % config.log_every == 0:
                eta = (config.steps - step) / rate if rate else 0
                losses = " ".join(f"{k}={v:.4g}" for k, v in last.items())
                print(f"step {step}/{config.steps} {losses} {rate:.2f} it/s eta {eta:.0f}s", file=sys.stderr, flush=True)
        if step % config.ckpt_every == 0 or step == config.steps:
            if rank0:
                save_checkpoint(run, trainer, loop, step, {"elapsed_s": elapsed + time.monotonic() - t0, "last": last})
            if trainer.world_size > 1:
                dist.barrier()
    if progress is not None:
        progress.close()
    elapsed += time.monotonic() - t0

    final_metrics = _evaluate(trainer, data, "test")
    summary = {"arch": arch, "steps": config.steps, "model_config": to_dict(model_config),
               "train_config": to_dict(config), "data": data or "embedded default", "last": last,
               "test_metrics": final_metrics, "hardware": hardware(device), "world_size": trainer.world_size,
               "train_time_s": round(elapsed, 1), "parameters": model.num_parameters(),
               "precision": trainer.precision}
    final = run / "final"
    if rank0:
        model.eval()
        model.save_pretrained(final, card=trainer.model_card(summary))
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


def _one_step(trainer: Trainer, step: int) -> dict:
    """Run the plugin's step; for a returned loss, do backward/accumulate/clip/step here."""
    config = trainer.config
    logs: dict = {}
    for micro in range(config.grad_accum):
        batch = _to_device(trainer.next_batch(), trainer.device)
        with trainer.autocast():
            out = trainer.training_step(batch, step)
        loss = out.get("loss") if isinstance(out, dict) else None
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            if config.grad_accum > 1:
                raise ConfigError("grad_accum > 1 needs a training_step that returns {'loss': tensor}")
            return {k: float(v) for k, v in out.items()}
        if micro == 0:
            for opt in trainer.optimizers.values():
                opt.zero_grad(set_to_none=True)
        (loss / config.grad_accum).backward()
        for k, v in out.items():
            logs[k] = logs.get(k, 0.0) + float(v.detach() if isinstance(v, torch.Tensor) else v) / config.grad_accum
    (opt,) = trainer.optimizers.values()
    logs["grad_norm"] = trainer._finish_step(opt)
    return logs


def _evaluate(trainer: Trainer, data, split: str) -> dict:
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
        print(f"zoo: warning: no {split} metrics: {exc}", file=sys.stderr)
        return {}
    finally:
        trainer.model.train(was_training)


def _write_run_json(run: Path, arch, model_config, config, data, world, precision="fp32") -> None:
    from zoo.registry import get_registry

    plugin = get_registry().get("architectures", arch).plugin
    try:
        import importlib.metadata as md

        plugin_version = md.version(plugin)
    except Exception:
        plugin_version = None
    info = {"arch": arch, "model_config": to_dict(model_config), "train_config": to_dict(config), "data": data,
            "zoo_version": zoo.__version__, "plugin": plugin, "plugin_version": plugin_version,
            "torch_version": torch.__version__, "world_size": world, "precision": precision,
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


def default_card(summary: dict) -> str:
    """A model card from a training summary: what, data, steps, hardware, time, losses, metrics."""
    rows = "\n".join(f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
                     for k, v in {**{f"train_{k}": v for k, v in summary["last"].items()},
                                 **{f"test_{k}": v for k, v in summary["test_metrics"].items()}}.items())
    return f"""# {summary['arch']} trained with musezoo

- Architecture: `{summary['arch']}` ({summary['parameters']:,} parameters)
- Data: {summary['data']}
- Steps: {summary['steps']} (batch {summary['train_config']['batch_size']}, {summary['world_size']} process(es))
- Hardware: {summary['hardware']}
- Precision: {summary.get('precision', 'fp32')}
- Training time: {summary['train_time_s']} s

## Config

```json
{json.dumps(summary['model_config'], indent=2)}
```

## Final training losses and test metrics

| metric | value |
| --- | --- |
{rows}
"""
