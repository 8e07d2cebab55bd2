"""CPU time of one WGAN-GP iteration (5 critic steps + 1 generator step): the book's literal layers vs zoo_musegan.

    python plugins/musegan/benchmarks/bench_iteration.py [--batch 64] [--threads 1] [--repeat 3]
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))   # the plugin's tests/

from musegan_reference import copy_weights, reference_from_config  # noqa: E402
from zoo_musegan.model import MuseGANConfig, MuseCritic, MuseGenerator, book_init  # noqa: E402
from zoo_musegan.train import wgan_gp_iteration  # noqa: E402


def noise_fn(config):
    def sample(b):
        z = config.z_dim
        return torch.randn(b, z), torch.randn(b, z), torch.randn(b, config.n_tracks, z), torch.randn(b, config.n_tracks, z)
    return sample


def time_iteration(gen, critic, config, batch, repeat):
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_c = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    real = torch.where(torch.rand(batch, config.n_tracks, config.n_bars, config.steps_per_bar, config.n_pitches) < 0.02, 1.0, -1.0)
    sample = noise_fn(config)
    wgan_gp_iteration(gen, critic, opt_g, opt_c, real, sample)  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        wgan_gp_iteration(gen, critic, opt_g, opt_c, real, sample)
        times.append(time.process_time() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--set", nargs="*", default=[], help="config overrides key=value")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    overrides = {k: int(v) for k, v in (kv.split("=") for kv in args.set)}
    config = MuseGANConfig(**overrides)
    torch.manual_seed(0)
    gen, critic = MuseGenerator(config), MuseCritic(config)
    gen.apply(book_init), critic.apply(book_init)
    rgen, rcritic = reference_from_config(config)
    copy_weights(gen, rgen), copy_weights(critic, rcritic)
    t_ref = time_iteration(rgen, rcritic, config, args.batch, args.repeat)
    t_ours = time_iteration(gen, critic, config, args.batch, args.repeat)
    print(f"config {overrides or 'book default'}, batch {args.batch}, {args.threads} thread(s), CPU time per iteration "
          f"(5 critic + 1 generator step, best of {args.repeat}):")
    print(f"  book layers (literal) {t_ref:.2f} s")
    print(f"  zoo_musegan           {t_ours:.2f} s   ({t_ref / t_ours:.2f}x)")


if __name__ == "__main__":
    main()
