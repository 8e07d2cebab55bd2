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

TINY = dict(z_dim=8, temporal_hidden=16, bar_hidden_features=32, bar_hidden_channels=16, critic_hidden=8,
            critic_hidden_features=16)


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
