"""MuseGAN's registered dataset builder: the test windows `zoo eval` reads without a Trainer."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("zoo_musegan")

import zoo_musegan.data  # noqa: E402
from zoo.errors import DataError  # noqa: E402
from zoo.registry import get_registry  # noqa: E402
from zoo_chorales import data as mdata  # noqa: E402
from zoo_musegan.model import MuseGAN, MuseGANConfig  # noqa: E402

from musegan_tiny import TINY  # noqa: E402


def test_the_registered_builder_serves_each_split_as_rolls_untransposed(monkeypatch):
    model = MuseGAN(MuseGANConfig(**TINY))
    train, test = np.full((3, 4, 32), 60, dtype=np.int16), np.full((2, 4, 32), 62, dtype=np.int16)
    fake = mdata.WindowData({"train": train, "valid": train[:0], "test": test}, stats={"source": "fake"})
    monkeypatch.setattr(zoo_musegan.data, "load_data", lambda source, **grid: fake)
    build = get_registry().dataset_builder("musegan")
    assert build is zoo_musegan.data.build_dataset
    split = build(None, "test", model)
    assert len(split) == 2 and np.array_equal(split.grids, test) and split.transpose == 0
    assert tuple(split[0].shape) == (4, model.config.n_bars, model.config.steps_per_bar, model.config.n_pitches)
    with pytest.raises(DataError, match="no valid windows"):
        build(None, "valid", model)


def test_the_trainer_builds_through_the_registered_builder_and_transposes_only_training(monkeypatch):
    from zoo_musegan.train import MuseGANTrainConfig, MuseGANTrainer

    trainer = MuseGANTrainer(MuseGAN(MuseGANConfig(**TINY)), MuseGANTrainConfig(transpose=3, seed=5))
    train, test = np.full((3, 4, 32), 60, dtype=np.int16), np.full((2, 4, 32), 62, dtype=np.int16)
    fake = mdata.WindowData({"train": train, "valid": train[:0], "test": test}, stats={"source": "fake"})
    loads = []
    monkeypatch.setattr(zoo_musegan.data, "load_data", lambda source, **grid: loads.append(source) or fake)
    windows = trainer.build_dataset(None, "train")
    assert (windows.transpose, windows.seed, len(windows)) == (3, 5, 3)
    held_out = trainer.build_dataset(None, "test")
    assert held_out.transpose == 0 and np.array_equal(held_out.grids, test)
    with pytest.raises(DataError, match="no valid windows"):   # the registered builder's checks, not a copy
        trainer.build_dataset(None, "valid")
    assert loads == [None]   # the source is read once for all its splits
