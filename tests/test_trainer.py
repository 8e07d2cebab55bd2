"""The training engine: end to end, resume after SIGKILL, torchrun/DDP equivalence, schedule, accumulation."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import zoo
from tests.conftest import ZOO
from zoo.checkpoint import verify
from zoo.errors import CheckpointError, ConfigError, DataError
from zoo.testing import cli_in_process, one_error_line
from zoo.train import TrainConfig, checkpoint_dirs, lr_factor


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
    from zoo.train import DataLoop, train_step

    torch.manual_seed(0)
    model = zoo.create("tiny-lm")
    trainer_cls = get_registry().trainer("tiny-lm")
    config = trainer_cls.config_class(steps=1, batch_size=batch_size, grad_accum=grad_accum, seed=1,
                                      grad_clip=0.0, optimizer="sgd", lr=1e-30, amp=False)
    trainer = trainer_cls(model, config, device="cpu")
    trainer.optimizers = trainer.configure_optimizers()
    trainer.loop = DataLoop(trainer.build_dataset(None, "train"), config, rank=0, world=1)
    train_step(trainer, 0)
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


def test_every_whole_number_option_has_an_upper_bound(tiny, tmp_path, capsys):
    """`--set grad_accum=1000000000` made `--steps 1` never end: refused at once now, as is any whole number
    past its bound, a plugin's own fields included (they get 10**9 without declaring a bound)."""
    import time
    from dataclasses import dataclass

    from zoo.cli import main

    with pytest.raises(ConfigError, match="grad_accum must be a whole number from 1 to 1,024"):
        TrainConfig(grad_accum=10 ** 9)
    t0 = time.monotonic()
    code = main(["train", "tiny-lm", "--out", str(tmp_path / "run"), "--steps", "1", "--set", "grad_accum=1000000000"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "grad_accum must be a whole number from 1 to 1,024" in err, err
    assert time.monotonic() - t0 < 10 and not (tmp_path / "run").exists()

    @dataclass(frozen=True)
    class PluginConfig(TrainConfig):
        windows: int = 0

    for bad, says in (({"keep_checkpoints": 10 ** 6}, "keep_checkpoints must be a whole number from 1 to 1,000"),
                      ({"metrics_every": 10 ** 10}, "metrics_every must be a whole number of at most 1,000,000,000"),
                      ({"windows": 10 ** 10}, "windows must be a whole number of at most 1,000,000,000"),
                      ({"windows": -(10 ** 10)}, "windows must be a whole number of at most")):
        with pytest.raises(ConfigError, match=says):
            PluginConfig(**bad)
    assert PluginConfig(seed=2 ** 32 - 1, grad_accum=1_024, windows=10 ** 9).windows == 10 ** 9


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


# ---- one training-step protocol ----------------------------------------------------

def _tiny_trainer(trainer_cls=None, **overrides):
    from zoo.registry import get_registry
    from zoo.train import DataLoop

    torch.manual_seed(0)
    model = zoo.create("tiny-lm")
    trainer_cls = trainer_cls or get_registry().trainer("tiny-lm")
    config = trainer_cls.config_class(**{"steps": 1, "batch_size": 8, "num_workers": 0, "amp": False, **overrides})
    trainer = trainer_cls(model, config, device="cpu")
    trainer.optimizers = trainer.configure_optimizers()
    trainer.loop = DataLoop(trainer.build_dataset(None, "train"), config, rank=0, world=1)
    return trainer


def test_the_trainer_reads_the_registered_builder_and_says_when_there_is_none(tiny, monkeypatch):
    """Trainer.build_dataset's default is the dataset builder the plugin registers, given the model trained."""
    from zoo.errors import PluginError
    from zoo.registry import Registry

    trainer = _tiny_trainer()
    seen = []
    monkeypatch.setattr(Registry, "dataset_builder",
                        lambda self, arch: lambda source, split, model: seen.append((arch, source, split, model)) or [])
    assert trainer.build_dataset("somewhere", "valid") == []
    assert seen == [("tiny-lm", "somewhere", "valid", trainer.raw_model)]
    monkeypatch.setattr(Registry, "dataset_builder", lambda self, arch: None)
    with pytest.raises(PluginError, match="no plugin registers a dataset builder for 'tiny-lm'"):
        trainer.build_dataset(None, "train")


def test_a_loss_without_gradient_is_an_error_not_a_silent_no_op(tiny):
    from zoo.errors import PluginError
    from zoo.registry import get_registry
    from zoo.train import train_step

    class Detached(get_registry().trainer("tiny-lm")):
        def training_step(self, batch, step):
            return {"loss": super().training_step(batch, step)["loss"].detach()}

    with pytest.raises(PluginError, match="without a gradient.*manual_optimization = True"):
        train_step(_tiny_trainer(Detached), 0)


def test_two_optimizers_with_a_returned_loss_are_refused_before_the_first_step(tiny):
    from zoo.errors import ConfigError, PluginError
    from zoo.registry import get_registry
    from zoo.train import check_protocol, train_step

    base = get_registry().trainer("tiny-lm")

    class TwoOptimizers(base):
        def configure_optimizers(self):
            return {"embed": torch.optim.SGD(self.model.embed.parameters(), lr=0.1),
                    "head": torch.optim.SGD(self.model.head.parameters(), lr=0.1)}

    with pytest.raises(PluginError, match="exactly one optimizer.*embed, head.*manual_optimization = True"):
        check_protocol(_tiny_trainer(TwoOptimizers))

    class Manual(TwoOptimizers):
        manual_optimization = True

        def training_step(self, batch, step):
            loss = base.training_step(self, batch, step)["loss"]
            self.optimize("embed", loss)
            return {"loss": loss.detach(), "grad_norm_head": self.optimize("head", base.training_step(self, batch, step)["loss"])}

    trainer = _tiny_trainer(Manual)
    check_protocol(trainer)
    before = trainer.model.head.weight.clone()
    logs = train_step(trainer, 0)
    assert isinstance(logs["loss"], torch.Tensor)   # no float() in the step: the loop converts when it logs
    assert not torch.equal(before, trainer.model.head.weight)
    with pytest.raises(ConfigError, match="grad_accum > 1 needs a training_step that returns a loss"):
        check_protocol(_tiny_trainer(Manual, grad_accum=2))

    class Forgets(Manual):
        def training_step(self, batch, step):
            return {"loss": base.training_step(self, batch, step)["loss"].detach()}

    with pytest.raises(PluginError, match="never called self.optimize"):
        train_step(_tiny_trainer(Forgets), 0)
    with pytest.raises(PluginError, match="set manual_optimization = True"):
        _tiny_trainer().optimize("main", torch.ones((), requires_grad=True))


# ---- torchrun: kill and resume, per-rank random states ---------------------------------

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0", "--standalone",
            ZOO]


def test_torchrun_killed_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(tiny, tmp_path):
    """2 gloo processes, SIGKILLed mid-run and resumed, end bit-identical to an uninterrupted 2-process run.

    The logits get noise from each rank's global RNG, so this holds only if every rank gets its own random
    state back (one shared state made rank 1 draw rank 0's noise after a resume, issue 17). Both runs do the
    same arithmetic in the same order on the same CPU, so the weights are equal, not close."""
    common = ("train", "tiny-lm", "--steps", "40", "--seed", "3", "--set", "logit_noise=1.0", "--set", "ckpt_every=4",
              "--set", "metrics_every=1", "--set", "amp=false", "--set", "num_workers=1")
    done = subprocess.run([*TORCHRUN, *common, "--out", str(tmp_path / "straight")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen([*TORCHRUN, *common, "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and max(_metric_steps(out), default=0) < 13:
        time.sleep(0.01)
    for pid in _descendants(proc.pid):   # both ranks (torchrun starts them in sessions of their own) and torchrun
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    ckpts = checkpoint_dirs(out)
    assert ckpts and int(ckpts[-1].name[5:]) < 40, "the kill came too late to test anything"
    ranks = [load_file(ckpts[-1] / f"rng-rank{r}.safetensors") for r in (0, 1)]
    assert not torch.equal(ranks[0]["torch"], ranks[1]["torch"])   # each rank's own noise is in the checkpoint
    assert {"rng-rank0.safetensors", "rng-rank1.safetensors"} <= set(
        json.loads((ckpts[-1] / "manifest.json").read_text())["sha256"])

    done = subprocess.run([*TORCHRUN, *common, "--out", str(out), "--resume"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming {out} at step {int(ckpts[-1].name[5:])}" in done.stderr
    straight, killed = _weights(tmp_path / "straight" / "final"), _weights(out / "final")
    for key in straight:
        assert torch.equal(straight[key], killed[key]), key


def _descendants(pid: int) -> list[int]:
    """pid and every process under it, deepest first (Linux /proc)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [d for c in children for d in _descendants(int(c))] + [pid]


def test_a_run_of_the_previous_checkpoint_format_is_refused_with_what_to_do(tiny, zoo_cli, tmp_path):
    """Checkpoints of the previous format (optimizer state keyed by position, no "format" in trainer_state.json)
    are refused in one line that names the way on: a new run from the checkpoint's weights (--set init=...),
    which then trains."""
    from zoo.checkpoint import write_manifest

    out = tmp_path / "old"
    _train(zoo_cli, out, "--set", "ckpt_every=5", steps=10)
    ckpt = checkpoint_dirs(out)[-1]
    state = json.loads((ckpt / "trainer_state.json").read_text())
    del state["format"]
    (ckpt / "trainer_state.json").write_text(json.dumps(state))
    write_manifest(ckpt)
    done = zoo_cli("train", "tiny-lm", "--out", out, "--resume", "--steps", 12)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"start a new run from its weights with --set init={out / 'final'}" in done.stderr
    _train(zoo_cli, tmp_path / "new", "--set", f"init={out / 'final'}", steps=2)
    __import__("shutil").rmtree(out / "final")   # a run killed before its end: release a checkpoint first
    done = zoo_cli("train", "tiny-lm", "--out", out, "--resume", "--steps", 12)
    assert done.returncode == 2 and f"--set init=FOLDER (after zoo release {out} --step 10 --out FOLDER)" in done.stderr


def test_fsdp_under_torchrun_matches_one_process_and_saves_whole_weights(tiny, zoo_cli, tmp_path):
    """distributed=fsdp (fully_shard over gloo): final/ holds the gathered, whole weights, equal to a
    1-process run within the fp32 tolerance argued in test_torchrun_two_processes_match_one_process;
    a checkpoint resumes with the shards cut again from the whole tensors."""
    common = ("--steps", "12", "--seed", "3", "--batch-size", "8", "--set", "optimizer=sgd", "--lr", "0.5",
              "--set", "amp=false", "--set", "ckpt_every=6", "--set", "num_workers=0")
    done = zoo_cli("train", "tiny-lm", "--out", tmp_path / "one", *common)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "fsdp"
    done = subprocess.run([*TORCHRUN, "train", "tiny-lm", "--out", str(out), *common, "--set", "distributed=fsdp"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = _weights(tmp_path / "one" / "final"), _weights(out / "final")
    for key in one:
        torch.testing.assert_close(one[key], two[key], rtol=0, atol=1e-5)
    # resume from step 6 (drop the later checkpoint and final/) and land on the same weights
    import shutil

    shutil.rmtree(checkpoint_dirs(out)[-1])
    shutil.rmtree(out / "final")
    done = subprocess.run([*TORCHRUN, "train", "tiny-lm", "--out", str(out), "--resume"], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming" in done.stderr and "at step 6" in done.stderr
    for key, value in _weights(out / "final").items():
        torch.testing.assert_close(one[key], value, rtol=0, atol=1e-5)


# ---- the run folder and its lock against hostile contents (issue 26) -----------------------------------

from zoo.testing import cli_in_process as _cli  # noqa: E402
from zoo.testing import one_error_line as _one_line


def _two_steps(capsys, out, *extra):
    code, err = _cli(capsys, "train", "tiny-lm", "--out", out, "--steps", 2, "--seed", 3, "--device", "cpu",
                     "--set", "ckpt_every=1", *extra)
    assert code == 0, err
    return err


def test_the_run_lock_never_follows_a_link_or_opens_a_fifo(tiny, tmp_path, capsys, one_torch_thread):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)                               # a new run whose folder holds only the link
    assert "is a symbolic link" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--steps", 1))
    assert victim.read_text() == "precious" and (run / ".lock").is_symlink()
    (run / ".lock").unlink()
    (run / ".lock").symlink_to("/dev/null")
    assert "is a symbolic link" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--steps", 1))
    (run / ".lock").unlink()
    os.mkfifo(run / ".lock")                                         # refused from lstat: never opened, no hang
    assert "not a regular file" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--steps", 1))
    (run / ".lock").unlink()
    (run / ".lock").write_text("my notes, not a pid\n")              # a regular file that is not a lock: kept
    assert "not a musezoo lock file" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--steps", 1))
    assert (run / ".lock").read_text() == "my notes, not a pid\n"

    (run / ".lock").write_text("12345\n")                            # the lock a killed run left: a new run starts
    _two_steps(capsys, run)
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(victim)                               # and --resume of a real run
    assert "is a symbolic link" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--resume",
                                                   "--steps", 3))
    assert victim.read_text() == "precious"
    (run / ".lock").unlink()
    outside = tmp_path / "outside.json"                              # a run.json linked out of the run folder
    outside.write_bytes((run / "run.json").read_bytes())
    (run / "run.json").unlink()
    (run / "run.json").symlink_to(outside)
    assert "run.json: is a symbolic link" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--resume",
                                                             "--steps", 3))
    assert outside.read_bytes() == (run / "run.json").read_bytes() and (run / "run.json").is_symlink()
    (run / "run.json").unlink()
    (run / "run.json").write_bytes(outside.read_bytes())
    for name in ("metrics.jsonl", "summary.json"):                   # the engine's other files in the run folder
        (run / ".lock").unlink()
        saved = (run / name).read_bytes()
        (run / name).unlink()
        (run / name).symlink_to(outside)
        assert f"{name}: is a symbolic link" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--resume",
                                                                  "--steps", 3))
        assert outside.read_bytes() == (run / "run.json").read_bytes()
        (run / name).unlink()
        (run / name).write_bytes(saved)
    (run / ".lock").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run / "checkpoints").rename(tmp_path / "checkpoints")
    (run / "checkpoints").symlink_to(elsewhere, target_is_directory=True)
    assert "checkpoints: is a symbolic link" in _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--resume",
                                                               "--steps", 3))
    assert not any(elsewhere.iterdir())
    (run / "checkpoints").unlink()
    (tmp_path / "checkpoints").rename(run / "checkpoints")
    (run / ".lock").unlink()
    (run / ".lock").symlink_to(victim)

    from zoo.errors import ZooError
    from zoo.locks import hold

    with pytest.raises(ZooError, match="is a symbolic link"):       # the same lock guards the Hub cache
        with hold(run / ".lock", "x"):
            pass
    assert victim.read_text() == "precious"


def test_a_run_folder_that_is_a_file_link_or_fifo_is_refused(tiny, tmp_path, capsys):
    (tmp_path / "file").write_text("text")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    os.mkfifo(tmp_path / "fifo")
    for name, says in (("file", "is a file, not a folder"), ("link", "is a symbolic link"), ("fifo", "is a FIFO")):
        for extra in ((), ("--resume",)):
            line = _one_line(*_cli(capsys, "train", "tiny-lm", "--out", tmp_path / name, "--steps", 1, *extra))
            assert says in line, line
    assert (tmp_path / "file").read_text() == "text" and list((tmp_path / "dir").iterdir()) == []


def test_a_final_folder_holding_other_files_is_refused_before_training(tiny, tmp_path, capsys, one_torch_thread):
    run = tmp_path / "run"
    _two_steps(capsys, run)
    (run / "final" / "notes.txt").write_text("mine")
    line = _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--resume", "--steps", 3, "--device", "cpu"))
    assert "final" in line and "'notes.txt'" in line and "new --out" in line
    assert (run / "final" / "notes.txt").read_text() == "mine"
    assert [p.name for p in checkpoint_dirs(run)] == ["step-000001", "step-000002"]   # no step ran
    (run / "final" / "notes.txt").unlink()
    _two_steps(capsys, run, "--resume", "--steps", 3)                # its own final/ is replaced as before


@pytest.mark.parametrize("field, value", [("epoch", -5), ("epoch", 1e20), ("epoch", 10 ** 20), ("elapsed_s", "x"),
                                          ("elapsed_s", float("nan")), ("position", -1), ("world_size", 0)])
def test_resume_skips_a_checkpoint_whose_state_is_out_of_range(tiny, tmp_path, capsys, one_torch_thread, field,
                                                              value):
    from zoo.checkpoint import write_manifest

    run = tmp_path / "run"
    _two_steps(capsys, run)
    ckpt = run / "checkpoints" / "step-000002"
    state = json.loads((ckpt / "trainer_state.json").read_text())
    (ckpt / "trainer_state.json").write_text(json.dumps({**state, field: value}))
    write_manifest(ckpt)                                             # consistent, but out of range
    err = _two_steps(capsys, run, "--resume", "--steps", 3)
    assert f"skipping damaged checkpoint step-000002: trainer_state.json: {field!r} must be" in err, err
    assert f"resuming {run} at step 1" in err


def test_resume_cleans_only_its_own_leftovers(tiny, tmp_path, capsys, one_torch_thread):
    run = tmp_path / "run"
    _two_steps(capsys, run)
    ckpts = run / "checkpoints"
    (ckpts / ".keep-me").mkdir()
    (ckpts / ".step-000003.tmp-abc").mkdir()                          # what a killed atomic_folder leaves
    (ckpts / ".trash-step-000001").mkdir()
    _two_steps(capsys, run, "--resume", "--steps", 3)
    assert sorted(p.name for p in ckpts.iterdir() if p.name.startswith(".")) == [".keep-me"]


def test_init_fine_tunes_from_a_saved_model_and_takes_its_config(tiny, zoo_cli, tmp_path):
    _train(zoo_cli, tmp_path / "base", "--set", "n_embd=24", steps=20)
    base = _weights(tmp_path / "base" / "final")
    # a learning rate of ~0: the fine-tuned weights are the saved ones, and the saved config (n_embd=24) is used
    _train(zoo_cli, tmp_path / "tuned", "--set", f"init={tmp_path / 'base' / 'final'}", "--lr", "1e-12", steps=1)
    tuned = _weights(tmp_path / "tuned" / "final")
    assert tuned.keys() == base.keys()
    assert all(torch.allclose(tuned[k], base[k], atol=1e-6) for k in base)
    _train(zoo_cli, tmp_path / "fresh", "--lr", "1e-12", steps=1)
    fresh = _weights(tmp_path / "fresh" / "final")
    assert any(fresh[k].shape != base[k].shape or not torch.allclose(fresh[k], base[k]) for k in base)


def test_init_that_names_no_saved_model_is_one_line_and_no_run(tiny, zoo_cli, tmp_path):
    done = zoo_cli("train", "tiny-lm", "--out", tmp_path / "x", "--steps", 1, "--set", f"init={tmp_path / 'nothing'}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert not (tmp_path / "x").exists()



def test_create_and_train_refuse_a_model_bigger_than_the_machine(tiny):
    with pytest.raises(ConfigError, match="more than this machine can train or hold"):
        zoo.create("tiny-lm", n_embd=10 ** 9)


# ---- items 7, 8, 10, 12: training runs -------------------------------------------------------------

def test_trainer_state_must_be_in_the_manifest(tiny, tmp_path, one_torch_thread):
    from zoo.train import train

    train("tiny-lm", out=tmp_path / "run", values={"steps": 2, "ckpt_every": 1}, device="cpu")
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert "trainer_state.json" in manifest["sha256"]
    del manifest["sha256"]["trainer_state.json"]
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not list trainer_state.json"):
        verify(ckpt)


def test_pruning_after_a_fallback_keeps_the_fresh_checkpoints(tiny, tmp_path, one_torch_thread, capsys):
    """Damaged step-4 and step-6 (newer than the resumed step) must not push out the new step-2 and step-3."""
    from zoo.train import train

    run = tmp_path / "run"
    train("tiny-lm", out=run, values={"steps": 1, "ckpt_every": 1, "keep_checkpoints": 2}, device="cpu")
    for step in (4, 6):
        damaged = run / "checkpoints" / f"step-{step:06d}"
        damaged.mkdir()
        (damaged / "config.json").write_text("{}")
    train("tiny-lm", out=run, values={"steps": 3, "ckpt_every": 1, "keep_checkpoints": 2}, device="cpu", resume=True)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "step-000002" in names and "step-000003" in names, names
    verify(run / "checkpoints" / "step-000003")


def test_a_run_without_a_test_split_finishes_and_says_so(tiny, tmp_path, one_torch_thread, monkeypatch, capsys):
    from zoo.train import train
    from zoo_tiny.model import TinyTrainer

    real = TinyTrainer.build_dataset

    def no_test(self, source, split):
        if split == "test":
            raise DataError("no test windows")
        return real(self, source, split)

    monkeypatch.setattr(TinyTrainer, "build_dataset", no_test)
    final = train("tiny-lm", out=tmp_path / "run", values={"steps": 2}, device="cpu")
    assert (final / "config.json").is_file()
    assert "warning: no test metrics: no test windows" in capsys.readouterr().err


def test_resume_with_a_changed_model_size_is_one_clear_error(tiny, tmp_path, one_torch_thread):
    from zoo.train import train

    train("tiny-lm", out=tmp_path / "run", values={"steps": 1, "ckpt_every": 1}, device="cpu")
    with pytest.raises(CheckpointError, match="does not fit this run's model or optimizer"):
        train("tiny-lm", out=tmp_path / "run", values={"steps": 2, "n_embd": 8}, device="cpu", resume=True)
    (tmp_path / "run" / "run.json").write_text("[1]")
    with pytest.raises(ConfigError, match="run.json: malformed"):
        train("tiny-lm", out=tmp_path / "run", values={"steps": 2}, device="cpu", resume=True)


@pytest.mark.parametrize("values", [{"seed": -1}, {"seed": 2 ** 32}, {"steps": 10 ** 12}])
def test_training_numbers_out_of_range(tiny, tmp_path, values):
    from zoo.train import train

    with pytest.raises(ConfigError, match="must be a whole number"):
        train("tiny-lm", out=tmp_path / "run", values=values, device="cpu")


# ---- concurrency -------------------------------------------------------------------------------------

def test_two_trainings_on_one_run_folder(tiny, tmp_path, one_torch_thread, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from zoo.locks import hold
        with hold({str(run / '.lock')!r}, "x"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = one_error_line(*cli_in_process(capsys, "train", "tiny-lm", "--out", run, "--steps", 1, "--device", "cpu"))
        assert f"run folder {run} is in use by another process (pid {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock went with it, although the lock file (with its pid) stays
    assert (run / ".lock").read_text().strip() == str(holder.pid)
    code, err = cli_in_process(capsys, "train", "tiny-lm", "--out", run, "--steps", 1, "--device", "cpu")
    assert code == 0, err
    assert (run / "final" / "config.json").is_file()


def test_non_finite_numbers_in_a_config_file(tiny, tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"lr": 1e400}')
    line = one_error_line(*cli_in_process(capsys, "train", "tiny-lm", "--out", tmp_path / "r", "--config", tmp_path / "c.json"))
    assert "'lr' must be a finite number, got inf" in line
    assert not (tmp_path / "r").exists()


def test_a_resume_truncates_the_log_line_by_line_keeping_lines_as_written(tmp_path):
    """truncate_metrics streams: a line longer than any log line (2 MiB, no newline for a while) is skipped, not read
    whole; lines from redone steps, cut-short lines and lines without a step go; kept lines keep their bytes."""
    from zoo.train import truncate_metrics
    from zoo.train.run import MAX_LOG_LINE

    log = tmp_path / "metrics.jsonl"
    kept = b'{"step": 1, "loss": 2.5}\n{"step":2,"loss":1.0}\n'
    log.write_bytes(kept[:25] + b'{"step": 1, "x": "' + b"a" * (2 * MAX_LOG_LINE) + b'"}\n' + kept[25:]
                    + b'{"note": "no step"}\n{"step": 3}\n{"step": 4, "lo')
    truncate_metrics(log, 2)
    assert log.read_bytes() == kept
