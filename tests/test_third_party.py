"""A third party's plugin, installed the way its users would install it.

tests/fixtures/zoo_tiny is an out-of-tree plugin package (its own pyproject.toml and
`zoo` entry point). It is pip-installed into a throw-away virtualenv that already has
the core, with nothing in the core edited, and must then be usable from the `zoo` CLI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    from tests.venvtools import copy_package, core_venv
except ImportError:  # tests/ imported as top-level modules
    from venvtools import copy_package, core_venv

FIXTURE = Path(__file__).parent / "fixtures" / "zoo_tiny"


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A throw-away venv with the core and zoo-tiny pip-installed (a regular, non-editable install)."""
    root = tmp_path_factory.mktemp("third-party")
    venv = core_venv(root / "venv")
    # Build from a copy: setuptools writes build/ and *.egg-info next to the sources.
    venv.pip_install(copy_package(FIXTURE, root / "zoo_tiny"))
    return venv


def test_it_is_installed_in_the_venv_only(venv):
    done = venv.run(venv.python, "-c", "import zoo_tiny, zoo; print(zoo_tiny.__file__); print(zoo.__file__)")
    assert done.returncode == 0, done.stderr
    plugin_file, core_file = done.stdout.split()
    assert Path(plugin_file).is_relative_to(venv.root)      # the plugin was installed into the venv...
    import zoo

    assert Path(core_file).resolve() == Path(zoo.__file__).resolve()   # ...next to the very core under test


def test_zoo_list_shows_its_model(venv):
    done = venv.zoo("list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:2] == ["tiny-scales", "tiny-lm"] for line in lines), done.stdout
    assert any(line.split() == ["tiny-lm", "plugin", "zoo-tiny"] for line in lines), done.stdout

    plugins = venv.zoo("plugins")
    assert "zoo-tiny 0.1.0  (zoo_tiny.plugin)  ok" in plugins.stdout
    assert "architecture:tiny-lm, tokenizer:tiny-melody, trainer:tiny-lm, dataset:tiny-lm, pretrained:tiny-scales" in plugins.stdout


def test_zoo_generate_runs_it(venv, tiny_model, tmp_path):
    """zoo-tiny ships no weights: generate from a folder saved with its model (as a user would be sent one)."""
    import pretty_midi

    folder = tiny_model.save_pretrained(tmp_path / "tiny-model")
    out = tmp_path / "tiny.mid"
    # --start-pitch is the plugin's own option: the installed core has never heard of it
    done = venv.zoo("generate", folder, "-o", out, "--seed", "1", "--length", "16", "--start-pitch", "67",
                    "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    notes = pretty_midi.PrettyMIDI(str(out)).instruments[0].notes
    assert notes and all(0 <= n.pitch < 128 for n in notes) and notes[0].pitch == 67
    # The same seed in this process gives the same music: the venv ran this very model.
    (expected,) = tiny_model.generate(seed=1, length=16, start_pitch=67)
    expected = expected.instruments[0].notes
    assert [(n.pitch, n.start) for n in notes] == [(n.pitch, n.start) for n in expected]

    # Its pretrained name is listed, but without weights it is a one-line error, not a traceback.
    done = venv.zoo("generate", "tiny-scales", "-o", tmp_path / "x.mid")
    assert done.returncode == 2 and "Traceback" not in done.stderr and "tiny-scales" in done.stderr
