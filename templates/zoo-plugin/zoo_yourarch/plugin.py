"""Hook implementations: everything musezoo learns about this plugin.

This module imports no torch, because `zoo list` imports it for every installed
plugin. Classes are registered as "module:Class" strings and imported on first use.
"""

from zoo import PretrainedSpec, hookimpl

# Pretrained models, declared like timm's default_cfgs. Names are "<arch>-<data>".
# Add one after you publish weights with `zoo push` (docs/plugins.md, step 7).
PRETRAINED: list[PretrainedSpec] = []


@hookimpl
def register_architectures(register):
    register("yourarch", "zoo_yourarch.model:MelodyModel")


@hookimpl
def register_tokenizers(register):
    register("yourarch-melody", "zoo_yourarch.tokenizer:MelodyTokenizer")


@hookimpl
def register_trainers(register):
    register("yourarch", "zoo_yourarch.train:MelodyTrainer")  # keyed by the architecture name


@hookimpl
def register_datasets(register):
    register("yourarch", "zoo_yourarch.data:build_dataset")  # training, zoo eval and zoo release read it


@hookimpl
def register_pretrained(register):
    for spec in PRETRAINED:
        register(spec)
