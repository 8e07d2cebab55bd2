"""Interrupted work (issue 8): Ctrl-C and SIGKILL during generate and train, a full disk while saving a
checkpoint, an interrupted `zoo pull`. Nothing partial ever sits under a final name; the error is one line.

SIGKILL during `zoo train` at random moments (then a bit-identical resume) is
tests/test_trainer.py::test_sigkill_at_random_moments_then_resume_matches_uninterrupted; an interrupted
download (connection reset) is tests/test_hub.py::test_interrupted_download_leaves_nothing_under_a_final_name.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zoo
from zoo import registry
from zoo.checkpoint import verify
from zoo.train import checkpoint_dirs
from tests.conftest import ZOO, make_distribution
from zoo.testing import sigint_as_usual

SLOWGEN = {
    "zoo_slowgen/__init__.py": "",
    "zoo_slowgen/plugin.py": """
        from zoo import hookimpl

        @hookimpl
        def register_architectures(register):
            register("slowgen", "zoo_slowgen.model:SlowGen")

        @hookimpl
        def register_tokenizers(register):
            register("slowgen-tok", "zoo_slowgen.model:Tok")
        """,
    "zoo_slowgen/model.py": """
        import os
        import time
        from dataclasses import dataclass

        import pretty_midi
        import torch

        from zoo.model import Model
        from zoo.tokenizer import Tokenizer


        class Tok(Tokenizer):
            name = "slowgen-tok"


        @dataclass(frozen=True)
        class Cfg:
            mode: str = "sleep"   # "sleep": a long generate(); "big": a quick one whose MIDI takes seconds to write


        class SlowGen(Model):
            arch = "slowgen"
            config_class = Cfg
            tokenizer_name = "slowgen-tok"

            def __init__(self, config, tokenizer=None):
                super().__init__(config, tokenizer)
                self.w = torch.nn.Parameter(torch.zeros(1))

            def generate(self, num=1, seed=None):
                open(os.environ["SLOWGEN_MARKER"], "w").close()   # the test now knows generate() runs
                if self.config.mode == "sleep":
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 60:
                        time.sleep(0.01)
                midi = pretty_midi.PrettyMIDI()
                inst = pretty_midi.Instrument(0)
                inst.notes = [pretty_midi.Note(80, 48 + i % 36, i * 0.01, i * 0.01 + 0.005) for i in range(100_000)]
                midi.instruments.append(inst)
                return [midi]
        """,
}


@pytest.fixture(scope="module")
def slowgen(tmp_path_factory):
    """The slowgen plugin installed into a folder, and its two saved models."""
    root = make_distribution(tmp_path_factory.mktemp("slowgen"), "zoo-slowgen", {"slowgen": "zoo_slowgen.plugin"},
                             SLOWGEN)
    old = (list(sys.path), os.environ.get("ZOO_PLUGINS"))
    sys.path.insert(0, str(root))
    os.environ["ZOO_PLUGINS"] = "zoo-slowgen"
    registry.reset()
    try:
        models = {mode: zoo.create("slowgen", mode=mode).save_pretrained(root.parent / f"model-{mode}")
                  for mode in ("sleep", "big")}
    finally:
        sys.path[:] = old[0]
        if old[1] is None:
            os.environ.pop("ZOO_PLUGINS", None)
        else:
            os.environ["ZOO_PLUGINS"] = old[1]
        registry.reset()
    return root, models


def _start(args, env_extra, cwd):
    env = {**os.environ, **env_extra, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([ZOO, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, preexec_fn=sigint_as_usual)


def _wait_for(pred, proc, what, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        if proc.poll() is not None:
            pytest.fail(f"the process ended (exit {proc.returncode}) before {what}: {proc.stderr.read()[-1500:]}")
        time.sleep(0.01)
    proc.kill()
    pytest.fail(f"timed out waiting for {what}")


def test_ctrl_c_and_sigkill_during_generate_leave_no_output(slowgen, tmp_path):
    """Three runs at once: SIGINT while generate() runs; SIGINT and SIGKILL while the MIDI file is written."""
    root, models = slowgen
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")])),
           "ZOO_PLUGINS": "zoo-slowgen"}
    runs = {}
    for mode, sig in (("sleep", signal.SIGINT), ("big", signal.SIGINT), ("big", signal.SIGKILL)):
        out = tmp_path / f"{mode}-{sig.name}"
        out.mkdir()
        marker = out.parent / f"{out.name}.marker"
        proc = _start(["generate", models[mode], "-o", out / "piece.mid", "--device", "cpu"],
                      {**env, "SLOWGEN_MARKER": str(marker)}, cwd=tmp_path)
        runs[mode, sig] = (proc, out, marker)
    for (mode, sig), (proc, out, marker) in runs.items():
        if mode == "sleep":
            _wait_for(marker.exists, proc, "generate() started")
        else:  # write_midi's temp file exists while pretty_midi builds and writes 200,000 events
            _wait_for(lambda: any(p.name.endswith(".tmp.mid") for p in out.iterdir()), proc, "the MIDI write started")
        time.sleep(0.1)
        proc.send_signal(sig)
    for (mode, sig), (proc, out, marker) in runs.items():
        _, err = proc.communicate(timeout=60)
        left = sorted(p.name for p in out.iterdir())
        assert "piece.mid" not in left, (mode, sig.name, left)
        if sig == signal.SIGINT:
            assert proc.returncode == 130 and err.strip().splitlines() == ["zoo: interrupted"], (mode, err)
            assert left == [], (mode, left)  # the temp file is removed too
        else:
            assert proc.returncode == -signal.SIGKILL
            # nothing can clean up after SIGKILL: at most write_midi's hidden temp file, never the final name
            assert all(n.startswith(".piece.mid.") and n.endswith(".tmp.mid") for n in left), left


def test_ctrl_c_during_train_keeps_checkpoints_whole_and_resumable(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    proc = _start(["train", "tiny-lm", "--out", out, "--steps", 100000, "--seed", 3, "--set", "ckpt_every=3",
                   "--set", "metrics_every=1", "--set", "keep_checkpoints=2"], {}, cwd=tmp_path)
    _wait_for(lambda: len(checkpoint_dirs(out)) >= 2, proc, "two checkpoints")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and err.strip().splitlines()[-1] == "zoo: interrupted", err
    for ckpt in checkpoint_dirs(out):
        verify(ckpt)  # every checkpoint under a final name is complete
    last = int(checkpoint_dirs(out)[-1].name.split("-")[1])
    from zoo.train import train

    train("tiny-lm", out, values={"steps": last + 3}, resume=True, device="cpu")  # in-process: saves a start-up
    assert f"resuming {out} at step {last}" in capsys.readouterr().err
    assert zoo.load(str(out / "final"), device="cpu").arch == "tiny-lm"
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]


# ---- a full disk while saving a checkpoint ------------------------------------------------------------

def _first_run(out, steps=4):
    from zoo.train import train

    train("tiny-lm", out, values={"steps": steps, "ckpt_every": 2, "seed": 3}, device="cpu")


@pytest.mark.parametrize("where", ["rename", "write"])
def test_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tiny, tmp_path, monkeypatch, capsys, where):
    """ENOSPC from the final rename (a mocked os.replace) or from a tensor write: the previous checkpoint
    stays intact, nothing half-written is left, and the CLI says so in one line (exit 2)."""
    import zoo.checkpoint
    from zoo.cli import main

    out = tmp_path / "run"
    _first_run(out)
    before = {p.name: (p / "manifest.json").read_text() for p in checkpoint_dirs(out)}
    final = (out / "final" / "manifest.json").read_text()
    full = OSError(errno.ENOSPC, "No space left on device")
    if where == "rename":
        real = os.replace

        def replace(src, dst, *a, **k):
            if Path(dst).name.startswith("step-"):
                raise full
            return real(src, dst, *a, **k)

        monkeypatch.setattr(zoo.checkpoint.os, "replace", replace)
    else:
        real_save = zoo.checkpoint.save_tensors

        def save(tensors, path, metadata=None):
            if Path(path).name.startswith("optimizer-"):
                Path(path).write_bytes(b"\0" * 100)  # half a file, then the disk is full
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real_save(tensors, path, metadata)

        monkeypatch.setattr(zoo.checkpoint, "save_tensors", save)
        monkeypatch.setattr("zoo.train.ckpt.save_tensors", save)
    rc = main(["train", "tiny-lm", "--out", str(out), "--resume", "--steps", "6", "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("zoo: error: No space left on device") and "free some disk space" in err[-1]
    assert not any("Traceback" in line for line in err)
    assert {p.name: (p / "manifest.json").read_text() for p in checkpoint_dirs(out)} == before
    for ckpt in checkpoint_dirs(out):
        verify(ckpt)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == sorted(before)  # no temp folder left
    assert (out / "final" / "manifest.json").read_text() == final  # the finished model is untouched


def test_file_size_limit_in_a_real_process_is_a_clean_error(tiny, tmp_path):
    """A real write failure, no mocks: RLIMIT_FSIZE makes the optimizer file's write fail with EFBIG."""
    out = tmp_path / "run"
    _first_run(out)
    size = (checkpoint_dirs(out)[-1] / "optimizer-main.safetensors").stat().st_size

    def limit():
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    before = [p.name for p in checkpoint_dirs(out)]
    done = subprocess.run([ZOO, "train", "tiny-lm", "--out", str(out), "--resume", "--steps", "6"],
                          capture_output=True, text=True, timeout=120, preexec_fn=limit)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines[-1].startswith("zoo: error: File too large"), done.stderr
    assert "Traceback" not in done.stderr
    assert [p.name for p in checkpoint_dirs(out)] == before
    for ckpt in checkpoint_dirs(out):
        verify(ckpt)
    assert not [p for p in (out / "checkpoints").iterdir() if p.name.startswith(".")]
    from zoo.train import train

    train("tiny-lm", out, values={"steps": 6}, resume=True, device="cpu")  # space again: it resumes
    assert [p.name for p in checkpoint_dirs(out)][-1] == "step-000006"


