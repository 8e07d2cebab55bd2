"""Throw-away virtualenvs that already have the core, made in well under a second.

`core_venv(path)` makes `python -m venv --without-pip` and drops one .pth file into
its site-packages that runs `site.addsitedir(<this interpreter's site-packages>)`.
So torch, pip, setuptools and the editable core (its own .pth finder included)
are importable there, while anything pip installs into the new venv stays in it.
Nothing in the core is edited, and the main environment is never written to.

    venv = core_venv(tmp_path / "venv")
    venv.pip_install(plugin_dir)                 # --no-deps --no-build-isolation --no-index
    venv.zoo("list")                             # CompletedProcess; `zoo` is <venv>/bin/zoo
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

BIN = "Scripts" if os.name == "nt" else "bin"


def main_site_dirs() -> list[str]:
    """site-packages of the interpreter running the tests (purelib and platlib, deduplicated)."""
    paths = sysconfig.get_paths()
    return list(dict.fromkeys([paths["purelib"], paths["platlib"]]))


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ minus whatever would leak the outer environment into a subprocess."""
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "ZOO_PLUGINS", "ZOO_WEIGHTS_DIR", "PIP_REQUIRE_VIRTUALENV")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(extra)
    return env


@dataclass
class Venv:
    """A throw-away virtualenv and helpers to run things in it."""

    root: Path

    @property
    def bin(self) -> Path:
        return self.root / BIN

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    @property
    def site_packages(self) -> Path:
        out = subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True)
        return Path(out.stdout.strip())

    def env(self, **extra: str) -> dict[str, str]:
        """An environment with this venv first on PATH, as `source bin/activate` would give."""
        env = clean_env(**extra)
        env["VIRTUAL_ENV"] = str(self.root)
        env["PATH"] = os.pathsep.join([str(self.bin), env.get("PATH", "")])
        # pip in a test: use only what is installed, never the network or an isolated build env.
        env.setdefault("PIP_NO_INDEX", "1")
        env.setdefault("PIP_NO_BUILD_ISOLATION", "0")   # pip's inverted spelling: "0" turns isolation off
        env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        return env

    def run(self, *args, timeout: float = 180, check: bool = False, **kw) -> subprocess.CompletedProcess:
        """Run a command (list of args) in this venv's environment; text output captured."""
        env = self.env(**kw.pop("env", {}))
        return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                              env=env, check=check, **kw)

    def zoo(self, *args, **kw) -> subprocess.CompletedProcess:
        """Run this venv's `zoo` console script."""
        return self.run(self.bin / "zoo", *args, **kw)

    def pip_install(self, *targets, editable: bool = False, **kw) -> subprocess.CompletedProcess:
        """pip install local folders into this venv (no dependencies, no network, no isolation)."""
        args = [self.python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
        for target in targets:
            args += ["-e", target] if editable else [target]
        result = self.run(*args, **kw)
        if result.returncode != 0:
            raise RuntimeError(f"pip install failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result


def core_venv(root) -> Venv:
    """A new virtualenv at `root` that sees the core (and its dependencies) of the running interpreter."""
    root = Path(root)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True)
    venv = Venv(root)
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in main_site_dirs())
    (venv.site_packages / "_musezoo_core.pth").write_text(lines)
    # The console scripts a user would have: `zoo` (the core's entry point) and `pip`.
    _script(venv, "zoo", "from zoo.cli import main\nsys.exit(main())")
    _script(venv, "pip", "from pip._internal.cli.main import main\nsys.exit(main())")
    return venv


def deps_venv(root) -> Venv:
    """A new virtualenv that sees the running interpreter's packages (torch, pip, ...) but no musezoo at all.

    For installing musezoo itself from wheels, as a user would: the venv's .pth adds a folder of
    symlinks to every entry of this interpreter's site-packages except those of the musezoo
    distributions (their dist-info and, for editable installs, the .pth and finder that lead back
    to the checkout). Nothing is copied, so torch is reused as it is, and pip finds every
    dependency already installed instead of asking the network.
    """
    import importlib.metadata as md

    root = Path(root)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, capture_output=True)
    venv = Venv(root)
    sites = {Path(site).resolve() for site in main_site_dirs()}
    ours = set()
    for dist in md.distributions(path=[str(site) for site in sites]):
        if (dist.metadata["Name"] or "").lower().startswith("musezoo"):
            ours.add(Path(dist._path).name)
            ours.update(str(f).split("/")[0] for f in dist.files or [])
    ours -= {"__pycache__", ".."}
    shadow = root / "deps"
    shadow.mkdir()
    for site in main_site_dirs():
        for entry in Path(site).iterdir():
            if entry.name not in ours and not (shadow / entry.name).exists():
                (shadow / entry.name).symlink_to(entry)
    (venv.site_packages / "_musezoo_deps.pth").write_text(f"import site; site.addsitedir({str(shadow)!r})\n")
    _script(venv, "pip", "from pip._internal.cli.main import main\nsys.exit(main())")
    return venv


def _script(venv: Venv, name: str, body: str) -> None:
    path = venv.bin / name
    path.write_text(f"#!{venv.python}\nimport sys\n{body}\n")
    path.chmod(0o755)


def copy_package(src, dest) -> Path:
    """Copy a package source tree, leaving out build leftovers (so a build never writes into src)."""
    ignore = shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__", ".pytest_cache", "*.pyc")
    return Path(shutil.copytree(src, dest, ignore=ignore))


def rename_tree(root, old: str, new: str) -> None:
    """Replace `old` by `new` in every file's text and every file or folder name under root."""
    root = Path(root)
    for path in sorted(root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_file():
            text = path.read_text()
            if old in text:
                path.write_text(text.replace(old, new))
        if old in path.name:
            path.rename(path.with_name(path.name.replace(old, new)))
