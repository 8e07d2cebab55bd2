"""The plugin contract: declared on the base classes, counted honestly in docs/plugins.md, checked by
`zoo plugins --check` (zoo.contract)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import zoo
from zoo import contract, registry
from zoo.errors import ConfigError
from zoo.model import Model
from zoo.tokenizer import Tokenizer
from zoo.train import Trainer

DOC = Path(__file__).resolve().parent.parent / "docs" / "plugins.md"


def test_every_member_of_the_contract_is_declared_on_its_base_with_a_default():
    for base in (Model, Tokenizer, Trainer):
        for name in (*base.REQUIRED, *base.OPTIONAL):
            assert hasattr(base, name), f"{base.__name__}.{name} is counted but not declared"


def test_docs_count_what_the_base_classes_declare():
    text = DOC.read_text()
    weights = re.search(r"ships weights to generate from implements \*\*(\d+) things\*\*", text)
    trainable = re.search(r"A plugin that also trains implements \*\*(\d+)\*\*", text)
    optional = re.search(r"\*\*(\d+) optional members\*\*", text)
    tokenizer = re.search(r"A model that reads or writes tokens adds \*\*(\d+)\*\*", text)
    assert weights and trainable and optional and tokenizer, "docs/plugins.md lost its counted contract"
    assert int(tokenizer.group(1)) == len(contract.tokenizer())
    assert int(weights.group(1)) == len(contract.required(trainable=False))
    assert int(trainable.group(1)) == len(contract.required(trainable=True))
    assert int(optional.group(1)) == len(contract.optional())
    section = text[text.index("### What you implement, counted"):]
    for thing in (*contract.required(True), *contract.optional()):
        name = thing.split(".")[-1]
        assert name in section, f"docs/plugins.md's count does not name {thing}"


def test_the_installed_plugins_keep_the_contract():
    assert contract.check(registry.get_registry()) == {}


def test_plugins_check_names_each_broken_member(tiny):
    @dataclass(frozen=True)
    class Config:
        size: int = 1

    class NoGenerate(Model):
        arch, config_class, tokenizer_name, prompt_role = "broken", Config, "tiny-melody", "shaded"
        score_layouts = {"4": ("Soprano", "treble", (0,))}   # staves must be a tuple of tuples

    class Nameless(Tokenizer):
        pass

    class BadSelect(Trainer):
        select_by = ("valid_loss", "lowest")

    class Plugin:
        @zoo.hookimpl
        def register_architectures(register):
            register("broken", NoGenerate)

        @zoo.hookimpl
        def register_tokenizers(register):
            register("broken-tok", Nameless)

        @zoo.hookimpl
        def register_trainers(register):
            register("broken", BadSelect)

        @zoo.hookimpl
        def register_datasets(register):
            register("nowhere", 42)

    registry.register_plugin(Plugin, "broken-plugin")
    try:
        found = "\n".join(contract.check(registry.get_registry())["broken-plugin"])
    finally:
        registry._EXTRA.remove(("broken-plugin", Plugin))
        registry.reset()
    for says in ("architecture 'broken': does not implement generate()", "prompt_role must be one of",
                 "score_layouts must map", "tokenizer 'broken-tok': does not implement encode()", "sets no name",
                 "trainer 'broken': has no data: register a build_dataset", "select_by must be",
                 "dataset builder 'nowhere': 42 is not a function build_dataset(source, split, model)",
                 "dataset builder 'nowhere': no installed plugin registers its architecture 'nowhere'"):
        assert says in found, found



# ---- item 19: the Python API -----------------------------------------------------------------------

@pytest.mark.parametrize("num", [0, -1, 2.5, True, 10 ** 6])
def test_generate_num_is_checked_for_every_plugin(tiny_model, num):
    with pytest.raises(ConfigError, match="num must be a whole number"):
        tiny_model.generate(num=num)
