"""Every installed plugin's trainer, 2 steps each: in one process, and under torchrun with 2 gloo processes on
the CPU with distributed=ddp and distributed=fsdp (each through the plugin's Trainer.parallelize); then the
distributed runs are cut back to their step-2 checkpoint and resumed, and must end on the weights of the
uninterrupted run (the same arithmetic in the same order: equal, not close). ddp and fsdp, with the same
per-process noise and data, must also agree with each other within fp32 rounding as Adam amplifies it (see
the test). Tiny configurations (--set) keep each run to seconds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from zoo.registry import get_registry
from zoo.testing import ZOO
from zoo.train import checkpoint_dirs

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0", "--standalone"]


def _chorale_npz(folder: Path) -> str:
    """Four-voice pieces in the Jsb16thSeparated.npz layout (the chorale plugins' --data format)."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 8), ("valid", 2), ("test", 2)):
        pieces = np.empty(n, dtype=object)
        for i in range(n):
            pieces[i] = (np.array([72.0, 65, 57, 48]) + rng.integers(-3, 4, size=(64 + 16 * i, 4))).astype(float)
        arrays[split] = pieces
    np.savez(folder / "Jsb16thSeparated.npz", **arrays)
    return str(folder / "Jsb16thSeparated.npz")


def _midi_folder(folder: Path) -> str:
    """A few MIDI files that ship with music21 (no download)."""
    root = Path(__import__("music21").__file__).parent
    for src in sorted((root / "midi" / "testPrimitive").glob("*.mid"))[:6]:
        shutil.copy(src, folder / src.name)
    return str(folder)


# arch -> (its data, tiny settings). A plugin installed without a recipe here fails the test: add one.
RECIPES = {
    "musegan": (_chorale_npz, dict(z_dim=4, temporal_hidden=8, bar_hidden_features=16, bar_hidden_channels=8,
                                   critic_hidden=4, critic_hidden_features=8, n_critic=2, eval_samples=4)),
    "coconet": (_chorale_npz, dict(channels=8, n_layers=4, n_bars=2, eval_masks=1)),
    "music-transformer": (_midi_folder, dict(block_size=32, n_layer=2, n_head=2, n_embd=16, eval_windows=4,
                                             eval_batch_size=4)),
}
ARCHS = sorted(get_registry().entries["trainers"])


def _run(prefix, arch, data, out, settings, *extra, steps=3):
    sets = {**settings, "ckpt_every": 2, "metrics_every": 1, "num_workers": 0, "amp": False}
    args = [*prefix, ZOO, "train", arch, "--data", data, "--out", str(out), "--steps", str(steps), "--seed", "1",
            "--batch-size", "4", "--threads", "1", *extra]
    for key, value in sets.items():
        args += ["--set", f"{key}={value}"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "ZOO_CACHE_DIR": str(Path(out).parent / "cache"), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _weights(final: Path) -> dict:
    return {f.name: load_file(f) for f in sorted(final.glob("*.safetensors"))}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_trainer_runs_alone_under_ddp_and_fsdp_and_resumes(arch, tmp_path):
    if arch not in RECIPES:
        pytest.fail(f"no tiny recipe for the installed trainer {arch!r}: add its data and settings to RECIPES")
    make_data, settings = RECIPES[arch]
    (tmp_path / "data").mkdir()
    data = make_data(tmp_path / "data")
    _run([], arch, data, tmp_path / "one", settings, steps=2)
    assert [p.name for p in checkpoint_dirs(tmp_path / "one")] == ["step-000002"]
    finals = {}
    for mode in ("ddp", "fsdp"):
        out = tmp_path / mode
        _run(TORCHRUN, arch, data, out, settings, "--set", f"distributed={mode}")
        assert json.loads((out / "run.json").read_text())["world_size"] == 2
        straight = finals[mode] = _weights(out / "final")
        logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert [line["step"] for line in logged] == [1, 2, 3]
        assert all(np.isfinite(v) for line in logged for v in line.values() if isinstance(v, float))
        # stop after step 2 (its checkpoint stays), resume: the same arithmetic again, so the same weights
        shutil.rmtree(checkpoint_dirs(out)[-1])
        shutil.rmtree(out / "final")
        done = _run(TORCHRUN, arch, data, out, settings, "--resume")
        assert f"resuming {out} at step 2" in done.stderr
        resumed = _weights(out / "final")
        assert straight.keys() == resumed.keys() and straight
        for name in straight:
            for key, value in straight[name].items():
                assert torch.equal(value, resumed[name][key]), f"{mode}: {name} {key} {float((value.float() - resumed[name][key].float()).abs().max())} {float(value.float().abs().max())}"
    # ddp all-reduces gradients, fsdp reduce-scatters them: the same sums, rounded in another order. The
    # plugins' Adam moves a weight by about lr * sign(g) in its first steps, so a gradient within rounding of
    # zero can move a weight by up to 2 * lr * steps; every other weight stays within 1e-5 (measured: at most
    # 0.2 % of MuseGAN's critic past 1e-5, none of the others'). A lost or doubled process's gradient changes
    # the direction of most updates, which moves most weights by ~lr (1e-4 and more).
    lr = get_registry().trainer(arch).defaults.get("lr", 3e-4)
    for name, tensors in finals["ddp"].items():
        diff = torch.cat([(v.double() - finals["fsdp"][name][k].double()).abs().flatten()
                          for k, v in tensors.items() if v.is_floating_point()])
        assert float(diff.max()) <= 2 * lr * 3, name
        assert float((diff > 1e-5).double().mean()) <= 0.01, f"{name}: {float((diff > 1e-5).double().mean()):.2%}"
