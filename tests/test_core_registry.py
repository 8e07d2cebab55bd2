"""Registry, plugin discovery and its failure cases, and the light `import zoo`."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

import zoo
from tests.fake_plugins import install_fake
from zoo import loader, registry
from zoo.errors import CheckpointError, ConfigError, PluginError, UnknownNameError


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch, tiny_path):
    """Install fake plugin distributions into tmp_path (on sys.path), next to zoo-tiny."""
    monkeypatch.syspath_prepend(str(tiny_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("ZOO_PLUGINS", raising=False)
    registry.reset()
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:  # other tests may reuse a module name for another fake plugin
        del sys.modules[name]
    registry.reset()


def _only(monkeypatch, *dists):
    monkeypatch.setenv("ZOO_PLUGINS", ",".join(dists))
    registry.reset()


def test_list_models_sorted_with_wildcards(tiny):
    assert zoo.list_models() == ["tiny-scales"]
    assert zoo.list_models("tiny-*") == ["tiny-scales"]
    assert zoo.list_models("musegan*") == []


def test_api_arguments_of_the_wrong_type_are_a_config_error(tiny):
    """zoo.create(None) and list_models(None) raised TypeError tracebacks (issue 26)."""
    from zoo.errors import ConfigError

    for bad in (None, 5, ""):
        with pytest.raises(ConfigError, match="arch must be an architecture name"):
            zoo.create(bad)
    for bad in (None, 5, ["*"]):
        with pytest.raises(ConfigError, match="pattern must be a string"):
            zoo.list_models(bad)


def test_info_for_pretrained_and_architecture(tiny):
    assert zoo.info("tiny-scales")["arch"] == "tiny-lm"
    assert zoo.info("tiny-lm")["kind"] == "architecture"
    with pytest.raises(UnknownNameError, match="did you mean tiny-lm"):
        zoo.info("tiny-lmm")


def test_create_gives_fresh_model_with_overrides(tiny):
    model = zoo.create("tiny-lm", n_embd=8)
    assert model.config.n_embd == 8 and model.embed.weight.shape == (129, 8)
    with pytest.raises(zoo.ZooError, match="valid keys: n_embd, context"):
        zoo.create("tiny-lm", width=3)
    with pytest.raises(zoo.ZooError, match="'n_embd' must be an integer"):
        zoo.create("tiny-lm", n_embd="wide")


def test_a_model_is_handed_its_tokenizer_and_never_looks_it_up(tiny, tmp_path, monkeypatch):
    """zoo.create builds the registered tokenizer and passes it in, zoo.load passes the folder's own (with its
    saved parameters): the Model itself consults no registry, so any tokenizer can be given to it."""
    created = zoo.create("tiny-lm")
    tok_cls, model_cls = type(created.tokenizer), type(created)
    assert tok_cls.name == "tiny-melody" and created.tokenizer.step_seconds == 0.25
    slow = tok_cls(step_seconds=0.5)
    folder = model_cls(created.config, slow).save_pretrained(tmp_path / "slow")
    assert zoo.load(str(folder), device="cpu").tokenizer.step_seconds == 0.5   # from tokenizer.json

    def no_registry():
        raise AssertionError("the Model looked up the registry")

    monkeypatch.setattr(registry, "get_registry", no_registry)
    assert model_cls(created.config, slow).tokenizer is slow
    assert model_cls(created.config).tokenizer is None   # none given: none made up from a global table


def test_plugin_that_fails_to_import_is_skipped(plugin_dir, monkeypatch):
    install_fake(plugin_dir, "zoo-importfail")
    _only(monkeypatch, "zoo-importfail", "zoo-tiny")
    with pytest.warns(RuntimeWarning, match="zoo-importfail"):
        reg = registry.get_registry()
    broken = next(p for p in reg.plugins if p.distribution == "zoo-importfail")
    assert "banana" in broken.error
    assert zoo.list_models() == ["tiny-scales"]  # the other plugin keeps working


def test_plugin_whose_hook_raises_is_skipped_whole(plugin_dir, monkeypatch):
    install_fake(plugin_dir, "zoo-hookfail")
    _only(monkeypatch, "zoo-hookfail", "zoo-tiny")
    with pytest.warns(RuntimeWarning, match="hook exploded"):
        reg = registry.get_registry()
    assert "half-registered" not in reg.entries["architectures"]  # nothing half-registered
    assert zoo.list_models() == ["tiny-scales"]


def test_same_name_from_two_plugins_names_both(plugin_dir, monkeypatch):
    install_fake(plugin_dir, "zoo-copycat")
    _only(monkeypatch, "zoo-copycat", "zoo-tiny")
    with pytest.warns(RuntimeWarning):
        reg = registry.get_registry()
    with pytest.raises(PluginError, match="zoo-copycat.*zoo-tiny|zoo-tiny.*zoo-copycat"):
        reg.architecture("tiny-lm")
    assert zoo.list_models() == ["tiny-scales"]


def test_architecture_without_tokenizer_is_a_clear_error(plugin_dir, monkeypatch):
    install_fake(plugin_dir, "zoo-notok")
    _only(monkeypatch, "zoo-notok")
    with pytest.raises(PluginError, match="needs tokenizer 'missing-tokenizer'"):
        registry.get_registry().architecture("notok")


def test_zoo_plugins_env_selects_and_empty_loads_none(plugin_dir, monkeypatch):
    _only(monkeypatch, "")
    assert registry.get_registry().plugins == [] and zoo.list_models() == []
    _only(monkeypatch, "zoo-tiny")
    assert [p.distribution for p in registry.get_registry().plugins] == ["zoo-tiny"]


def test_name_resolution_order(tiny, tmp_path, tiny_model):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    assert loader.resolve(str(folder)) == folder
    with pytest.raises(CheckpointError, match="weights of 'tiny-scales' are not in"):
        loader.resolve("tiny-scales")  # registered, but the fixture ships no weights and no Hub repo
    with pytest.raises(UnknownNameError, match="unknown model 'nope'"):
        loader.resolve("nope")


def test_import_zoo_and_cli_list_do_not_import_torch(tiny):
    code = ("import sys, zoo, zoo.cli; zoo.cli.main(['list']); zoo.cli.build_parser();"
            "assert 'torch' not in sys.modules, 'torch imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "tiny-scales" in done.stdout


def test_a_pretrained_spec_without_a_description_is_warned_about_once_at_registration(plugin_dir, tiny_path,
                                                                                     monkeypatch, zoo_cli):
    """(zoo list showed an empty column and nothing said why.) Python callers get a UserWarning; `zoo list` and
    `zoo plugins` say it in one line; the model is still registered."""
    install_fake(plugin_dir, "zoo-nodescription")
    _only(monkeypatch, "zoo-tiny", "zoo-nodescription")
    with pytest.warns(UserWarning, match="pretrained model 'tiny-mute' has no description"):
        assert "tiny-mute" in zoo.list_models()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(plugin_dir), str(tiny_path)]))   # for the zoo subprocesses
    done = zoo_cli("list")
    assert done.returncode == 0 and "tiny-mute" in done.stdout
    assert done.stderr.splitlines() == ["zoo: warning: plugin 'zoo-nodescription': pretrained model 'tiny-mute' has "
                                        "no description; give its PretrainedSpec a description= (zoo list shows it)"]
    assert "  warning: pretrained model 'tiny-mute' has no description" in zoo_cli("plugins").stdout


def test_an_org_repo_name_that_is_no_folder_suggests_hf(tiny, tmp_path, monkeypatch):
    """(Hugging Face users write zoo.load("org/repo").) Without such a folder: one clear error that suggests
    hf://org/repo, and nothing is downloaded (the Hub is never asked: HF_HUB_OFFLINE would make it fail anyway)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match=r"no such folder: 'org/repo'.*hf://org/repo for a Hugging Face Hub repo"):
        zoo.load("org/repo")
    assert list(tmp_path.iterdir()) == []



def test_api_names_are_checked(tiny):
    for bad in ("", None, 5):
        with pytest.raises(ConfigError, match="must be a pretrained name"):
            zoo.load(bad)
    with pytest.raises(ConfigError):
        zoo.info(None)
