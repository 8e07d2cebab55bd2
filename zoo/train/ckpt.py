"""Checkpoints through torch.distributed.checkpoint.state_dict, written as safetensors and JSON (no pickle).

checkpoints/step-NNNNNN/ holds <stem>.safetensors per trained network, optimizer-NAME.safetensors (keyed
"<parameter name>/<state key>", never by position), rng-rank{r}.safetensors, trainer_state.json and manifest.json.
Full state dicts with cpu_offload gather one tensor at a time onto rank 0's CPU, so under fsdp only rank 0 ever
holds the whole state; a resume reads the files on rank 0 and set_state_dict broadcasts them.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)

from zoo.checkpoint import load_tensors, save_tensors, verify, write_manifest
from zoo.errors import CheckpointError
from zoo.outputs import atomic_folder
from zoo.safeio import read_json

from .dist import broadcast_json
from .rng import gather_rng, seed_new_rank, set_rng_state
from .run import check_fields

FORMAT = 2   # 1 (no "format" key): optimizer state keyed by position, refused with what to do instead
_NAME = re.compile(r"step-\d{6,10}")   # what save_checkpoint writes (steps go up to 10**9)
_LEFTOVER = re.compile(r"\.(step-\d+\.(tmp|old)-.+|trash-step-\d+)")   # atomic_folder's and the pruning's


def full_weights(trainer) -> dict:
    """stem -> the whole state_dict of each trained network, on rank 0's CPU (empty on the other ranks)."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=trainer.world_size > 1)
    return {stem: get_model_state_dict(m, options=options) for stem, m in trainer.units.items()}


def save_checkpoint(run: Path, trainer, step: int, state: dict) -> Path | None:
    """Write checkpoints/step-NNNNNN atomically and keep the newest K; every process calls it, rank 0 writes."""
    weights = full_weights(trainer)
    options = StateDictOptions(full_state_dict=True, cpu_offload=trainer.world_size > 1)
    optimizers = {name: get_optimizer_state_dict(trainer.raw_model, opt, options=options)
                  for name, opt in trainer.optimizers.items()}
    rngs = gather_rng(trainer)
    if trainer.rank != 0:
        return None

    def fill(tmp: Path):
        for stem, tensors in weights.items():
            save_tensors(tensors, tmp / f"{stem}.safetensors")
        meta = {}
        for name, osd in optimizers.items():
            tensors, meta[name] = _split_optimizer(osd)
            save_tensors(tensors, tmp / f"optimizer-{name}.safetensors")
        for r, rng in enumerate(rngs):
            save_tensors(rng, tmp / f"rng-rank{r}.safetensors")
        info = {"format": FORMAT, "step": step, "epoch": trainer.loop.epoch, "position": trainer.loop.position,
                "optimizers": meta, "world_size": trainer.world_size, **state}
        (tmp / "trainer_state.json").write_text(json.dumps(info))
        write_manifest(tmp)

    path = atomic_folder(run / "checkpoints" / f"step-{step:06d}", fill)
    # prune only checkpoints up to this step: newer ones are left from a run that resumed past them because
    # they were damaged, and counting them deleted every fresh good checkpoint as soon as it was written
    done = [p for p in checkpoint_dirs(run) if int(p.name[5:]) <= step]
    for old in done[:-trainer.config.keep_checkpoints]:
        trash = old.with_name(f".trash-{old.name}")   # renamed first: never left half-deleted under its name
        os.replace(old, trash)
        shutil.rmtree(trash, ignore_errors=True)
    return path


def _split_optimizer(osd: dict) -> tuple[dict, dict]:
    """An optimizer state dict keyed by parameter name -> (tensors for safetensors, the rest for JSON)."""
    tensors, other = {}, {}
    for fqn, values in osd["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{fqn}/{key}"] = value
            else:
                other.setdefault(fqn, {})[key] = value
    return tensors, {"param_groups": osd["param_groups"], "state": other, "tensors": len(tensors)}


