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


@hookimpl
def register_datasets(register):
    register("coconet", "zoo_coconet.data:build_dataset")


@hookimpl
def register_pretrained(register):
    register(PretrainedSpec(
        name="coconet-bach",
        arch="coconet",
        description="Coconet trained on the music21 Bach chorales: harmonizes a melody in four voices, or writes a "
                    "chorale from scratch",
        license="mit",
        data="music21 corpus Bach chorales (4/4 windows of 4 bars, the musegan-bach split by BWV number)",
        files="zoo_coconet:weights/coconet-bach",   # inside the package, so the wheel carries it
        hub_repo=None,
        revision=None,
    ))
