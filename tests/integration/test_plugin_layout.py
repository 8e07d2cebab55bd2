"""The shipped plugins are laid out as templates/zoo-plugin is, so a plugin author can compare them file by file:
the template's tree (with `yourarch` read as the plugin's name) is part of each plugin's, tests included, and the
template, the plugins and the libraries beside them build with one backend that puts each package whole (its
pretrained models in weights/ too) into the wheel."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
TEMPLATE = ROOT / "templates" / "zoo-plugin"
PACKAGES = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
LEFTOVERS = ("__pycache__", ".pytest_cache", "build", "dist")


def _project(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def _tree(root: Path) -> set[str]:
    """Every file under root, as a relative path, without build and test leftovers."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not any(part in LEFTOVERS or part.endswith(".egg-info") for part in p.parts)}


def _package(folder: Path) -> str:
    (package,) = _project(folder)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    return package


PLUGINS = [f for f in PACKAGES if "zoo" in _project(f)["project"].get("entry-points", {})]


def test_the_shipped_plugins_are_found():
    assert {f.name for f in PLUGINS} >= {"musegan", "music_transformer", "coconet"}


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda f: f.name)
def test_the_template_tree_is_part_of_each_plugin(plugin):
    name = _package(plugin).removeprefix("zoo_")
    expected = {path.replace("yourarch", name) for path in _tree(TEMPLATE)}
    missing = sorted(expected - _tree(plugin))
    assert not missing, f"plugins/{plugin.name} lacks the template's {missing}"


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda f: f.name)
def test_one_build_backend_and_each_package_whole_in_its_wheel(folder):
    assert _project(folder)["build-system"] == _project(TEMPLATE)["build-system"]
    assert _project(folder)["project"]["readme"] == "README.md"
    package = _package(folder)
    assert (folder / package / "__init__.py").is_file() and (folder / "README.md").is_file()
    assert sorted(p.name for p in (folder / "tests").glob("test_*.py")), f"plugins/{folder.name} has no tests/"
    # the wheel takes the package folder as it is: no force-include of files kept elsewhere in the checkout
    assert "force-include" not in _project(folder)["tool"]["hatch"]["build"]["targets"]["wheel"]
    for weights in (folder / package / "weights").glob("*/config.json"):
        assert (weights.parent / "manifest.json").is_file(), weights.parent
