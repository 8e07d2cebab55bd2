"""Train MuseGAN at the book's widths on a GPU for a fixed number of minutes; save checkpoints as safetensors shards.

    python -m zoo_musegan.train_gpu --minutes 30 --out runs/musegan-gpu          # on a CUDA machine
    python -m zoo_musegan.train_gpu --export runs/musegan-gpu/latest --out musegan-gpu   # a zoo model folder

The book's widths take 9.8 s per WGAN-GP step on one CPU thread, too slow to train here. This script runs the
plugin's own training step (MuseGANTrainer.training_step: the critic's updates, the generator's, the moving
average) in a loop that stops at a wall-clock deadline, and writes `latest/` every --save-minutes and at the
end: the generator, the critic and the moving average, each as shards under 16 MiB (files a Hub upload or a
git repository takes without LFS), with an index per network as Hugging Face writes them, plus config.json
(the model's and the training's settings) and metrics.json (the validation metrics at the end).
Options: --set key=value for any model or training key (the defaults: the book's widths with musegan-bach's
options and the branch recipe of configs/musegan_bach_branch.json).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from zoo.errors import ConfigError, ZooError

SHARD_BYTES = 16 * 2**20 - 2**16            # under 16 MiB with room for the safetensors header
NETWORKS = {"generator": "generator", "critic": "critic", "ema": "generator_ema"}   # file stem -> MuseGAN attribute
# the book's widths (MuseGANConfig's defaults) with the shipped model's options, and issue #30's balance
DEFAULTS = {"output": "gumbel", "gumbel_tau": 0.3, "sample_temperature": 0.35, "critic_onsets": True,
            "lr": 1e-4, "critic_lr": 3e-4, "ema_decay": 0.999, "transpose": 6, "batch_size": 64}


def build(values: dict, device: str, source=None):
    """A MuseGAN of the book's widths (with `values` on top of DEFAULTS) and its trainer, on `device`."""
    from zoo.config import config_from_dict
    from zoo.train import split_overrides

    from .model import MuseGAN
    from .train import MuseGANTrainer

    model_values, train_values = split_overrides({**DEFAULTS, **values}, MuseGAN, MuseGANTrainer)
    model_config = config_from_dict(MuseGAN.config_class, model_values, what="musegan config")
    train_config = config_from_dict(MuseGANTrainer.config_class, {**MuseGANTrainer.defaults, **train_values},
                                    what="training config")
    torch.manual_seed(train_config.seed)
    model = MuseGAN(model_config).to(device).train()
    trainer = MuseGANTrainer(model, train_config, source=source, device=device)
    trainer.optimizers = trainer.configure_optimizers()
    return model, trainer


def batches(dataset, batch_size: int, seed: int, device):
    """Shuffled batches on `device`, epoch after epoch (each epoch its own transpositions)."""
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed + epoch))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            yield torch.stack([dataset[int(i)] for i in order[start:start + batch_size]]).to(device)
        epoch += 1


def shard(tensors: dict[str, torch.Tensor], limit: int = SHARD_BYTES) -> list[dict[str, torch.Tensor]]:
    """Tensors packed in order into groups of at most `limit` bytes each."""
    groups, size = [{}], 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if nbytes > limit:
            raise ConfigError(f"{name} alone is {nbytes:,} bytes, more than a shard's {limit:,}")
        if size + nbytes > limit and groups[-1]:
            groups.append({})
            size = 0
        groups[-1][name] = t
        size += nbytes
    return groups


