"""Hook implementations: register MuseGAN with musezoo (no torch import here)."""

from zoo import PretrainedSpec, hookimpl


@hookimpl
def register_architectures(register):
    register("musegan", "zoo_musegan.model:MuseGAN")


@hookimpl
def register_tokenizers(register):
    register("pianoroll", "zoo_musegan.tokenizer:PianoRollTokenizer")


@hookimpl
def register_trainers(register):
    register("musegan", "zoo_musegan.train:MuseGANTrainer")


@hookimpl
def register_datasets(register):
    register("musegan", "zoo_musegan.data:build_dataset")


@hookimpl
def register_pretrained(register):
    register(PretrainedSpec(
        name="musegan-bach",
        arch="musegan",
        description="MuseGAN (WGAN-GP) trained on the music21 Bach chorales: 2-bar, 4-voice (SATB) piano rolls",
        license="mit",
        data="music21 corpus Bach chorales (Riemenschneider set, 4/4 chorales, train split by BWV)",
        # The model folder is part of the package (zoo_musegan/weights/musegan-bach/), which its wheel carries,
        # so `pip install` alone is enough to generate offline. Publishing it to the Hub as well
        # (docs/hub.md) means setting hub_repo and pinning revision to the commit id `zoo push` prints.
        files="zoo_musegan:weights/musegan-bach",
        hub_repo=None,
        revision=None,
    ))
