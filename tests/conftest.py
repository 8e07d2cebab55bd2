"""Shared fixtures: the tiny third-party plugin made importable without installing it, and CLI runners."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
ZOO = str(Path(sys.executable).with_name("zoo"))


def make_distribution(root: Path, dist: str, entry_points: dict[str, str], files: dict[str, str] | None = None) -> Path:
    """Lay out a package plus its .dist-info in `root`, as pip would: on sys.path it is 'installed'."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in (files or {}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[zoo]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))
    return root


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory) -> Path:
    """A folder that, on sys.path / PYTHONPATH, makes the zoo-tiny plugin discoverable."""
    root = tmp_path_factory.mktemp("tiny-plugin")
    shutil.copytree(FIXTURES / "zoo_tiny" / "zoo_tiny", root / "zoo_tiny")
    return make_distribution(root, "zoo-tiny", {"tiny": "zoo_tiny.plugin"})


@pytest.fixture
def tiny(tiny_path, monkeypatch):
    """The registry sees only the tiny plugin, in this process and in `zoo` subprocesses."""
    from zoo import registry

    monkeypatch.syspath_prepend(str(tiny_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tiny_path), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ZOO_PLUGINS", "zoo-tiny")
    registry.reset()
    yield tiny_path
    registry.reset()


from zoo.testing import one_torch_thread, zoo_cli  # noqa: E402,F401  (the fixtures every plugin's tests share)


@pytest.fixture
def tiny_model(tiny):
    """A fresh, untrained tiny-lm (deterministic init)."""
    import torch

    import zoo

    torch.manual_seed(0)
    return zoo.create("tiny-lm")


