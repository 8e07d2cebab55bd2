"""2. MuseGAN training iteration (5 critic steps + 1 generator step, WGAN-GP, batch 64): ours vs the book's literal layers.

Both sides run the same loop (zoo_musegan.train.wgan_gp_iteration) with Adam, on the same weights
(plugins/musegan/tests/musegan_reference.copy_weights), so the difference is the layers: the book's one-call-per-(bar,
track) nn.Sequential stacks against zoo_musegan's batched ones.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def run(bench, device: torch.device, batch: int = 64):
    sys.path.insert(0, str(ROOT / "plugins" / "musegan" / "tests"))
    from musegan_reference import copy_weights, reference_from_config
    from zoo_musegan.model import MuseCritic, MuseGANConfig, MuseGenerator, book_init
    from zoo_musegan.train import wgan_gp_iteration

    config = MuseGANConfig()
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

    def timer(g, c, label):
        g, c = g.to(device), c.to(device)
        opt_g = torch.optim.Adam(g.parameters(), lr=1e-3, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(c.parameters(), lr=1e-3, betas=(0.5, 0.9))

        def step():
            wgan_gp_iteration(g, c, opt_g, opt_c, real, noise)
            if device.type == "cuda":
                torch.cuda.synchronize()

        return bench.median(step, label)

    t_book = timer(rgen, rcritic, "gan book")
    t_ours = timer(gen, critic, "gan ours")
    rows = [{"impl": "ours (zoo_musegan layers)", "s": t_ours, "ratio": 1.0},
            {"impl": "book (literal layers)", "s": t_book, "ratio": t_book / t_ours}]
    return {"rows": rows, "notes": [f"batch {batch}; seconds per iteration (5 critic + 1 generator step)"]}
