"""The README cannot drift: every console line in it runs (or says why it cannot here), and the figures it
quotes are computed from the code and the files they come from.

Each `$ command` of a console block must be a key of COMMANDS. Its value is either the command to run (the
README's line itself, or with the smallest stand-ins that keep the suite fast: fewer steps, tokens or pieces)
or a reason it cannot run on a fresh checkout without a network. A new README line without an entry fails
test_every_readme_command_is_covered. The commands run in document order with bash, in a folder where
`configs/` is the checkout's and `~` is a temporary home whose `~/midi` holds a few MIDI files
(the user's data), with the test's own `zoo` first on PATH and the Hub unreachable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from tests.test_docs_plugins import parse
except ImportError:  # tests/ imported as top-level modules
    from test_docs_plugins import parse

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
MT_PROMPT = (ROOT / "plugins" / "music_transformer" / "zoo_music_transformer" / "weights" / "music-transformer-classical"
             / "prompt.mid")   # the user's opening
TUNE = ROOT / "plugins" / "coconet" / "zoo_coconet" / "weights" / "coconet-bach" / "tune.mid"   # the user's melody

HUB = "talks to the Hugging Face Hub; docs/plugins.md's hub block runs zoo push and hf:// names against tests/hubserver"
COMMANDS: dict[str, str | None] = {
    # make demo and make test set up .venv and run the suite: CI runs `make test` (.ci/run); from inside the
    # suite they would recurse
    "make demo": "skip: make demo takes minutes and writes docs/img/ (CI runs make test, which runs this file)",
    "make test": "skip: the suite itself",
    "zoo list": "zoo list",
    "zoo generate coconet-bach --prompt my-tune.mid -o harmonized.mid --plot h.png --score h.pdf":
        f"zoo generate coconet-bach --prompt {TUNE} -o harmonized.mid --plot h.png --score h.pdf --gibbs-steps 2",
    "zoo generate musegan-bach -o chorale.mid --seed 7 --num 4":
        "zoo generate musegan-bach -o chorale.mid --seed 7 --num 4",
    "zoo generate music-transformer-classical --prompt my-opening.mid --length 512 --top-p 0.95 -o cont.mid":
        f"zoo generate music-transformer-classical --prompt {MT_PROMPT} --length 24 --top-p 0.95 -o cont.mid",
    "zoo generate music-transformer-classical --help": "zoo generate music-transformer-classical --help",
    "zoo train music-transformer --config configs/music_transformer_cpu.json --data ~/midi --out runs/mt":
        "zoo train music-transformer --config configs/music_transformer_cpu.json --data ~/midi --out runs/mt "
        "--steps 1",
    "zoo eval runs/mt/final --num 16": "zoo eval runs/mt/final --num 2 --length 8",
    "zoo info musegan-bach": "zoo info musegan-bach",
    "zoo generate musegan-bach -o c.mid --plot c.png --render c.wav --score c.pdf":
        "zoo generate musegan-bach -o c.mid --plot c.png --render c.wav --score c.pdf",
    "zoo push runs/mt/final myname/my-mt --revision v1": f"skip: {HUB}",
    "zoo generate hf://myname/my-mt@v1 -o x.mid": f"skip: {HUB}",
    "make wheels": "skip: builds wheels (slow); tests/integration/test_distribution.py builds and installs the same wheels, "
                   "and test_the_wheel_line_keeps_torch_out checks this target",
    "python3 -m venv ~/zoo-env": "skip: the lines of the wheel install need the wheels and a torch download",
    "~/zoo-env/bin/pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu":
        "skip: downloads torch (test_the_wheel_line_keeps_torch_out checks the pin is the Makefile's)",
    "~/zoo-env/bin/pip install dist/*.whl": "skip: needs make wheels (tests/integration/test_distribution.py installs them)",
}
# what each command must leave behind (checked after it ran)
WRITES = {
    "zoo generate coconet-bach --prompt": ["harmonized.mid", "h.png", "h.pdf"],
    "zoo generate musegan-bach -o chorale.mid": [f"chorale-{k}.mid" for k in range(1, 5)],
    "zoo generate music-transformer-classical --prompt": ["cont.mid"],
    "zoo train music-transformer": ["runs/mt/final/model.safetensors"],
    "zoo generate musegan-bach -o c.mid": ["c.mid", "c.png", "c.wav", "c.pdf"],
}


def readme_commands() -> list[str]:
    """Every `$ command` of the README's console blocks (a trailing `# comment` removed), in order."""
    commands = []
    for block in parse(README):
        if block.lang == "console":
            commands += [re.sub(r"\s+#.*$", "", line[2:]).strip() for line in block.text.splitlines()
                         if line.startswith("$ ")]
    return commands


def test_every_readme_command_is_covered():
    missing = [c for c in readme_commands() if c not in COMMANDS]
    stale = [c for c in COMMANDS if c not in readme_commands()]
    assert not missing, f"README commands this test does not know; add them to COMMANDS: {missing}"
    assert not stale, f"COMMANDS entries no longer in the README; remove them: {stale}"


