"""The pluggy hooks a plugin implements: each calls its ``register`` argument once per thing it provides
(simonw/llm's pattern). Classes are registered as ``"module:attr"`` strings, so listing never imports torch."""

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def register_architectures(register):
    """register(name, "module:ModelClass") for each model architecture."""


@hookspec
def register_tokenizers(register):
    """register(name, "module:TokenizerClass") for each tokenizer."""


@hookspec
def register_trainers(register):
    """register(arch_name, "module:TrainerClass"): the training step for an architecture."""


@hookspec
def register_datasets(register):
    """register(arch_name, "module:build_dataset"): build_dataset(source, split, model) -> a map-style Dataset."""


@hookspec
def register_pretrained(register):
    """register(PretrainedSpec(...)) for each pretrained model."""
