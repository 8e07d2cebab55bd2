"""The training engine: end to end, resume after SIGKILL, torchrun/DDP equivalence, schedule, accumulation."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from zoo.checkpoint import verify
from zoo.trainer import TrainConfig, checkpoint_dirs, lr_factor
from tests.conftest import ZOO


def _weights(folder) -> dict:
    return load_file(Path(folder) / "model.safetensors")


def _train(zoo_cli, out, *extra, steps=40):
    done = zoo_cli("train", "tiny-lm", "--out", out, "--steps", steps, "--seed", 3, *extra)
    assert done.returncode == 0, done.stderr
    return done


def test_train_end_to_end_makes_a_loadable_run_folder(tiny, zoo_cli, tmp_path):
    out = tmp_path / "run"
    _train(zoo_cli, out, "--set", "ckpt_every=10", "--set", "keep_checkpoints=2", "--log-every", "10")
    run = json.loads((out / "run.json").read_text())
    assert run["arch"] == "tiny-lm" and run["train_config"]["steps"] == 40 and run["command"]
    assert run["zoo_version"] == zoo.__version__ and run["plugin"] == "zoo-tiny"
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [l["step"] for l in lines] == [10, 20, 30, 40]
    assert lines[-1]["loss"] < lines[0]["loss"]  # it learns the scales
    assert [p.name for p in checkpoint_dirs(out)] == ["step-000030", "step-000040"]  # newest K kept
    model = zoo.load(str(out / "final"), device="cpu")
    assert model.arch == "tiny-lm"
    assert "Steps: 40" in (out / "final" / "README.md").read_text()


def test_existing_out_without_resume_is_refused(tiny, zoo_cli, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "keep.txt").write_text("precious")
    done = zoo_cli("train", "tiny-lm", "--out", tmp_path / "run", "--steps", 2)
    assert done.returncode == 2 and "already exists; pass --resume" in done.stderr
    assert (tmp_path / "run" / "keep.txt").read_text() == "precious"


def test_sigkill_at_random_moments_then_resume_matches_uninterrupted(tiny, zoo_cli, tmp_path):
    steps = 400
    common = ("--set", "ckpt_every=5", "--set", "metrics_every=1")
    _train(zoo_cli, tmp_path / "straight", *common, steps=steps)

    out = tmp_path / "killed"
    rng = random.Random(1234)
    resumed_from = []
    for attempt in range(3):
        args = [ZOO, "train", "tiny-lm", "--out", str(out), "--steps", str(steps), "--seed", "3", *common]
        if attempt:
            args.append("--resume")
        # kill at a random step of this attempt's stretch (a random moment, yet surely mid-run however
        # fast the machine is), polled every few ms so the kill also lands between steps' writes
        done_so_far = max(_metric_steps(out), default=0)
        target = rng.randint(done_so_far + 3, done_so_far + 100)
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and max(_metric_steps(out), default=0) < target:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        for ckpt in checkpoint_dirs(out):
            verify(ckpt)  # every checkpoint under a final name is complete
        if checkpoint_dirs(out):
            resumed_from.append(int(checkpoint_dirs(out)[-1].name.split("-")[1]))
    assert resumed_from and resumed_from[-1] < steps, "the kills came too late to test anything"
    done = zoo_cli("train", "tiny-lm", "--out", out, "--resume")
    assert done.returncode == 0, done.stderr
    assert f"resuming {out} at step {resumed_from[-1]}" in done.stderr
    assert _metric_steps(out) == list(range(1, steps + 1))  # no step lost, none logged twice
    straight, killed = _weights(tmp_path / "straight" / "final"), _weights(out / "final")
    for key in straight:
        assert torch.equal(straight[key], killed[key]), key


def _metric_steps(out):
    path = out / "metrics.jsonl"
    if not path.exists():
        return []
    steps = []
    for line in path.read_text().splitlines():
        try:
            steps.append(json.loads(line)["step"])
        except ValueError:
            pass
    return steps


def test_torchrun_two_processes_match_one_process(tiny, zoo_cli, tmp_path):
    """gloo on CPU, 2 processes with the same global batch: weights agree to 1e-5."""
    _train(zoo_cli, tmp_path / "one", "--batch-size", 8, steps=20)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0",
                "--standalone", ZOO]
    done = subprocess.run([*torchrun, "train", "tiny-lm", "--out", str(tmp_path / "two"), "--steps", "20",
                           "--seed", "3", "--batch-size", "8"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    one, two = _weights(tmp_path / "one" / "final"), _weights(tmp_path / "two" / "final")
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=0, atol=1e-5)


def test_grad_accumulation_equals_the_bigger_batch(tiny, tmp_path):
    from zoo.trainer import train

    train("tiny-lm", tmp_path / "big", values={"steps": 10, "batch_size": 8, "seed": 1}, device="cpu")
    train("tiny-lm", tmp_path / "acc", values={"steps": 10, "batch_size": 4, "grad_accum": 2, "seed": 1}, device="cpu")
    big, acc = _weights(tmp_path / "big" / "final"), _weights(tmp_path / "acc" / "final")
    for key in big:
        torch.testing.assert_close(big[key], acc[key], rtol=0, atol=1e-6)


def test_lr_schedule_warmup_then_cosine():
    config = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(9, config) == pytest.approx(1.0)
    assert lr_factor(60, config) == pytest.approx(0.55)
    assert lr_factor(110, config) == pytest.approx(0.1)
    assert lr_factor(50, TrainConfig(schedule="constant")) == 1.0