def _missing_tools(command: str) -> list[str]:
    """System tools a command needs and this machine lacks (--render: FluidSynth; --score as PDF: an engraver)."""
    import zoo_render as render

    missing = []
    if "--render" in command and shutil.which("fluidsynth") is None:
        missing.append("FluidSynth")
    if "--render" in command:
        try:
            render.find_soundfont(None)
        except Exception:
            missing.append("a General MIDI soundfont")
    if re.search(r"--score \S+\.(pdf|png)", command) and render.engraver() is None:
        missing.append("LilyPond or MuseScore")
    return missing


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    """A new user's shell: a work folder with the checkout's configs/, and a home with ~/midi."""
    root = tmp_path_factory.mktemp("readme")
    work, home = root / "work", root / "home"
    work.mkdir()
    (work / "configs").symlink_to(ROOT / "configs", target_is_directory=True)
    midi = home / "midi"
    midi.mkdir(parents=True)
    music21 = Path(__import__("music21").__file__).parent
    for src in sorted((music21 / "midi" / "testPrimitive").glob("*.mid"))[:8]:   # a small stand-in for ~/midi
        shutil.copy(src, midi / src.name)
    env = {**os.environ, "HOME": str(home), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "HF_HOME": str(root / "hf-home"), "HF_HUB_OFFLINE": "1", "ZOO_CACHE_DIR": str(root / "cache"),
           "ZOO_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return work, env


@pytest.mark.parametrize("line", list(COMMANDS))
def test_readme_command(line, reader):
    plan = COMMANDS[line]
    if plan.startswith("skip: "):
        pytest.skip(plan[len("skip: "):])
    missing = _missing_tools(plan)
    if missing:
        pytest.skip(f"needs {' and '.join(missing)} (the README says how to install them)")
    work, env = reader
    if "runs/mt/final" in plan and not (work / "runs" / "mt" / "final").is_dir():
        pytest.skip("runs on the model the README's zoo train line trains (run the whole file)")
    done = subprocess.run(["bash", "-c", plan], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"README: `{line}` exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    for prefix, files in WRITES.items():
        if line.startswith(prefix):
            absent = [f for f in files if not (work / f).is_file()]
            assert not absent, f"README: `{line}` did not write {absent}"


def test_the_readme_python_example_runs(tmp_path):
    block = next(b for b in parse(README) if b.lang == "python" and "zoo.load" in b.text)
    done = subprocess.run([sys.executable, "-c", block.text], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "ZOO_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "chorale.mid").is_file()


# --- the figures the README quotes --------------------------------------------------------------------------

def _readme_text() -> str:
    return " ".join(README.read_text().split())   # line breaks are spaces


def _parameters(config: str, arch: str, part: str = "model") -> int:
    import torch

    import zoo

    values = json.loads((ROOT / "configs" / config).read_text())[part] if config else {}
    with torch.device("meta"):
        return zoo.create(arch, **values).num_parameters()


def _millions(n: int, digits: int) -> str:
    return f"{n / 1e6:.{digits}f} M parameters"


def test_the_parameter_counts_the_readme_quotes_are_the_presets():
    """(The README said 1.1 M for a preset of 1,632,192.) Each figure is computed from its config file."""
    text = _readme_text()
    cpu = _millions(_parameters('music_transformer_cpu.json', 'music-transformer'), 1)
    assert f"3 layers, {cpu}" in text
    assert f"({cpu})" in json.loads((ROOT / "configs" / "music_transformer_cpu.json").read_text())["_comment"]
    assert f"music_transformer_book.json`, {_millions(_parameters('music_transformer_book.json', 'music-transformer'), 0)}" in text
    assert f"({_millions(_parameters('musegan_bach.json', 'musegan'), 2)};" in text
    assert f"the book's full width, {_parameters('', 'musegan') / 1e6:.1f} M)" in text


def test_the_seconds_per_step_the_readme_quotes_are_those_make_bench_wrote():
    """A speed the README quotes is a row of docs/benchmarks.md, which only `make bench` writes."""
    quoted = re.search(r"training step took ([\d.]+) s on a shared 2-core CPU \(`docs/benchmarks.md`", _readme_text())
    assert quoted, "the README no longer quotes the training step of docs/benchmarks.md; update this test"
    rows = [line for line in (ROOT / "docs" / "benchmarks.md").read_text().splitlines()
            if line.startswith("| 4 x 256 (shipped widths") and "fp32 (today)" in line]
    assert rows and f"| {quoted.group(1)} |" in rows[0], (quoted.group(1), rows)


def test_the_event_count_is_the_tokenizers():
    """(The README said 388 events, the plugin's README 390.) Both say 388 events in a vocabulary of 390."""
    from zoo_music_transformer.tokenizer import EOS, PAD, VOCAB_SIZE

    events = VOCAB_SIZE - len({EOS, PAD})
    assert f"over {events} performance events" in _readme_text() and f"a vocabulary of {VOCAB_SIZE}" in _readme_text()
    plugin = " ".join((ROOT / "plugins" / "music_transformer" / "README.md").read_text().split())
    assert f"{events} performance events ({VOCAB_SIZE} tokens with EOS and PAD)" in plugin


def test_the_wheel_line_keeps_torch_out():
    """(`pip wheel . plugins/...` downloaded 2.9 GB of CUDA torch into the checkout.) `make wheels` builds only
    musezoo's wheels, into the git-ignored dist/, and the README's torch pin is the Makefile's."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^wheels:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "pip wheel" in recipe.group(1)
    assert "--no-deps" in recipe.group(1) and "-w dist/" in recipe.group(1)
    for plugin in ("render", "chorales", "musegan", "music_transformer", "coconet"):
        assert f"plugins/{plugin}" in recipe.group(1)
    assert "dist/" in (ROOT / ".gitignore").read_text().splitlines()
    pin = re.search(r"^TORCH \?= (torch==\S+)", makefile, re.M).group(1)
    assert f"pip install {pin} --index-url" in _readme_text() and "`make wheels` runs `pip wheel --no-deps -w dist/" \
        in _readme_text()
