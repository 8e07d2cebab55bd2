"""The pluggy hook specifications a plugin implements.

Each hook receives a ``register`` callable and calls it once per thing it
provides (the pattern of simonw/llm). Return values are ignored. Classes are
registered as ``"module:attr"`` strings so that listing never imports torch.
"""

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
    """register(arch_name, "module:function"): build_dataset(source, split, model) -> a map-style Dataset of
    split 'train', 'valid' or 'test' of --data source (None: the plugin's embedded data), for training,
    `zoo eval` and `zoo release`."""


@hookspec
def register_pretrained(register):
    """register(PretrainedSpec(...)) for each pretrained model."""
