"""Where a pretrained name's files come from, `zoo pull NAME`, `zoo plugins --check` and `make demo`.

The search order for a registered name is: $ZOO_WEIGHTS_DIR/<name>, then the folder its spec's
`files` names inside the plugin's own package (importlib.resources), then its spec's `hub_repo`
at `revision` (the Hugging Face cache, then the Hub, here the loopback olah of tests/hubserver). tests/integration/test_distribution.py proves the same from wheels.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

import zoo
from zoo import loader, registry
from zoo.errors import CheckpointError

try:
    from tests.test_hub import hub_env, olah  # noqa: F401  (fixtures: one loopback Hub for this module)
except ImportError:  # tests/ imported as top-level modules
    from test_hub import hub_env, olah  # noqa: F401

ROOT = Path(__file__).parents[2]


@pytest.fixture
def extra_plugin():
    """Register in-process plugin objects for one test (as if installed), and forget them after."""
    added = []

    def add(obj, name):
        registry.register_plugin(obj, name)
        added.append((name, obj))

    yield add
    for item in added:
        registry._EXTRA.remove(item)
    registry.reset()


def _package_with_model(root: Path, package: str, name: str, model) -> Path:
    """A package on sys.path that ships a model folder at <package>/weights/<name>/, as a wheel installs it."""
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    return model.save_pretrained(root / package / "weights" / name)


def _weights(folder) -> bytes:
    return (Path(folder) / "model.safetensors").read_bytes()


def test_search_order_override_then_package_then_cache_then_hub(tiny_model, hub_env, olah, extra_plugin,
                                                                tmp_path, monkeypatch, capsys):
    import torch

    # three different copies of the model, so that each answer says where it came from
    packaged = _package_with_model(tmp_path / "site", "zoo_packed_order", "tiny-packed", tiny_model)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    torch.manual_seed(1)
    on_hub = zoo.create("tiny-lm").save_pretrained(tmp_path / "hub-copy")
    repo = "zoo-tests/tiny-packed"
    commit = olah.publish_folder(repo, on_hub)
    olah.publish_folder(repo, packaged, message="main moves on")  # the pinned commit must still win
    override = shutil.copytree(on_hub, tmp_path / "override" / "tiny-packed")

    class Packed:
        @zoo.hookimpl
        def register_pretrained(register):
            register(zoo.PretrainedSpec(name="tiny-packed", arch="tiny-lm", files="zoo_packed_order:weights/tiny-packed",
                                        hub_repo=repo, revision=commit))

    extra_plugin(Packed, "packed-plugin")

    # 1. $ZOO_WEIGHTS_DIR overrides everything
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "override"))
    assert loader.resolve("tiny-packed") == override
    monkeypatch.delenv("ZOO_WEIGHTS_DIR")
    # 2. the plugin's own package, found through importlib.resources: no Hub needed
    assert loader.resolve("tiny-packed") == packaged
    assert zoo.info("tiny-packed")["local_path"] == str(packaged)
    assert not list(hub_env.glob("models--*"))
    # 3. without a packaged copy: the spec's Hub repo at its pinned commit, into the Hugging Face cache
    shutil.rmtree(packaged)
    assert zoo.info("tiny-packed")["local_path"] is None
    from zoo.cli import main

    assert main(["pull", "tiny-packed"]) == 0  # `zoo pull NAME` fetches it
    pulled = Path(capsys.readouterr().out.strip())
    assert pulled == hub_env / "models--zoo-tests--tiny-packed" / "snapshots" / commit
    assert _weights(pulled) == _weights(on_hub)
    # 4. ... and, once cached, offline too
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert loader.resolve("tiny-packed") == pulled
    model = zoo.load("tiny-packed", device="cpu")
    assert torch.equal(model.head.weight, zoo.load(str(on_hub), device="cpu").head.weight)


def test_no_weights_anywhere_says_where_it_looked(tiny, monkeypatch):
    monkeypatch.delenv("ZOO_WEIGHTS_DIR", raising=False)
    with pytest.raises(CheckpointError) as err:
        loader.resolve("tiny-scales")  # the fixture's spec names files that its package does not hold
    message = str(err.value)
    assert "weights of 'tiny-scales' are not in" in message and "zoo_tiny:weights/tiny-scales" in message
    assert "$ZOO_WEIGHTS_DIR" in message and "no Hub repo" in message and "\n" not in message


def test_the_shipped_models_live_in_their_plugins_packages(monkeypatch):
    """Editable installs and wheels alike find a shipped model inside its plugin's package; the core knows no checkout."""
    monkeypatch.delenv("ZOO_WEIGHTS_DIR", raising=False)
    assert not hasattr(registry, "CHECKOUT_WEIGHTS") and not (ROOT / "weights").exists()
    for name, plugin in (("musegan-bach", "musegan"), ("music-transformer-classical", "music_transformer"),
                         ("coconet-bach", "coconet")):
        spec = registry.get_registry().pretrained(name)
        assert spec.files == f"zoo_{plugin}:weights/{name}"
        folder = ROOT / "plugins" / plugin / f"zoo_{plugin}" / "weights" / name
        assert registry.local_folder(spec) == registry.packaged_folder(spec) == folder


