"""musezoo installed the way a user installs it: wheels, a fresh venv, no checkout, no network.

The module builds, once, the wheels of the core and both shipped plugins with `pip wheel`
(from a copy of the checkout, so the build writes nothing here), plus the wheel of a third
party's plugin (tests/fixtures/zoo_tiny) that ships its own weights. It installs them
non-editable into a venv that reuses this interpreter's torch but cannot see the checkout
(tests/venvtools.py: deps_venv), and runs `zoo` from a folder outside the checkout with
HF_HUB_OFFLINE=1: every pretrained name must work from the files inside its wheel.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    from tests.venvtools import clean_env, copy_package, deps_venv
except ImportError:  # tests/ imported as top-level modules
    from venvtools import clean_env, copy_package, deps_venv

ROOT = Path(__file__).parents[2]
TINY = ROOT / "tests" / "fixtures" / "zoo_tiny"
# Each shipped model: its plugin's source folder and its package (which holds it at weights/NAME/).
SHIPPED = {"musegan-bach": ("plugins/musegan", "zoo_musegan"),
           "music-transformer-classical": ("plugins/music_transformer", "zoo_music_transformer"),
           "coconet-bach": ("plugins/coconet", "zoo_coconet")}
LIBRARIES = ("plugins/chorales", "plugins/render")   # libraries shipped beside the plugins (no entry point)
PYPI_LIMIT = 100 * 2**20  # PyPI's default upload limit per file


def _checkout_copy(dest: Path) -> Path:
    """The core and the plugins, without build leftovers (a wheel build writes build/ and egg-info)."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    copy_package(ROOT / "zoo", dest / "zoo")
    for folder in [*LIBRARIES, *(f for f, _ in SHIPPED.values())]:
        copy_package(ROOT / folder, dest / folder)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """{distribution: wheel path}: the three musezoo wheels and the third party's, built once."""
    root = tmp_path_factory.mktemp("dist")
    src = _checkout_copy(root / "musezoo")
    tiny = copy_package(TINY, root / "zoo_tiny")
    _tiny_model_into(tiny / "zoo_tiny" / "weights" / "tiny-scales")
    wheels = root / "wheels"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(wheels), str(src), *(str(src / f) for f in LIBRARIES),
                           *(str(src / f) for f, _ in SHIPPED.values()), str(tiny)],
                          capture_output=True, text=True, timeout=600, env=clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    found = {}
    for wheel in wheels.glob("*.whl"):
        found[wheel.name.split("-")[0].replace("_", "-")] = wheel
    assert set(found) == {"musezoo", "musezoo-render", "musezoo-chorales", "musezoo-musegan",
                          "musezoo-music-transformer", "musezoo-coconet", "zoo-tiny"}, found
    return found


def _tiny_model_into(dest: Path) -> None:
    """Save a fresh tiny-lm (deterministic) where the third party's spec says its files are."""
    import torch

    import zoo
    from zoo import registry

    try:
        from tests.conftest import make_distribution
    except ImportError:
        from conftest import make_distribution

    with pytest.MonkeyPatch.context() as mp:
        # the fixture as an "installed" distribution on sys.path, for this process only
        site = dest.parents[3] / "tiny-site"
        shutil.copytree(TINY / "zoo_tiny", site / "zoo_tiny")
        make_distribution(site, "zoo-tiny", {"tiny": "zoo_tiny.plugin"})
        mp.syspath_prepend(str(site))
        mp.setenv("ZOO_PLUGINS", "zoo-tiny")
        registry.reset()
        torch.manual_seed(0)
        zoo.create("tiny-lm").save_pretrained(dest)
    registry.reset()


