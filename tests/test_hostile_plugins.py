"""Broken plugins through the command line (issue 8). The registry-level cases (import fails, hook raises,
two plugins claim a name, an architecture without a tokenizer) are in tests/test_core_registry.py; here
each is seen the way a user sees it, through `zoo` (in-process main(), plus one real subprocess), with the
healthy plugin still working beside it. A few more hostile plugins are added.
"""

from __future__ import annotations

import os
import sys

import pytest

from zoo import registry
from zoo.cli import main
from tests.conftest import make_distribution

from tests.fake_plugins import BROKEN


@pytest.fixture
def installed(tmp_path, tiny_path, monkeypatch):
    """Every broken plugin above installed beside zoo-tiny (on sys.path and PYTHONPATH)."""
    for dist, (eps, files) in BROKEN.items():
        make_distribution(tmp_path, dist, eps, files)
    monkeypatch.syspath_prepend(str(tiny_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(tmp_path), str(tiny_path),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("ZOO_PLUGINS", ",".join([*BROKEN, "zoo-tiny"]))
    registry.reset()
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:  # fake plugin modules must not leak into other tests
        del sys.modules[name]
    registry.reset()


def _run(capsys, *args):
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err.strip().splitlines()


def test_list_keeps_working_and_names_each_broken_plugin_once(installed, capsys):
    rc, out, err = _run(capsys, "list")
    assert rc == 0 and "tiny-scales" in out and "tiny-lm" in out
    by_plugin = {d: [l for l in err if f"'{d}' skipped" in l] for d in
                 ("zoo-importfail", "zoo-hookfail", "zoo-badregister", "zoo-notaspec")}
    assert all(len(lines) == 1 for lines in by_plugin.values()), err
    assert "no module named banana" in by_plugin["zoo-importfail"][0]
    assert "hook exploded" in by_plugin["zoo-hookfail"][0]
    # the conflict is reported once, against the plugin that registered second (only that name is dropped)
    conflict = [l for l in err if "'tiny-lm' is registered by both 'zoo-copycat' and 'zoo-tiny'" in l]
    assert len(conflict) == 1, err
    assert len(err) == 5  # one line per problem, nothing else
    assert "needs a name string" in by_plugin["zoo-badregister"][0]
    assert "needs a zoo.PretrainedSpec" in by_plugin["zoo-notaspec"][0]
    assert "half-registered" not in out  # a plugin whose hook raised registers nothing


def test_plugins_command_shows_every_error(installed, capsys):
    rc, out, _ = _run(capsys, "plugins")
    assert rc == 0
    lines = out.splitlines()
    for dist in ("zoo-importfail", "zoo-hookfail", "zoo-badregister", "zoo-notaspec"):
        assert any(line.startswith(dist) and "ERROR:" in line for line in lines), (dist, out)
    # the conflict shows on the second registrant, which keeps everything else it registered
    tiny = lines.index(next(line for line in lines if line.startswith("zoo-tiny")))
    assert "ERROR: architecture 'tiny-lm' is registered by both" in lines[tiny]
    assert "pretrained:tiny-scales" in lines[tiny + 2]


@pytest.mark.parametrize("args, message", [
    (("info", "tiny-lm"), "architecture 'tiny-lm' is registered by 'zoo-copycat' and 'zoo-tiny'"),
    (("train", "notok", "--out", "{tmp}/r"), "needs tokenizer 'missing-tokenizer', which no installed plugin"),
    (("train", "lazyfail", "--out", "{tmp}/r"), "could not load 'zoo_lazyfail.model:Model'"),
    (("generate", "half-registered", "-o", "{tmp}/x.mid"), "unknown model 'half-registered'"),
])
def test_using_a_broken_plugin_is_one_clear_line_exit_2(installed, capsys, tmp_path, args, message):
    rc, _, err = _run(capsys, *[a.format(tmp=tmp_path) for a in args])
    assert rc == 2 and len(err) == 1 and err[0].startswith("zoo: error:") and message in err[0], err
    assert not (tmp_path / "r").exists() and not (tmp_path / "x.mid").exists()


def test_the_healthy_plugin_still_generates_beside_broken_ones(installed, capsys, tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    rc, out, err = _run(capsys, "generate", folder, "-o", tmp_path / "a.mid", "--length", 4)
    assert rc == 0 and err == [] and (tmp_path / "a.mid").is_file(), err


def test_a_plugin_bug_at_generate_time_is_reported_as_a_bug(installed, capsys, tiny_model, tmp_path, monkeypatch):
    """Not a user error: exit 1 with the traceback and a line that says whom to tell."""
    folder = tiny_model.save_pretrained(tmp_path / "m")
    from zoo_tiny.model import TinyLM

    monkeypatch.setattr(TinyLM, "generate", lambda self, **kw: 1 / 0)
    rc, _, err = _run(capsys, "generate", folder, "-o", tmp_path / "a.mid")
    assert rc == 1 and "ZeroDivisionError" in "\n".join(err) and "a bug in musezoo or a plugin" in err[-1]
    assert not (tmp_path / "a.mid").exists()


def test_broken_plugins_through_the_real_console_script(installed, zoo_cli, tmp_path):
    done = zoo_cli("generate", "no-such-model", "-o", tmp_path / "x.mid")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "unknown model 'no-such-model'" in lines[0], done.stderr
    assert "RuntimeWarning" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [
    ("generate", "m", "-o", "x.mid", "--temperature", "nan"),
    ("generate", "m", "-o", "x.mid", "--temperature=-inf"),
    ("generate", "m", "-o", "x.mid", "--top-p", "inf"),
    ("generate", "m", "-o", "x.mid", "--top-p", "1e999"),
    ("train", "tiny-lm", "--out", "r", "--lr", "nan"),
])
def test_non_finite_numbers_on_the_command_line_are_refused(capsys, args):
    """nan/inf pass every `x < 0` check in a plugin: the music-transformer crashed on --temperature nan."""
    with pytest.raises(SystemExit) as info:
        main(list(args))
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and "must be a finite number" in err[0], err
