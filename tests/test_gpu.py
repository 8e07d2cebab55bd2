"""GPU paths. Skipped where CUDA is absent (CI and the dev machines have no GPU)."""

from __future__ import annotations

import pytest
import torch

import zoo

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_load_puts_tensors_straight_on_the_gpu(tiny_model, tmp_path):
    folder = tiny_model.save_pretrained(tmp_path / "m")
    model = zoo.load(str(folder), device="auto")
    assert all(p.device.type == "cuda" for p in model.parameters())
    (a,), (b,) = model.generate(seed=3), model.generate(seed=3)
    assert [n.pitch for n in a.instruments[0].notes] == [n.pitch for n in b.instruments[0].notes]


@cuda
def test_training_with_bf16_autocast_on_cuda(tiny, tmp_path):
    from zoo.train import train

    final = train("tiny-lm", tmp_path / "run", values={"steps": 20, "amp": True}, device="cuda")
    assert zoo.load(str(final), device="cuda").device.type == "cuda"
