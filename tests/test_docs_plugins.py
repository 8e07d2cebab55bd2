"""docs/plugins.md cannot rot: every code block in it is run, or compared with the template.

Each fenced block is one test, in document order. An HTML comment on the line before
a block says what to do with it; a block without one must be a console block.

- ``<!-- test: same-as PATH -->``: the block occurs verbatim in PATH (repo-relative).
- ``<!-- test: tree PATH -->``: the block lists exactly the files under PATH.
- ``<!-- test: replace-line PATH PREFIX -->``: in the tutorial's folder, the line of PATH
  that starts with PREFIX is replaced by the block (the reader's edit).
- console blocks: each ``$ command`` runs with bash in the tutorial's folder (a `cd`
  carries over), inside a throw-away virtualenv that has the core (pip there runs offline,
  without build isolation or dependency resolution), and must exit 0;
  the lines after it must each appear in its output (whitespace-insensitive).
- ``<!-- test: hub -->``: a console block that talks to the Hub: `zoo push` goes to the
  write-API stand-in of tests/hubserver, everything else to olah, which serves what
  was pushed.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

try:
    from tests.venvtools import copy_package, core_venv, rename_tree
except ImportError:  # tests/ imported as top-level modules
    from venvtools import copy_package, core_venv, rename_tree

ROOT = Path(__file__).parents[1]
DOC = ROOT / "docs" / "plugins.md"
TOKEN = "hf_TESTdocsToken0123456789abcdef"
_MARKER = re.compile(r"^<!--\s*test:\s*(.*?)\s*-->$")


@dataclass
class Block:
    line: int          # 1-based line of the opening fence
    lang: str
    text: str
    marker: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"line{self.line}-{self.marker[0] if self.marker else self.lang}"


def parse(path: Path = DOC) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the test marker just above each."""
    blocks, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang, start = lines[i][3:].strip(), i
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            prev = next((lines[k] for k in range(start - 1, -1, -1) if lines[k].strip()), "")
            m = _MARKER.match(prev.strip())
            blocks.append(Block(start + 1, lang, "\n".join(lines[start + 1:j]) + "\n", m.group(1).split() if m else []))
            i = j
        i += 1
    return blocks


BLOCKS = parse()


def _normal(line: str) -> str:
    return " ".join(line.split())


def _listed_tree(text: str) -> set[str]:
    """Paths in an indented tree listing ("dir/" opens a level; text after two spaces is a comment)."""
    paths, stack = set(), []
    for line in text.splitlines():
        if not line.strip():
            continue
        depth = (len(line) - len(line.lstrip())) // 4
        name = line.strip().split("  ")[0].strip()
        stack = stack[:depth]
        if name.endswith("/"):
            stack.append(name.rstrip("/"))
        else:
            paths.add("/".join([*stack, name]))
    return paths


def _actual_tree(root: Path) -> set[str]:
    skip = ("__pycache__", ".pytest_cache", "build", "dist")
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and not any(part in skip or part.endswith(".egg-info") for part in p.relative_to(root).parts)}


