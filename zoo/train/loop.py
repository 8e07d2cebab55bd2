"""The training loop (fit), one screen read top to bottom as nanoGPT's train.py, and one optimizer step (train_step)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

from zoo.errors import ConfigError, DataError, PluginError

from .base import Trainer, check_loss
from .ckpt import save_checkpoint
from .config import lr_factor
from .dist import all_reduce_sum, no_grad_sync
from .run import append_metrics, report_first_steps

FIRST_REPORT = 3   # steps after which the measured speed, memory and ETA are printed once


def fit(trainer: Trainer, run: Path, data, step: int = 0, elapsed: float = 0.0) -> tuple[dict, float]:
    """Train from `step` to config.steps; returns the last logged values and the training time in seconds."""
    from zoo.progress import bar

    config, rank0 = trainer.config, trainer.rank == 0
    progress = bar(total=config.steps, desc=trainer.raw_model.arch, initial=step) if rank0 else None
    last: dict = {}
    t0, done = time.monotonic(), 0
    while step < config.steps:
        factor = lr_factor(step, config)
        for name, opt in trainer.optimizers.items():
            for group, lr in zip(opt.param_groups, trainer.base_lrs[name]):
                group["lr"] = lr * factor
        logs = train_step(trainer, step)
        step, done = step + 1, done + 1
        if rank0 and done == FIRST_REPORT and step < config.steps:
            report_first_steps(done, time.monotonic() - t0, config.steps - step)
        evaluated = bool(config.eval_every and step % config.eval_every == 0 and step < config.steps)
        valid = evaluate_split(trainer, data, "valid") if evaluated else {}
        checkpointing = step % config.ckpt_every == 0 or step == config.steps
        metrics_line = step % config.metrics_every == 0 or step == config.steps or evaluated
        log_line = bool(config.log_every and step % config.log_every == 0)
        logged = metrics_line or checkpointing or log_line
        if logged:   # float() waits for the device: only here, never every step
            last = {**{k: float(v) for k, v in logs.items()}, "lr": config.lr * factor,
                    **{f"valid_{k}": v for k, v in valid.items()}}
        if rank0:
            seconds = time.monotonic() - t0
            if metrics_line:
                append_metrics(run, {"step": step, **last, "time_s": round(elapsed + seconds, 3)})
            progress.update(1)
            if logged:
                progress.set_postfix({k: f"{v:.4g}" for k, v in last.items() if k != "lr"}, refresh=False)
            if log_line:
                rate = done / max(seconds, 1e-9)
                losses = " ".join(f"{k}={v:.4g}" for k, v in last.items())
                print(f"step {step}/{config.steps} {losses} {rate:.2f} it/s eta {(config.steps - step) / rate:.0f}s",
                      file=sys.stderr, flush=True)
        if checkpointing:
            save_checkpoint(run, trainer, step, {"elapsed_s": elapsed + time.monotonic() - t0, "last": last})
            if trainer.world_size > 1:
                dist.barrier()
    trainer.loop.close()
    if progress is not None:
        progress.close()
    return last, elapsed + time.monotonic() - t0


def train_step(trainer: Trainer, step: int) -> dict:
    """One optimizer step under the trainer's protocol; logs stay tensors (no host sync but for loss_sum)."""
    name, n = type(trainer).__name__, trainer.config.grad_accum
    if trainer.manual_optimization:
        trainer.optimize_calls = 0
        with trainer.autocast():
            out = _as_dict(trainer.training_step(trainer.next_batch(), step), name)
        if trainer.optimize_calls == 0:
            raise PluginError(f"{name}.training_step (manual_optimization = True) never called self.optimize(), "
                              f"so it trained nothing; call it once per update, or return {{'loss': loss}} and set "
                              f"manual_optimization = False")
        return out
    (opt,) = trainer.optimizers.values()   # check_protocol made sure there is exactly one
    opt.zero_grad(set_to_none=True)
    logs: dict = {}
    loss_sum = None
    for micro in range(n):
        # DDP/FSDP reduce gradients in the last micro-batch's backward only; the others accumulate locally
        with no_grad_sync(trainer, skip=micro < n - 1):
            with trainer.autocast():
                out = _as_dict(trainer.training_step(trainer.next_batch(), step), name)
            if "loss_sum" in out:   # a sum over a count: backward of the sum, divided by the total count below
                check_loss(out.get("loss_sum"), "the 'loss_sum' that training_step returned", name)
                if "count" not in out:
                    raise PluginError(f"{name}.training_step returned 'loss_sum' without 'count'")
                out["loss_sum"].backward()
                part = torch.stack([out.pop("loss_sum").detach().double(), torch.as_tensor(out.pop("count")).double()
                                    .to(trainer.device)])
                loss_sum = part if loss_sum is None else loss_sum + part
            else:
                check_loss(out.get("loss"), "the 'loss' that training_step returned", name)
                (out["loss"] / n).backward()
        for k, v in out.items():
            v = v.detach() if isinstance(v, torch.Tensor) else v
            logs[k] = logs.get(k, 0.0) + v / n
    scale = 1.0
    if loss_sum is not None:
        # DDP and FSDP average the gradients of N processes: N / (count of all processes and micro-batches)
        # turns that average of sums into the gradient of one mean, exactly what one process would compute
        total, count = all_reduce_sum(loss_sum, trainer).tolist()
        scale = trainer.world_size / max(count, 1.0)
        logs["loss"], logs["count"] = total / max(count, 1.0), count
    logs["grad_norm"] = trainer._clip_and_step(opt, scale)
    return logs


def _as_dict(out, trainer: str) -> dict:
    if not isinstance(out, dict):
        raise PluginError(f"{trainer}.training_step returned {type(out).__name__}; it must return a dict "
                          f"({{'loss': tensor, ...}}, or the logs of a manual_optimization step)")
    return dict(out)


def check_protocol(trainer: Trainer) -> None:
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


def evaluate_split(trainer: Trainer, data, split: str) -> dict:
    """The plugin's metrics on a split; every process calls it (evaluate may share the work: reduce_sum)."""
    if type(trainer).evaluate is Trainer.evaluate:
        return {}
    was_training = trainer.raw_model.training
    trainer.raw_model.eval()
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
        trainer.raw_model.train(was_training)
