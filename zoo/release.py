"""`zoo release RUN --out DIR`: a run's best (or chosen) checkpoint, measured on the test split by its trainer's
own evaluate() (if it has one), saved in the Hub layout with a full model card and the trainer's release files."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from zoo.errors import ConfigError


def pick_checkpoint(run: Path, select_by: tuple[str, str] | None, step: int | None,
                    logged: list[dict]) -> tuple[Path, list]:
    """The checkpoint to release (`step`'s, else the best by the `logged` `select_by` metric, else the newest) and
    the selection curve [(step, value)] it was picked from."""
    from zoo.train import checkpoint_dirs

    ckpts = {int(p.name[5:]): p for p in checkpoint_dirs(run)}   # step-NNNNNN only: strays are not listed
    if not ckpts:
        raise ConfigError(f"{run} has no checkpoints; train first (zoo train ... --out {run})")
    if step is not None:
        if step not in ckpts:
            raise ConfigError(f"{run} has no checkpoint at step {step}; it has {', '.join(map(str, sorted(ckpts)))}")
        return ckpts[step], []
    curve = []
    if select_by:
        key, mode = select_by
        curve = [(m["step"], m[key]) for m in logged if isinstance(m.get(key), (int, float))]
        kept = [(s, v) for s, v in curve if s in ckpts]
        if kept:
            best = (min if mode == "min" else max)(kept, key=lambda sv: sv[1])
            return ckpts[best[0]], curve
    return ckpts[max(ckpts)], curve


def release(run, out, step: int | None = None, notes: str | None = None, values: dict | None = None,
            device="cpu", overwrite: bool = False) -> Path:
    """Load a checkpoint of `run`, evaluate it on the test split, save it to `out` (checked first, as zoo.outputs
    says) with a full model card."""
    import torch

    from zoo.build import check_against_weights
    from zoo.card import build_card
    from zoo.checkpoint import load_tensors, verify
    from zoo.config import config_from_dict, to_dict
    from zoo.errors import CheckpointError
    from zoo.outputs import check_folder_target
    from zoo.registry import get_registry
    from zoo.safeio import read_json
    from zoo.train import (Trainer, check_trainer_state, data_name, hardware, read_metrics, read_run_json,
                           split_overrides)

    run = Path(run)
    check_folder_target(out, sources=((run, "run"),), overwrite=overwrite, hint="--overwrite")
    info = read_run_json(run)
    registry = get_registry()
    arch = info["arch"]
    model_cls, trainer_cls = registry.architecture(arch), registry.trainer(arch)
    merged = {**info["model_config"], **info["train_config"], **(values or {})}
    model_values, train_values = split_overrides(merged, model_cls, trainer_cls)
    model_config = config_from_dict(model_cls.config_class, model_values, what=f"{arch} config")
    train_config = config_from_dict(trainer_cls.config_class, train_values, what="training config")
    lines = read_metrics(run)
    ckpt, curve = pick_checkpoint(run, trainer_cls.select_by, step, lines)
    verify(ckpt)
    state = check_trainer_state(read_json(ckpt / "trainer_state.json", "trainer_state.json", CheckpointError),
                                ckpt / "trainer_state.json")
    tokenizer = registry.new_tokenizer(model_cls)
    # run.json's sizes against the checkpoint's safetensors headers, on the meta device: `n_layer: 20000` is
    # refused from arithmetic, before anything is allocated (as zoo generate does for a model folder)
    check_against_weights(model_cls, model_config, tokenizer, ckpt, getattr(model_cls, "optional_state_files", ()))
    model = model_cls(model_config, tokenizer)
    for stem, module in model.state_files().items():
        module.load_state_dict(load_tensors(ckpt / f"{stem}.safetensors", device))
    model.to(device).eval()
    data = info.get("data")
    # the trainer only evaluates a checkpoint here: built with the run's init= it would act as if a fine-tune were
    # starting (MuseGAN's copies its average over the trained generator), so the release would not be the checkpoint
    trainer = trainer_cls(model, dataclasses.replace(train_config, init=None), source=data, device=device)
    measure = trainer_cls.evaluate is not Trainer.evaluate   # without its own evaluate(), the test split is not read
    print(f"zoo: releasing {ckpt.name} of {run}" + ("; measuring it on the test split" if measure else ""),
          file=sys.stderr)
    test = {}
    if measure:
        with torch.no_grad():
            test = {k: float(v) for k, v in trainer.evaluate(trainer.build_dataset(data, "test")).items()}
    logged = next((m for m in lines if m.get("step") == state["step"]), {})
    summary = {"arch": arch, "steps": state["step"], "model_config": to_dict(model_config),
               "train_config": to_dict(train_config), "data": data_name(data),
               "last": {k: v for k, v in logged.items() if isinstance(v, (int, float)) and k not in ("step", "time_s")},
               "test_metrics": test, "hardware": info.get("hardware") or hardware(device),
               "world_size": info.get("world_size", 1), "train_time_s": round(float(state.get("elapsed_s", 0.0)), 1),
               "parameters": model.num_parameters(), "precision": info.get("precision", "fp32")}
    sections = trainer.card_sections(summary)
    if curve:
        key, mode = trainer_cls.select_by
        rows = "\n".join(f"| {s} | {v:.4f} |{' selected' if s == state['step'] else ''}" for s, v in curve)
        sections["Checkpoint selection"] = (
            f"The released checkpoint is step {state['step']}, the one with the "
            f"{'lowest' if mode == 'min' else 'highest'} `{key}` among the run's checkpoints "
            f"(measured on the validation split during training):\n\n| step | {key} |\n| ---: | ---: |\n{rows}")
    card = build_card(model, summary, sections, model_cls.card_metadata, notes=notes)
    return model.save_pretrained(out, card=card, extra_files=trainer.release_files(), overwrite=overwrite)