class Tutorial:
    """The reader's machine: a folder with the repo's templates/, a venv with the core, and a cwd."""

    def __init__(self, root: Path):
        self.root = root / "work"
        self.root.mkdir()
        (self.root / "templates").symlink_to(ROOT / "templates", target_is_directory=True)
        self.venv = core_venv(root / "venv")
        self.cwd = self.root
        self.state = root / "cwd.txt"
        self.failed: str | None = None
        self.hub_skip: str | None = None
        self.env = {"HF_HOME": str(root / "hf-home"), "HF_HUB_CACHE": str(root / "hf-cache"),
                    "HF_TOKEN": TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "30",
                    "HF_HUB_DOWNLOAD_TIMEOUT": "30", "HF_ENDPOINT": "http://127.0.0.1:9",  # nothing listens there
                    # pip resolves nothing (3 s of CPU): test_the_template_dependencies_are_met checks them.
                    "PIP_NO_DEPS": "1"}
        self._hub_root, self._servers, self.pushed = root / "hub", [], False

    def hub(self):
        """Start olah (reads) and the write-API stand-in (writes into olah's mirrors), once."""
        if self._servers or self.hub_skip:
            return
        if importlib.util.find_spec("zoo.hub") is None:
            self.hub_skip = "zoo/hub.py (the Hub issue) is not in this checkout"
            return
        try:
            from tests.hubserver.olah_server import OlahServer
            from tests.hubserver.standin import HubStandIn
        except ImportError:
            from hubserver.olah_server import OlahServer
            from hubserver.standin import HubStandIn
        self._hub_root.mkdir()
        try:
            olah = OlahServer(self._hub_root).start()
        except RuntimeError as exc:
            self.hub_skip = f"olah (the Hub mirror of tests/hubserver) did not start: {str(exc)[:200]}"
            return
        self._servers = [olah, HubStandIn(olah.mirrors, token=TOKEN).start()]

    def close(self):
        for server in reversed(self._servers):
            server.stop()

    def run(self, command: str, endpoint: str | None = None):
        script = (f"set -o pipefail\ncd {shlex.quote(str(self.cwd))} || exit 99\n{command}\n"
                  f"rc=$?\npwd > {shlex.quote(str(self.state))}\nexit $rc\n")
        env = dict(self.env, **({"HF_ENDPOINT": endpoint} if endpoint else {}))
        done = self.venv.run("bash", "-c", script, env=env, timeout=300)
        if self.state.is_file():
            self.cwd = Path(self.state.read_text().strip())
        return done


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    t = Tutorial(tmp_path_factory.mktemp("tutorial"))
    yield t
    t.close()


def _console(block: Block) -> list[tuple[str, list[str]]]:
    """[(command, expected output lines)] of a console block."""
    steps = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip():
            assert steps, f"docs/plugins.md:{block.line}: output before the first $ command"
            steps[-1][1].append(line)
    return steps


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_block(block: Block, request):
    where = f"docs/plugins.md:{block.line}"
    kind, args = (block.marker[0], block.marker[1:]) if block.marker else ("console", [])
    if kind == "same-as":
        target = ROOT / args[0]
        assert block.text in target.read_text(), f"{where}: this block is no longer in {args[0]}; update the doc"
    elif kind == "tree":
        assert _listed_tree(block.text) == _actual_tree(ROOT / args[0]), f"{where}: the tree differs from {args[0]}"
    elif kind in ("console", "hub", "replace-line"):
        assert kind == "replace-line" or block.lang == "console", \
            f"{where}: a ```{block.lang} block needs a <!-- test: ... --> marker (see tests/test_docs_plugins.py)"
        _tutorial_step(block, kind, args, request.getfixturevalue("tutorial"), where)
    else:
        pytest.fail(f"{where}: unknown test marker {kind!r}")


