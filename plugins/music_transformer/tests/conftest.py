"""Fixtures of the Music Transformer plugin's own tests (run from the checkout by `make test`, or here with pytest)."""

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
    """Tiny models run fastest on one thread, and the tests share the machine with other work."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
