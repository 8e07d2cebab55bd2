"""`zoo train`: resolve the architecture and settings, take the run folder's lock, build the model and its
trainer, distribute them, resume, run the loop (zoo.train.loop.fit), and save final/ with its model card."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from zoo.config import config_from_dict, parse_overrides, to_dict
from zoo.errors import ConfigError
from zoo.safeio import write_text_atomic

from . import ckpt, run as runfolder
from .config import read_config_file, split_overrides
from .data import DataLoop
from .dist import distribute, init_process_group, undistribute
from .loop import check_protocol, evaluate_split, fit
from .rng import seed_everything

RUN_LOCK = ".lock"


def train_from_args(args) -> Path:
    """`zoo train`: build everything from CLI args and run (resuming if asked)."""
    from zoo.device import set_threads

    values = read_config_file(args.config) if args.config else {}
    values.update(parse_overrides(args.overrides))
    for flag in ("steps", "batch_size", "lr", "seed", "log_every"):
        if getattr(args, flag, None) is not None:
            values[flag] = getattr(args, flag)
    set_threads(getattr(args, "threads", None))
    return train(args.arch, out=args.out, data=args.data, values=values, resume=args.resume, device=args.device)


def train(arch: str, out, data: str | None = None, values: dict | None = None, resume: bool = False,
          device="auto") -> Path:
    """Train `arch` into run folder `out`; returns the final/ folder."""
    from zoo.locks import hold
    from zoo.outputs import check_folder_target, lstat_target
    from zoo.registry import get_registry

    run, registry = Path(out), get_registry()
    args = (arch, run, registry.architecture(arch), registry.trainer(arch), data, values or {}, resume, device)
    rank0 = int(os.environ.get("RANK", "0")) == 0
    taken = ConfigError(f"{run} already exists; pass --resume to continue it, or choose a new --out")
    # zoo.outputs' policy, before any work: a new path or a real folder (never a link, a file, a device or a FIFO);
    # without --resume an empty one (but for its lock), with it a final/ the run may replace at its end
    if rank0 and lstat_target(run, "run folder"):
        if not resume and any(p.name != RUN_LOCK for p in run.iterdir()):
            raise taken
        if resume:
            check_folder_target(run / "final", what="final model folder",
                                advice="the run replaces it at the end: move what musezoo did not write out of it, "
                                       "or train into a new --out")
    if resume and not (run / "run.json").is_file():
        raise ConfigError(f"{run} has no run.json to resume; start a new run without --resume")
    if not rank0:   # torchrun: rank 0 holds the run's lock for all
        return _train_locked(*args)
    made = not run.exists()
    run.mkdir(parents=True, exist_ok=True)
    # one process per run folder: a second `zoo train --out RUN` would interleave checkpoints and metrics;
    # flock is released by the OS when a run dies, so a killed run never blocks the next one; hold() refuses a
    # lock file that is a link, a FIFO or holds anything but a pid
    with hold(run / RUN_LOCK, f"run folder {run}", error=ConfigError):
        try:
            if not resume and any(p.name != RUN_LOCK for p in run.iterdir()):   # again: another run may have ended
                raise taken
            runfolder.refuse_links(run)
            return _train_locked(*args)
        except BaseException:
            if made and [p.name for p in run.iterdir()] == [RUN_LOCK]:   # refused before anything was written
                (run / RUN_LOCK).unlink(missing_ok=True)
                run.rmdir()
            raise


def _train_locked(arch, run: Path, model_cls, trainer_cls, data, values: dict, resume: bool, device) -> Path:
    from zoo.build import check_buildable
    from zoo.device import resolve_device
    from zoo.loader import load

    if resume:
        saved = runfolder.read_run_json(run)
        if saved["arch"] != arch:
            raise ConfigError(f"{run} is a {saved['arch']} run, not {arch}")
        data = saved.get("data") if data is None else data
        values = {**saved["model_config"], **saved["train_config"], **values}
    model_values, train_values = split_overrides(values, model_cls, trainer_cls)
    init = None
    if train_values.get("init") and not resume:
        # fine-tuning: the saved model's config is the base that --set changes; its weights replace the init
        init = load(train_values["init"], device="cpu")
        if init.arch != arch:
            raise ConfigError(f"init={train_values['init']} is a {init.arch} model, not {arch}; fine-tune it with "
                              f"zoo train {init.arch}")
        model_values = {**to_dict(init.config), **model_values}
    model_config = config_from_dict(model_cls.config_class, model_values, what=f"{arch} config")
    train_config = config_from_dict(trainer_cls.config_class, {**trainer_cls.defaults, **train_values},
                                    what="training config")
    check_buildable(model_cls, model_config, what=f"{arch} config")   # --set n_layer=10**6: refused, not allocated

    dev = init_process_group(resolve_device(device))
    try:
        final = _run(run, arch, model_cls, trainer_cls, model_config, train_config, data, dev, resume,
                     init.state_dict() if init is not None else None)
        if dist.is_initialized():
            # rank 0 still writes final/ and its card: the others wait, so that no rank tears down its gloo
            # threads while a peer is still connected (a rank leaving early aborted in about 1 run in 7)
            dist.barrier()
        return final
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _run(run, arch, model_cls, trainer_cls, model_config, config, data, device, resume, init_state) -> Path:
    from zoo.registry import get_registry

    seed_everything(config.seed)
    model = model_cls(model_config, get_registry().new_tokenizer(model_cls))
    if init_state is not None:
        model.load_state_dict(init_state)
    model = model.to(device).train()
    if dist.is_initialized():
        torch.manual_seed(config.seed * 7919 + dist.get_rank())  # same init everywhere, own noise per process
    trainer = trainer_cls(model, config, source=data, device=device)
    rank0 = trainer.rank == 0
    distribute(trainer)
    trainer.optimizers = trainer.configure_optimizers()
    check_protocol(trainer)
    trainer.base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in trainer.optimizers.items()}
    dataset = trainer.build_dataset(data, "train")

    if resume and rank0:
        ckpt.clean_leftovers(run)
    info = (ckpt.load_checkpoint(run, trainer) if resume else None) or {}
    step = info.get("step", 0)
    trainer.loop = DataLoop(dataset, config, trainer.rank, trainer.world_size, epoch=info.get("epoch", 0),
                            position=info.get("position", 0), device=device)
    where = runfolder.hardware(device)
    if rank0:
        runfolder.write_run_json(run, arch, model_config, config, data, trainer.world_size, trainer.precision, where)
        runfolder.report_start(arch, trainer, where)
        runfolder.truncate_metrics(run / "metrics.jsonl", step)
        if resume:
            print(f"zoo: resuming {run} at step {step}" if info else f"zoo: no checkpoint in {run}; starting at step 0",
                  file=sys.stderr)

    last, elapsed = fit(trainer, run, data, step, info.get("elapsed_s", 0.0))

    test = evaluate_split(trainer, data, "test")
    summary = {"arch": arch, "steps": config.steps, "model_config": to_dict(model_config),
               "train_config": to_dict(config), "data": runfolder.data_name(data), "last": last,
               "test_metrics": test, "hardware": where, "world_size": trainer.world_size,
               "train_time_s": round(elapsed, 1), "parameters": model.num_parameters(), "precision": trainer.precision}
    plain = _plain_model(trainer, model_cls)
    final = run / "final"
    if rank0:
        from zoo.card import build_card

        plain.eval()
        card = build_card(plain, summary, trainer.card_sections(summary), model_cls.card_metadata)
        plain.save_pretrained(final, card=card)
        write_text_atomic(run / "summary.json", json.dumps(summary, indent=2) + "\n")
        print(f"zoo: trained {arch} for {config.steps} steps; model saved to {final}", file=sys.stderr)
    return final


def _plain_model(trainer, model_cls):
    """The trained model as one process holds it: itself, or under fsdp a copy rank 0 builds (None elsewhere)."""
    undistribute(trainer)
    if trainer.world_size == 1 or trainer.config.distributed != "fsdp":   # not sharded
        return trainer.raw_model
    weights = ckpt.full_weights(trainer)   # a collective: every rank calls it
    if trainer.rank != 0:
        return None
    model = trainer.raw_model
    plain = model_cls(model.config, model.tokenizer)
    for stem, module in plain.state_files().items():
        module.load_state_dict(weights[stem])
    return plain