def _tutorial_step(block, kind, args, t: Tutorial, where):
    if t.failed:
        pytest.fail(f"an earlier tutorial step failed ({t.failed}), so this one cannot run")
    if kind == "replace-line":
        path, prefix = t.root / args[0], args[1]
        lines = path.read_text().splitlines(keepends=True)
        hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert len(hits) == 1, f"{where}: expected one line starting with {prefix!r} in {args[0]}, found {len(hits)}"
        lines[hits[0]:hits[0] + 1] = [block.text]
        path.write_text("".join(lines))
        return
    if kind == "hub":
        t.hub()
        if t.hub_skip or (not t.pushed and "zoo push" not in block.text):
            pytest.skip(t.hub_skip or "the `zoo push` block before this one did not run")
    for command, expected in _console(block):
        endpoint = None
        if kind == "hub":
            olah, standin = t._servers
            endpoint = standin.url if command.startswith("zoo push") else olah.url
        done = t.run(command, endpoint)
        if done.returncode != 0:
            t.failed = f"{where}: $ {command}"
            pytest.fail(f"{where}: `{command}` exited {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        got = {_normal(line) for line in done.stdout.splitlines()}
        missing = [line for line in expected if _normal(line) not in got]
        if missing:
            t.failed = f"{where}: $ {command}"
        assert not missing, f"{where}: `{command}` did not print {missing}; it printed:\n{done.stdout}"
        if command.startswith("zoo push"):
            t.pushed = True


def test_every_block_is_tested():
    """Guard the guard: markers are known, and only console blocks go unmarked."""
    for b in BLOCKS:
        assert (b.marker and b.marker[0] in ("same-as", "tree", "replace-line", "hub")) or b.lang == "console", \
            f"docs/plugins.md:{b.line}: ```{b.lang} block without a <!-- test: ... --> marker"
    assert any(b.marker[:1] == ["hub"] and "zoo push" in b.text for b in BLOCKS)


def test_the_contracts_are_documented():
    """Every hook, every public member of Model, Tokenizer and Trainer, every PretrainedSpec field."""
    from zoo.model import Model
    from zoo.plugins import HOOKS
    from zoo.registry import PretrainedSpec
    from zoo.tokenizer import Tokenizer
    from zoo.train import Trainer

    text = DOC.read_text()
    names = {"hook": list(HOOKS), "PretrainedSpec": [f.name for f in fields(PretrainedSpec)]}
    for cls in (Model, Tokenizer, Trainer):
        names[cls.__name__] = [n for n in vars(cls) if not n.startswith("_")]
    missing = {what: [n for n in ns if not re.search(rf"`(?:[\w.]*\.)?{n}\b", text)] for what, ns in names.items()}
    assert not any(missing.values()), f"docs/plugins.md does not document: {missing}"


def test_pretrained_names_follow_the_naming_rule():
    specs = re.findall(r'PretrainedSpec\(\s*name="([^"]+)",[^)]*?arch="([^"]+)"', DOC.read_text())
    assert specs and all(name.startswith(arch + "-") for name, arch in specs), specs


def test_the_template_dependencies_are_met():
    """What `pip install -e .` would resolve: every dependency of the template is installed here."""
    import importlib.metadata as md

    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "templates" / "zoo-plugin" / "pyproject.toml").read_text())["project"]
    for dep in map(Requirement, project["dependencies"]):
        assert md.version(dep.name) in dep.specifier, f"{dep} is not met by the installed {dep.name} {md.version(dep.name)}"


# -- the README's "Write a plugin in 20 lines" ----------------------------------------------------

def test_the_readme_plugin_runs(tmp_path):
    """The README's example, with the template's classes it names: installs, passes --check, generates by name."""
    blocks = {b.text.splitlines()[0]: b.text for b in parse(ROOT / "README.md") if b.lang in ("toml", "python")}
    toml, plugin = blocks["# pyproject.toml"], blocks["# zoo_tunes/plugin.py"]
    src = copy_package(ROOT / "templates" / "zoo-plugin", tmp_path / "zoo-tunes")
    rename_tree(src, "yourarch", "tunes")  # as docs/plugins.md, step 2
    assert toml.split("\n", 1)[1] in (src / "pyproject.toml").read_text(), "README: not the template's entry point"
    (src / "zoo_tunes" / "plugin.py").write_text(plugin)
    venv = core_venv(tmp_path / "venv")
    venv.pip_install(src, editable=True)  # editable: the model saved below lands in the installed package
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")}  # the name must need no Hub

    done = venv.zoo("plugins", "--check", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "musezoo-tunes 0.1.0  (zoo_tunes.plugin)  ok" in done.stdout, done.stdout
    weights = src / "zoo_tunes" / "weights" / "tunes-scales"
    done = venv.run(venv.python, "-c", f"import zoo; zoo.create('tunes').save_pretrained({str(weights)!r})", env=env)
    assert done.returncode == 0, done.stderr
    done = venv.zoo("generate", "tunes-scales", "-o", tmp_path / "x.mid", "--seed", "1", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "x.mid")