def test_write_midi_interrupted_mid_write_leaves_nothing(tmp_path, monkeypatch):
    from zoo.midi import write_midi

    class Midi:
        def write(self, path):
            Path(path).write_bytes(b"MThd" + b"\0" * 10)
            raise KeyboardInterrupt

    (tmp_path / "old.mid").write_bytes(b"previous take")
    with pytest.raises(KeyboardInterrupt):
        write_midi(Midi(), tmp_path / "old.mid")
    assert [p.name for p in tmp_path.iterdir()] == ["old.mid"]
    assert (tmp_path / "old.mid").read_bytes() == b"previous take"  # the old file is untouched


# ---- outputs that cannot be written -----------------------------------------------------------------------

@pytest.mark.parametrize("output, message", [
    ("{tmp}/adir", "is a folder; give a file name such as"),
    ("{tmp}/afile/x.mid", "afile is a file, not a folder"),
    ("", "is a folder"),
])
def test_bad_output_paths_fail_before_generating_in_one_line(tiny, tiny_model, tmp_path, capsys, monkeypatch,
                                                            output, message):
    """(A traceback after the whole generation before.) The model is never asked to generate."""
    from zoo.cli import main
    from zoo_tiny.model import TinyLM

    folder = tiny_model.save_pretrained(tmp_path / "m")
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(TinyLM, "generate", lambda self, **kw: pytest.fail("generated before checking -o"))
    rc = main(["generate", str(folder), "-o", output.format(tmp=tmp_path), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err


def test_read_only_output_folder_is_one_line(tiny, tiny_model, tmp_path, capsys, monkeypatch):
    """EACCES when creating the output (mocked: the tests may run as root, who can write anywhere)."""
    import zoo.midi
    from zoo.cli import main

    folder = tiny_model.save_pretrained(tmp_path / "m")

    def denied(*a, dir=None, **k):
        raise PermissionError(errno.EACCES, "Permission denied", str(dir))

    monkeypatch.setattr(zoo.safeio.tempfile, "mkstemp", denied)
    (tmp_path / "ro").mkdir()   # a missing folder is refused before anything is tried (zoo.midi.check_output_path)
    rc = main(["generate", str(folder), "-o", str(tmp_path / "ro" / "x.mid"), "--device", "cpu", "--length", "4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "Permission denied" in err[0] and "check the permissions" in err[0], err
    assert not (tmp_path / "ro" / "x.mid").exists()
