"""Hook implementations: register the Music Transformer with musezoo (no torch import here)."""

from zoo import PretrainedSpec, hookimpl


@hookimpl
def register_architectures(register):
    register("music-transformer", "zoo_music_transformer.model:MusicTransformer")


@hookimpl
def register_tokenizers(register):
    register("performance", "zoo_music_transformer.tokenizer:PerformanceTokenizer")


@hookimpl
def register_trainers(register):
    register("music-transformer", "zoo_music_transformer.train:MusicTransformerTrainer")


@hookimpl
def register_datasets(register):
    register("music-transformer", "zoo_music_transformer.data:build_dataset")


@hookimpl
def register_pretrained(register):
    register(PretrainedSpec(
        name="music-transformer-classical",
        arch="music-transformer",
        description="Music Transformer (performance events) trained on the music21 classical corpus; "
                    "continues a MIDI prompt",
        license="mit",
        data="music21 corpus: Bach, Palestrina, Monteverdi, Beethoven, Mozart, Haydn and others (BSD/public domain)",
        # The model folder is part of the package (zoo_music_transformer/weights/...), which its wheel carries,
        # so `pip install` alone is enough to generate offline. Publishing it to the Hub as well
        # (docs/hub.md) means setting hub_repo and pinning revision to the commit id `zoo push` prints.
        files="zoo_music_transformer:weights/music-transformer-classical",
        hub_repo=None,
        revision=None,
    ))