def save(folder: Path, model, info: dict) -> Path:
    """`folder` written atomically: each network as <stem>-0000k-of-0000n.safetensors shards plus
    <stem>.safetensors.index.json, config.json and metrics.json; a manifest of checksums over all of it."""
    from zoo.checkpoint import save_tensors, write_manifest
    from zoo.outputs import atomic_folder
    from zoo.config import to_dict

    def fill(tmp: Path):
        for stem, attr in NETWORKS.items():
            state = {k: v.detach().cpu().contiguous() for k, v in getattr(model, attr).state_dict().items()}
            groups = shard(state)
            weight_map = {}
            for k, group in enumerate(groups, 1):
                name = f"{stem}-{k:05d}-of-{len(groups):05d}.safetensors"
                save_tensors(group, tmp / name)
                weight_map.update(dict.fromkeys(group, name))
            (tmp / f"{stem}.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}, indent=1))
        config = {"model_config": to_dict(model.config), **{k: v for k, v in info.items() if k != "metrics"}}
        (tmp / "config.json").write_text(json.dumps(config, indent=1))
        (tmp / "metrics.json").write_text(json.dumps(info.get("metrics", {}), indent=1))
        write_manifest(tmp)

    return atomic_folder(folder, fill)


def load(folder) -> "torch.nn.Module":
    """The MuseGAN a saved folder holds (checksums verified, every network's shards loaded strictly)."""
    from zoo.checkpoint import load_tensors, verify
    from zoo.config import config_from_dict
    from zoo.safeio import read_json

    from .model import MuseGAN

    folder = Path(folder)
    verify(folder)
    config = read_json(folder / "config.json", "config.json", ConfigError)
    model = MuseGAN(config_from_dict(MuseGAN.config_class, config["model_config"], what="musegan config"))
    for stem, attr in NETWORKS.items():
        index = read_json(folder / f"{stem}.safetensors.index.json", "shard index", ConfigError)
        state = {}
        for name in sorted(set(index["weight_map"].values())):
            if "/" in name or not name.startswith(f"{stem}-"):
                raise ConfigError(f"{folder}: shard index names {name!r}, not one of its own shards")
            state.update(load_tensors(folder / name))
        getattr(model, attr).load_state_dict(state)
    return model.eval()


def train(minutes: float, out, values: dict | None = None, device: str = "cuda", save_minutes: float = 10.0,
          source=None, max_steps: int | None = None, log=print) -> Path:
    """Train until `minutes` have passed (or max_steps), saving out/latest every `save_minutes` and at the end."""
    out = Path(out)
    model, trainer = build(values or {}, device, source)
    data = batches(trainer.build_dataset(source, "train"), trainer.config.batch_size, trainer.config.seed, device)
    log(f"musegan at the book's widths: {model.num_parameters():,} parameters on {device}; {minutes} min")
    start = last_save = time.monotonic()
    step = 0
    while time.monotonic() - start < minutes * 60 and (max_steps is None or step < max_steps):
        with trainer.autocast():
            logs = trainer.training_step(next(data), step)
        step += 1
        if step % 50 == 0:
            log(f"step {step}: " + " ".join(f"{k}={float(v):.4g}" for k, v in logs.items())
                + f" ({(time.monotonic() - start) / step:.2f} s/step)")
        if time.monotonic() - last_save > save_minutes * 60:
            save(out / "latest", model, _info(trainer, step, start))
            last_save = time.monotonic()
    model.eval()
    with torch.no_grad():
        metrics = {k: float(v) for k, v in trainer.evaluate(trainer.build_dataset(source, "valid")).items()}
    folder = save(out / "latest", model, {**_info(trainer, step, start), "metrics": metrics})
    log(f"{step} steps in {time.monotonic() - start:.0f} s; saved {folder}")
    return folder


def _info(trainer, step: int, start: float) -> dict:
    from zoo.config import to_dict
    from zoo.train import hardware

    return {"train_config": to_dict(trainer.config), "step": step, "elapsed_s": round(time.monotonic() - start, 1),
            "hardware": hardware(trainer.device)}


def export(folder, dest) -> Path:
    """A saved folder as a zoo model folder (model.safetensors: the moving average) that zoo generate plays."""
    return load(folder).save_pretrained(dest)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zoo_musegan.train_gpu", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the run folder (checkpoints go to OUT/latest), or with "
                                                     "--export the model folder to write")
    parser.add_argument("--minutes", type=float, default=30.0, help="wall-clock training time (default 30)")
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for a test")
    parser.add_argument("--save-minutes", type=float, default=10.0, help="minutes between checkpoints (default 10)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a model or training key")
    parser.add_argument("--data", default=None, help="training data (default: the Bach chorales)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many steps too")
    parser.add_argument("--export", metavar="CHECKPOINT", help="turn a saved checkpoint folder into a model folder")
    args = parser.parse_args(argv)
    try:
        if args.export:
            print(export(args.export, args.out))
            return 0
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("no CUDA device here; run on a GPU machine, or pass --device cpu for a test")
        if not 0 < args.minutes <= 24 * 60:
            raise ConfigError(f"--minutes must be in (0, 1440], got {args.minutes}")
        from zoo.config import parse_overrides

        train(args.minutes, args.out, parse_overrides(args.set), args.device, args.save_minutes, args.data,
              args.max_steps, log=lambda line: print(line, file=sys.stderr, flush=True))
    except ZooError as exc:
        print(f"train_gpu: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
