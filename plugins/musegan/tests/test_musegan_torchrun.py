"""MuseGAN under torchrun: the WGAN-GP step with the critic and the generator each under DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from conftest import ZOO
from musegan_tiny import write_jsb
from zoo.train import checkpoint_dirs

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0", "--standalone",
            ZOO]


def test_musegan_under_torchrun_trains_and_its_ranks_draw_different_noise(tmp_path):
    """The WGAN-GP step (critic and generator each under DDP, the gradient penalty's double backward
    included) runs in 2 gloo processes, and the ranks' random states, hence their z, differ."""
    data = write_jsb(tmp_path / "Jsb16thSeparated.npz")
    sizes = dict(z_dim=4, temporal_hidden=8, bar_hidden_features=16, bar_hidden_channels=8, critic_hidden=4,
                 critic_hidden_features=8, n_critic=2, eval_samples=4, num_workers=0)
    small = [a for k, v in sizes.items() for a in ("--set", f"{k}={v}")]
    out = tmp_path / "gan"
    done = subprocess.run([*TORCHRUN, "train", "musegan", "--data", str(data), "--out", str(out), "--steps", "2",
                           "--batch-size", "4", *small], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    ckpt = checkpoint_dirs(out)[-1]
    ranks = [load_file(ckpt / f"rng-rank{r}.safetensors")["torch"] for r in (0, 1)]
    assert not torch.equal(ranks[0], ranks[1])
    draws = []
    for state in ranks:   # the next z each rank would draw
        torch.set_rng_state(state)
        draws.append(torch.randn(4))
    assert not torch.allclose(draws[0], draws[1])
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert {"critic_loss", "gen_loss", "gp", "wasserstein"} <= set(lines[-1])
