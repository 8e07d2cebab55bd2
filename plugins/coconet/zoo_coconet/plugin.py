"""Hook implementations: register Coconet with musezoo (no torch import here)."""

from zoo import PretrainedSpec, hookimpl


@hookimpl
def register_architectures(register):
    register("coconet", "zoo_coconet.model:Coconet")


@hookimpl
def register_tokenizers(register):
    register("satb-grid", "zoo_coconet.tokenizer:SATBGridTokenizer")


@hookimpl
def register_trainers(register):
    register("coconet", "zoo_coconet.train:CoconetTrainer")
