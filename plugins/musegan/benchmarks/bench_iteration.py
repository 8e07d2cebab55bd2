"""MuseGAN training iteration (5 critic steps + 1 generator step, WGAN-GP): zoo_musegan's layers in fp32 and
under bf16 autocast, against the book's literal layers.

The "torch's convolution kernels" row is the same model with zoo_musegan.patch_conv's matrix products
turned off (nn.Conv3d's and nn.ConvTranspose2d's own forward): what patch_conv.py is kept for.

Every row runs the same loop (zoo_musegan.train.wgan_gp_iteration) with Adam from the same weights
(tests/musegan_reference.copy_weights), so the book row differs in its layers only (one call per
(bar, track) nn.Sequential stacks against zoo_musegan's batched ones) and the bf16 row in precision only
(bf16 autocast as the trainer uses it: on CUDA, and on CPUs with AMX; without AMX it is skipped, as
bf16 is slower than fp32 there). `make bench` (benchmarks/run.py) calls run(); alone:

    python plugins/musegan/benchmarks/bench_iteration.py [--batch 64] [--threads 1] [--repeats 3] [--set n_bars=2]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the plugin's tests/: the book's layers


def bf16_pays(device: torch.device) -> bool:
    from zoo.device import cpu_bf16_pays

    return device.type == "cuda" or (device.type == "cpu" and cpu_bf16_pays()[0])


def run(bench, device: torch.device, batch: int = 64, overrides: dict | None = None) -> dict:
    """Rows of seconds per iteration (medians of bench.median); ratio = seconds / ours fp32."""
    from musegan_reference import copy_weights, reference_from_config
    from zoo_musegan.model import MuseCritic, MuseGANConfig, MuseGenerator, book_init
    from zoo_musegan.train import wgan_gp_iteration

    config = MuseGANConfig(**(overrides or {}))
    torch.manual_seed(0)
    gen, critic = MuseGenerator(config), MuseCritic(config)
    gen.apply(book_init), critic.apply(book_init)
    rgen, rcritic = reference_from_config(config)
    copy_weights(gen, rgen), copy_weights(critic, rcritic)
    shape = (batch, config.n_tracks, config.n_bars, config.steps_per_bar, config.n_pitches)
    real = torch.where(torch.rand(shape) < 0.02, 1.0, -1.0).to(device)
    z = config.z_dim

    def noise(b):
        return (torch.randn(b, z, device=device), torch.randn(b, z, device=device),
                torch.randn(b, config.n_tracks, z, device=device), torch.randn(b, config.n_tracks, z, device=device))

    def make_step(g, c, bf16=False, torch_kernels=False):
        """One timed iteration of copies of g and c (every row starts from the same weights)."""
        import copy

        g, c = copy.deepcopy(g).to(device), copy.deepcopy(c).to(device)
        opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(c.parameters(), lr=1e-3, betas=(0.5, 0.9))
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

        def step():
            with amp, (_torch_kernels() if torch_kernels else contextlib.nullcontext()):
                wgan_gp_iteration(g, c, opt_g, opt_c, real, noise)
            if device.type == "cuda":
                torch.cuda.synchronize()

        return step

    rows, notes = [], [f"batch {batch}; seconds per iteration (5 critic + 1 generator step)"]
    # the two fp32 rows are timed in turn, so a neighbour's load falls on both alike
    t_ours, t_conv = bench.interleaved({"gan ours fp32": make_step(gen, critic),
                                        "gan torch kernels fp32": make_step(gen, critic, torch_kernels=True)}).values()
    notes.append("the two fp32 rows of ours are timed in turn")
    rows.append({"impl": "ours (zoo_musegan layers), fp32", "s": t_ours})
    rows.append({"impl": "ours with torch's convolution kernels (no patch_conv), fp32", "s": t_conv})
    if bf16_pays(device):
        rows.append({"impl": "ours, bf16 autocast", "s": bench.median(make_step(gen, critic, bf16=True), "gan ours bf16")})
    else:
        notes.append("bf16 skipped: this CPU has no AMX (bf16 autocast is slower than fp32 there)")
    rows.append({"impl": "book (literal layers), fp32", "s": bench.median(make_step(rgen, rcritic), "gan book")})
    for r in rows:
        r["ratio"] = r["s"] / t_ours
    return {"rows": rows, "notes": notes}


@contextlib.contextmanager
def _torch_kernels():
    """zoo_musegan.patch_conv's layers computed by torch's own convolutions."""
    from torch import nn
    from zoo_musegan.patch_conv import PatchConv3d, PatchConvTranspose2d

    with mock.patch.object(PatchConv3d, "forward", nn.Conv3d.forward), \
            mock.patch.object(PatchConvTranspose2d, "forward", nn.ConvTranspose2d.forward):
        yield


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], help="MuseGANConfig overrides key=value (integers)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {k: int(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))   # the checkout's benchmarks/run.py
    from run import Bench

    res = run(Bench(args.repeats), torch.device(args.device), args.batch, overrides)
    print(f"config {overrides or 'book default'}, {args.threads} thread(s), median of {args.repeats}:")
    for r in res["rows"]:
        print(f"  {r['impl']:34s} {r['s']:7.2f} s  ({r['ratio']:.2f}x ours fp32)")
    for n in res["notes"]:
        print(f"  {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
