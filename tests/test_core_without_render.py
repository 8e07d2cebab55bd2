"""`pip install musezoo` without [render]: the core never imports matplotlib or music21, and the flags that draw,
play or engrave say in one line how to get them.

Each case runs in a fresh interpreter with only the tiny fixture plugin (ZOO_PLUGINS=zoo-tiny). "Not installed"
is a finder that refuses zoo_render, matplotlib and music21, so any import of them by the core would fail there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

HEAVY = ("zoo_render", "matplotlib", "music21")

RUN = textwrap.dedent("""
    import json, sys

    class NotInstalled:   # as if `pip install musezoo` had been run without [render]
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {heavy!r}:
                raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

    if {hide!r}:
        sys.meta_path.insert(0, NotInstalled())
    from zoo.cli import main

    codes = [main(argv) for argv in json.loads(sys.argv[1])]
    print(json.dumps({{"codes": codes, "loaded": sorted(m for m in {heavy!r} if m in sys.modules)}}))
""")


def _run(commands, hide: bool, cwd):
    done = subprocess.run([sys.executable, "-c", RUN.format(heavy=HEAVY, hide=hide), json.dumps(commands)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


@pytest.mark.parametrize("hide", [False, True], ids=["render-installed", "render-not-installed"])
def test_list_and_generate_import_no_renderer(tiny_model, tmp_path, hide):
    saved = tiny_model.save_pretrained(tmp_path / "model")
    result, _ = _run([["list"], ["generate", str(saved), "-o", str(tmp_path / "x.mid"), "--seed", "1",
                                 "--threads", "1"]], hide, tmp_path)
    assert result == {"codes": [0, 0], "loaded": []}
    assert (tmp_path / "x.mid").stat().st_size > 0


@pytest.mark.parametrize("flags", [["--plot", "x.png"], ["--render", "x.wav"], ["--score", "x.musicxml"]])
def test_render_flags_without_the_extra_are_one_line_before_any_work(tiny_model, tmp_path, flags):
    saved = tiny_model.save_pretrained(tmp_path / "model")
    result, err = _run([["generate", str(saved), "-o", "x.mid", "--threads", "1", *flags]], True, tmp_path)
    assert result == {"codes": [2], "loaded": []}
    assert err == f"zoo: error: {flags[0]} needs musezoo's render part, which is not installed: " \
                  f"pip install 'musezoo[render]'\n", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]   # no MIDI written: it stopped before generating


def test_zoo_plot_without_the_extra_says_how_to_install_it(tmp_path):
    result, err = _run([["plot", "in.mid", "-o", "roll.png"]], True, tmp_path)
    assert result == {"codes": [2], "loaded": []}
    assert err.count("\n") == 1 and "pip install 'musezoo[render]'" in err, err