@pytest.fixture(scope="module")
def user(built, tmp_path_factory):
    """A venv with the four wheels installed (dependencies resolved by pip, offline) and a folder to work in."""
    root = tmp_path_factory.mktemp("user")
    venv = deps_venv(root / "venv")
    done = venv.run(venv.python, "-m", "pip", "install", "-q", "--no-index", *built.values(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    work = root / "work"  # not the checkout, and not below it
    work.mkdir()
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(root / "hf-home"), "HF_HUB_CACHE": str(root / "hf-cache"),
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there: no name may need the Hub

    def zoo_cmd(*args, timeout=300):
        return venv.zoo(*args, cwd=work, env=env, timeout=timeout)

    return venv, work, zoo_cmd


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _source_folder(name: str) -> Path:
    """Where the checkout keeps a shipped model: inside its plugin's package, as the wheel does."""
    plugin, package = SHIPPED[name]
    return ROOT / plugin / package / "weights" / name


def test_each_plugin_wheel_holds_its_model_folder(built):
    for name, (_, package) in SHIPPED.items():
        folder = _source_folder(name)
        expected = {p.name: _sha(p.read_bytes()) for p in folder.iterdir() if p.is_file()}
        assert "config.json" in expected and "manifest.json" in expected, folder
        prefix = f"{package}/weights/{name}/"
        with zipfile.ZipFile(built[f"musezoo-{package.removeprefix('zoo_').replace('_', '-')}"]) as whl:
            got = {n[len(prefix):]: _sha(whl.read(n)) for n in whl.namelist() if n.startswith(prefix)}
        assert got == expected, f"the wheel's {prefix} differs from {folder}"
    with zipfile.ZipFile(built["musezoo"]) as whl:  # the core ships no model
        assert not [n for n in whl.namelist() if "safetensors" in n or n.startswith("weights/")]
    for wheel in built.values():
        size = wheel.stat().st_size
        print(f"{wheel.name}: {size / 2**20:.1f} MiB")
        assert size < PYPI_LIMIT, f"{wheel.name} is {size} bytes, over PyPI's limit: put the weights on the Hub"


def test_everything_comes_from_the_venv_not_the_checkout(user):
    venv, work, _ = user
    code = ("import sys, zoo, zoo_musegan, zoo_music_transformer, zoo_tiny\n"
            "print(zoo.__file__, zoo_musegan.__file__, zoo_music_transformer.__file__, zoo_tiny.__file__)\n"
            "print(*sys.path)")
    done = venv.run(venv.python, "-c", code, cwd=work)
    assert done.returncode == 0, done.stderr
    files, path = done.stdout.splitlines()
    assert all(Path(f).is_relative_to(venv.root) for f in files.split()), files
    assert str(ROOT) not in path, "the checkout is on the venv's sys.path"


def test_zoo_list_and_plugins_check(user):
    _, _, zoo_cmd = user
    done = zoo_cmd("list")
    assert done.returncode == 0, done.stderr
    names = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("  ")}
    assert {*SHIPPED, "tiny-scales"} <= names, done.stdout
    done = zoo_cmd("plugins", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    for dist, version, module in (("musezoo-musegan", "0.2.0", "zoo_musegan.plugin"),
                                  ("zoo-tiny", "0.1.0", "zoo_tiny.plugin"),
                                  ("musezoo-music-transformer", "0.1.0", "zoo_music_transformer.plugin"),
                                  ("musezoo-coconet", "0.1.0", "zoo_coconet.plugin")):
        assert f"{dist} {version}  ({module})  ok" in done.stdout, done.stdout


def test_generate_the_shipped_models_offline(user):
    import pretty_midi

    _, work, zoo_cmd = user
    done = zoo_cmd("generate", "musegan-bach", "-o", "x.mid", "--seed", "0", "--device", "cpu", "--threads", "1",
                   "--plot", "x.png")   # the render wheel (musezoo[render]) draws it
    assert done.returncode == 0, done.stderr
    assert pretty_midi.PrettyMIDI(str(work / "x.mid")).instruments
    assert (work / "x.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    done = zoo_cmd("generate", "music-transformer-classical", "--prompt", "x.mid", "--length", "32", "-o", "y.mid",
                   "--seed", "0", "--device", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert (work / "y.mid").stat().st_size > 0
    done = zoo_cmd("generate", "coconet-bach", "--length", "2", "--gibbs-steps", "2", "-o", "z.mid", "--seed", "0",
                   "--device", "cpu", "--threads", "1")
    assert done.returncode == 0, done.stderr
    assert len(pretty_midi.PrettyMIDI(str(work / "z.mid")).instruments) == 4


def test_a_third_party_wheel_brings_its_own_weights(user):
    import pretty_midi

    venv, work, zoo_cmd = user
    done = zoo_cmd("generate", "tiny-scales", "-o", "t.mid", "--seed", "1", "--length", "16", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert pretty_midi.PrettyMIDI(str(work / "t.mid")).instruments[0].notes


def test_zoo_pull_names_the_packaged_folders(user):
    """`zoo pull NAME` says where a pretrained name's files are: inside its installed package."""
    venv, _, zoo_cmd = user
    for name, package in [("tiny-scales", "zoo_tiny"), *((n, pkg) for n, (_, pkg) in SHIPPED.items())]:
        done = zoo_cmd("pull", name)
        assert done.returncode == 0, done.stderr
        folder = Path(done.stdout.strip())
        assert folder.is_relative_to(venv.root) and folder.parts[-3:] == (package, "weights", name), folder
