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
    done = _train(zoo_cli, out, "--set", "ckpt_every=10", "--set", "keep_checkpoints=2", "--log-every", "10")
    # before the first step: size and memory of the state; after three: measured speed, memory and ETA
    assert "parameters; 8 examples per step" in done.stderr and "MB" in done.stderr
    assert "s/step over the first 3 steps, peak memory" in done.stderr and "37 steps left: about" in done.stderr
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
    """gloo on CPU, 2 processes with the same global batch of 8 end with the weights of 1 process.

    Each step's gradient is the same mean of 8 per-example gradients, summed in another order
    (4 + 4 across processes), so the runs differ by fp32 rounding only: at most ~8 * 2**-24 of a
    gradient per step (see the accumulation test). SGD (lr 0.5) keeps a weight's difference
    proportional to its gradient's: over 20 steps on this tiny model it stays below 1e-6 (Adam
    would turn rounding noise in a near-zero gradient into a 2 * lr jump, a property of Adam and
    not of the distributed loop). 1e-5 leaves 10x room; a rank that used only its own half batch,
    or summed instead of averaged, moves weights by more than 1e-2.
    """
    common = ("--steps", "20", "--seed", "3", "--batch-size", "8", "--set", "optimizer=sgd", "--lr", "0.5",
              "--set", "amp=false")  # fp32: on an AMX CPU amp would train in bf16, whose rounding is 2**-8, not 2**-24
    done = zoo_cli("train", "tiny-lm", "--out", tmp_path / "one", *common)
    assert done.returncode == 0, done.stderr
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0",
                "--standalone", ZOO]
    done = subprocess.run([*torchrun, "train", "tiny-lm", "--out", str(tmp_path / "two"), *common],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "run.json").read_text())["world_size"] == 2
    one, two = _weights(tmp_path / "one" / "final"), _weights(tmp_path / "two" / "final")
    start = _weights_at_init()
    for key in one:
        assert not torch.equal(one[key], start[key]), key  # training moved it, so agreement means something
        torch.testing.assert_close(one[key], two[key], rtol=0, atol=1e-5)


def _weights_at_init() -> dict:
    torch.manual_seed(3)  # what the trainer does with --seed 3 before building the model
    return {k: v.clone() for k, v in zoo.create("tiny-lm").state_dict().items()}


def _gradients_of_one_step(batch_size: int, grad_accum: int) -> dict:
    """The gradients the loop hands to the optimizer in step 0 (the tiny model, seed 1)."""
    from zoo.registry import get_registry
    from zoo.trainer import _DataLoop, _one_step

    torch.manual_seed(0)
    model = zoo.create("tiny-lm")
    trainer_cls = get_registry().trainer("tiny-lm")
    config = trainer_cls.config_class(steps=1, batch_size=batch_size, grad_accum=grad_accum, seed=1,
                                      grad_clip=0.0, optimizer="sgd", lr=1e-30, amp=False)
    trainer = trainer_cls(model, config, device="cpu")
    trainer.optimizers = trainer.configure_optimizers()
    trainer._loop = _DataLoop(trainer.build_dataset(None, "train"), config, rank=0, world=1)
    _one_step(trainer, 0)
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def test_grad_accumulation_equals_the_bigger_batch(tiny):
    """2 micro-batches of 4 hand the optimizer the gradient of the batch of 8 they came from.

    Both gradients are means of the same 8 per-example gradients, summed in a different order (and
    in an order that depends on the CPU's kernels). fp32 rounds each partial sum by at most
    2**-24 relative, so 8 terms differ by at most ~8 * 2**-24 (< 1e-6) of the largest per-example
    term, which is itself at most 8x the mean. A tolerance of 1e-5 of the gradient's scale covers
    that with 10x room and still fails for any real bug (a wrong scale of 1/2, a dropped or
    duplicated micro-batch, a missing zero_grad), which moves gradients by tens of percent.
    """
    big, acc = _gradients_of_one_step(8, 1), _gradients_of_one_step(4, 2)
    for name in big:
        scale = float(big[name].abs().max())
        assert scale > 0, name  # every parameter gets a gradient from this data
        torch.testing.assert_close(acc[name], big[name], rtol=0, atol=1e-5 * scale, msg=name)
    # and the check can fail: one micro-batch alone is a different gradient
    half, full = _gradients_of_one_step(4, 1), big
    assert any(not torch.allclose(half[n], full[n], rtol=0, atol=1e-5 * float(full[n].abs().max())) for n in full)


def test_lr_schedule_warmup_then_cosine():
    config = TrainConfig(steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(0, config) == pytest.approx(0.1)
    assert lr_factor(9, config) == pytest.approx(1.0)
    assert lr_factor(60, config) == pytest.approx(0.55)
    assert lr_factor(110, config) == pytest.approx(0.1)
    assert lr_factor(50, TrainConfig(schedule="constant")) == 1.0


def test_precision_is_chosen_by_the_cpu_and_recorded(tiny, zoo_cli, tmp_path):
    """bf16 autocast only where it pays (AMX and kernels that use it), fp32 elsewhere or with amp off;
    the choice is said before the first step and kept in run.json and the card."""
    from zoo.device import cpu_bf16_pays

    pays, words = cpu_bf16_pays()
    done = _train(zoo_cli, tmp_path / "auto", steps=2)
    assert json.loads((tmp_path / "auto" / "run.json").read_text())["precision"] == words
    assert words in done.stderr and f"Precision: {words}" in (tmp_path / "auto" / "final" / "README.md").read_text()
    assert words.startswith("bf16") == pays
    _train(zoo_cli, tmp_path / "off", "--set", "amp=false", steps=2)
    assert json.loads((tmp_path / "off" / "run.json").read_text())["precision"] == "fp32 (amp off)"
    # the AVX2 kernels cannot run bf16 matmuls even on an AMX machine: fp32 there, whatever the silicon
    forced = zoo_cli("train", "tiny-lm", "--out", tmp_path / "avx2", "--steps", 2, env={"ATEN_CPU_CAPABILITY": "avx2"})
    assert forced.returncode == 0, forced.stderr
    assert json.loads((tmp_path / "avx2" / "run.json").read_text())["precision"].startswith("fp32")