def _join_optimizer(tensors: dict, meta: dict) -> dict:
    state: dict = {fqn: dict(values) for fqn, values in meta["state"].items()}
    for name, value in tensors.items():
        fqn, key = name.rsplit("/", 1)
        state.setdefault(fqn, {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def load_checkpoint(run: Path, trainer) -> dict | None:
    """Restore the newest checkpoint that verifies (rank 0 chooses and reads it); its trainer_state, or None."""
    chosen = _choose(run) if trainer.rank == 0 else None
    if trainer.world_size > 1:
        chosen = broadcast_json(chosen, trainer)
    if chosen is None:
        return None
    path, info = run / "checkpoints" / chosen["name"], chosen["info"]
    try:
        _restore(path, trainer, info)
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as exc:  # e.g. a changed --set n_layer
        raise CheckpointError(f"{path} does not fit this run's model or optimizer ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); --resume keeps the run's model sizes and optimizer, so "
                              f"drop those --set values or start a new --out") from None
    return info


def _choose(run: Path) -> dict | None:
    for path in reversed(checkpoint_dirs(run)):
        try:
            verify(path)   # trainer_state.json included: it must be in the manifest
            info = check_trainer_state(read_json(path / "trainer_state.json", "trainer_state.json", CheckpointError),
                                       "trainer_state.json")
        except CheckpointError as exc:
            print(f"zoo: warning: skipping damaged checkpoint {path.name}: {exc}", file=sys.stderr)
            continue
        if info.get("format") != FORMAT:
            weights = f"{run / 'final'}" if (run / "final").is_dir() else "FOLDER (after zoo release " \
                      f"{run} --step {info['step']} --out FOLDER)"
            raise CheckpointError(f"{run} was written by an older musezoo whose checkpoints --resume cannot read; "
                                  f"start a new run from its weights with --set init={weights}")
        return {"name": path.name, "info": info}
    return None


def _restore(path: Path, trainer, info: dict) -> None:
    """Rank 0 reads one verified checkpoint; set_state_dict hands every rank its part of it."""
    rank0, many = trainer.rank == 0, trainer.world_size > 1
    device = "cpu" if many else trainer.device
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=many, strict=True)
    for stem, module in trainer.units.items():
        set_model_state_dict(module, load_tensors(path / f"{stem}.safetensors", device) if rank0 else {},
                             options=options)
    for name, opt in trainer.optimizers.items():
        meta = info["optimizers"].get(name)
        if meta is None:
            raise KeyError(f"no state for optimizer {name!r}")
        if not meta.get("tensors"):
            # a stateless optimizer (SGD without momentum): only its param_groups, which every rank has from
            # trainer_state.json (the full-state path needs a state tensor to learn the device from)
            set_optimizer_state_dict(trainer.raw_model, opt, _join_optimizer({}, meta),
                                     options=StateDictOptions(strict=True))
        else:
            tensors = load_tensors(path / f"optimizer-{name}.safetensors", device) if rank0 else None
            set_optimizer_state_dict(trainer.raw_model, opt, _join_optimizer(tensors, meta) if rank0 else {},
                                     options=options)
    mine = path / f"rng-rank{trainer.rank}.safetensors"
    if mine.is_file():
        set_rng_state(load_tensors(mine), trainer.device)
    else:
        seed_new_rank(trainer, info.get("world_size", 1), info["step"])


def checkpoint_dirs(run: Path) -> list[Path]:
    """A run's complete checkpoints, oldest first; temps (.step-...) and strays (step-latest, links) are not."""
    folder = Path(run) / "checkpoints"
    if folder.is_symlink() or not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if _NAME.fullmatch(p.name) and not p.is_symlink() and p.is_dir()]
    return sorted(found, key=lambda p: (int(p.name[5:]), p.name))


def clean_leftovers(run: Path) -> None:
    """Remove the temp and trash folders a killed run left: only names this module and atomic_folder make."""
    folder = run / "checkpoints"
    if folder.is_dir() and not folder.is_symlink():   # a `checkpoints` that is a link, say to ~, is never cleaned
        for p in folder.iterdir():
            if _LEFTOVER.fullmatch(p.name) and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)


def check_trainer_state(info, path) -> dict:
    """A checkpoint's trainer_state.json (resume and release read it), its numbers in range, else a CheckpointError."""
    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: must be a JSON object; the checkpoint is damaged")
    fields = {"step": ("a whole number from 0 to 10^9", (0, 10 ** 9)), "optimizers": ("an object", dict),
              "epoch": ("a whole number from 0 to 10^12", (0, 10 ** 12)),
              "position": ("a whole number from 0 to 10^12", (0, 10 ** 12)),
              "world_size": ("a whole number from 1", (1, 2 ** 20)),
              "elapsed_s": ("a finite number of seconds, 0 or more", lambda v: isinstance(v, (int, float))
                            and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 10 ** 12),
              "last": ("an object", dict)}
    check_fields(info, path, fields, ("step", "optimizers"), CheckpointError, "the checkpoint is damaged or was edited")
    return info
