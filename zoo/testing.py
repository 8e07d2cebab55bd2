"""Test helpers for plugins: pytest fixtures and small MIDI builders.

A plugin's tests (laid out as templates/zoo-plugin is) import what they need in their
conftest.py, for example `from zoo.testing import zoo_cli, one_torch_thread  # noqa: F401`.
pytest is imported only here, so `import zoo` never needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ZOO = str(Path(sys.executable).with_name("zoo"))   # the console script of the interpreter running the tests


@pytest.fixture
def zoo_cli():
    """Run the `zoo` console script as a subprocess; returns CompletedProcess (text)."""

    def run(*args, timeout=120, **kw):
        env = {**os.environ, **kw.pop("env", {})}
        return subprocess.run([ZOO, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env, **kw)

    return run


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread, and tests often share the machine with other work."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def one_track_midi(*notes, tempo: float = 120.0, program: int = 0):
    """A one-instrument PrettyMIDI from (pitch, start_s, end_s) triples."""
    import pretty_midi

    m = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    inst = pretty_midi.Instrument(program=program)
    inst.notes = [pretty_midi.Note(velocity=80, pitch=p, start=s, end=e) for p, s, e in notes]
    m.instruments.append(inst)
    return m


def sigint_as_usual() -> None:
    """A subprocess preexec_fn: SIGINT back to its default, so that Python turns it into KeyboardInterrupt."""
    # a shell starts background jobs (`cmd &`) with SIGINT ignored and children inherit that: a test sending
    # Ctrl-C to a zoo subprocess would wait for nothing when the suite itself runs in the background
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli_in_process(capsys, *args) -> tuple[int, str]:
    """Run `zoo ARGS` in this process (zoo.cli.main): (exit code, what it printed on stderr)."""
    from zoo.cli import main

    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def one_error_line(code, err) -> str:
    """Assert a user error: exit 2 and exactly one `zoo: error:` line, no traceback; returns that line."""
    assert code == 2, err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()