# -- zoo plugins --check ------------------------------------------------------------------------------

class ReadmeAsItWas:
    """The README's old 20-line example: it registers classes from modules that do not exist."""

    @zoo.hookimpl
    def register_architectures(register):
        register("my-arch", "zoo_mymodel_absent.model:MyModel")

    @zoo.hookimpl
    def register_trainers(register):
        register("my-arch", "zoo_mymodel_absent.train:MyTrainer")

    @zoo.hookimpl
    def register_tokenizers(register):
        register("my-tokens", "pathlib:Path")  # importable, but not a zoo.Tokenizer

    @zoo.hookimpl
    def register_pretrained(register):
        register(zoo.PretrainedSpec(name="nowhere-bach", arch="nowhere"))


def test_plugins_check_reports_missing_classes_one_line_per_plugin(tiny, extra_plugin, capsys):
    from zoo.cli import main

    extra_plugin(ReadmeAsItWas, "readme-plugin")
    assert main(["plugins"]) == 0  # without --check nothing is imported: it looks fine
    assert [line for line in capsys.readouterr().out.splitlines() if line.startswith("readme-plugin")][0].endswith(" ok")

    assert main(["plugins", "--check"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert "zoo-tiny 0.1.0  (zoo_tiny.plugin)  ok" in lines  # the other plugin is unaffected
    bad = [line for line in lines if line.startswith("readme-plugin")]
    assert len(bad) == 1 and "ERROR:" in bad[0], lines
    for part in ("architecture 'my-arch': cannot import zoo_mymodel_absent.model:MyModel",
                 "No module named 'zoo_mymodel_absent'", "trainer 'my-arch'",
                 "tokenizer 'my-tokens': pathlib:Path is not a zoo.tokenizer.Tokenizer subclass",
                 "pretrained model 'nowhere-bach'", "'nowhere'"):
        assert part in bad[0], bad[0]


# -- make demo ------------------------------------------------------------------------------------------

def _demo():
    spec = importlib.util.spec_from_file_location("zoo_demo", ROOT / "tools" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_covers_the_shipped_models_and_skips_a_third_party_one(tiny, monkeypatch, tmp_path, capsys):
    import pretty_midi

    monkeypatch.setenv("ZOO_PLUGINS", "zoo-tiny,musezoo-musegan,musezoo-music-transformer")
    registry.reset()
    demo = _demo()
    assert demo.plan() == (["musegan-bach", "music-transformer-classical"], ["tiny-scales"])

    loaded = []

    class Fake:  # the real models are exercised by their own tests; here only the demo's choices matter
        def generate(self, num, seed):
            return [pretty_midi.PrettyMIDI()]

    monkeypatch.setattr(demo.zoo, "load", lambda name: loaded.append(name) or Fake())
    monkeypatch.setattr(demo, "README_IMAGES", ())
    monkeypatch.chdir(tmp_path)
    assert demo.main() == 0  # tiny-scales has no weights here: skipped, never a failure
    assert loaded == ["musegan-bach", "music-transformer-classical"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("demo: skipping tiny-scales"), err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["musegan-bach.mid", "music-transformer-classical.mid"]
