"""Music Transformer through the core: `zoo train`, save/load, generate, evaluate, the book preset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pretty_midi
import pytest
import torch

import zoo
from zoo.config import config_from_dict
from zoo.train import read_config_file, split_overrides, train
from zoo_music_transformer.model import MusicTransformer
from zoo_music_transformer.train import MusicTransformerTrainer

MUSIC21 = Path(__import__("music21").__file__).parent
ROOT = Path(__file__).resolve().parents[3]   # the checkout: plugins/music_transformer/tests/


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mt-midi")
    sources = sorted((MUSIC21 / "midi" / "testPrimitive").glob("*.mid")) + [MUSIC21 / "omr" / "k525short.mid"]
    for src in sources:
        (folder / src.name).write_bytes(src.read_bytes())
    return folder


@pytest.fixture(scope="module")
def trained(midi_folder, tmp_path_factory):
    import os

    cache = tmp_path_factory.mktemp("mt-cache")
    old = os.environ.get("ZOO_CACHE_DIR")
    os.environ["ZOO_CACHE_DIR"] = str(cache)
    try:
        out = tmp_path_factory.mktemp("mt-run") / "run"
        values = dict(block_size=64, n_layer=2, n_head=2, n_embd=32, dropout=0.0, steps=40, batch_size=4, lr=3e-3,
                      warmup_steps=5, eval_every=20, seed=0)
        final = train("music-transformer", out, data=str(midi_folder), values=values, device="cpu")
        yield out, final
    finally:
        if old is None:
            os.environ.pop("ZOO_CACHE_DIR", None)
        else:
            os.environ["ZOO_CACHE_DIR"] = old


def test_zoo_train_end_to_end_learns_and_saves_a_loadable_model(trained):
    out, final = trained
    lines = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [l["loss"] for l in lines if "loss" in l]
    assert losses[-1] < losses[0] - 0.3  # clearly down from ~ln(390) = 5.97
    assert any("valid_nll" in l for l in lines)
    summary = json.loads((out / "summary.json").read_text())
    test = summary["test_metrics"]
    assert test["ppl"] == pytest.approx(math.exp(test["nll"]), rel=1e-6) and test["tokens"] > 0
    card = (final / "README.md").read_text()
    assert "Test NLL per token" in card

    model = zoo.load(str(final), device="cpu")
    assert isinstance(model, MusicTransformer) and model.config.block_size == 64
    (midi,) = model.generate(seed=0, length=80, prompt=str(MUSIC21 / "omr" / "k525short.mid"), top_k=20)
    assert isinstance(midi, pretty_midi.PrettyMIDI) and midi.instruments[0].notes


def test_cli_generate_with_prompt_and_eval(trained, midi_folder, zoo_cli, tmp_path):
    _, final = trained
    target = tmp_path / "cont.mid"
    env = {"env": {"OMP_NUM_THREADS": "1"}}
    r = zoo_cli("generate", final, "-o", target, "--prompt", MUSIC21 / "omr" / "k525short.mid", "--length", "64",
                "--temperature", "0.9", "--top-p", "0.95", "--seed", "1", "--device", "cpu", **env)
    assert r.returncode == 0, r.stderr
    assert pretty_midi.PrettyMIDI(str(target)).instruments[0].notes
    only = tmp_path / "only.mid"
    r = zoo_cli("generate", final, "-o", only, "--prompt", MUSIC21 / "omr" / "k525short.mid", "--length", "64",
                "--temperature", "0.9", "--top-p", "0.95", "--seed", "1", "--device", "cpu", "--continuation-only", **env)
    assert r.returncode == 0, r.stderr
    prompt_end = pretty_midi.PrettyMIDI(str(MUSIC21 / "omr" / "k525short.mid")).get_end_time()
    whole, new = pretty_midi.PrettyMIDI(str(target)), pretty_midi.PrettyMIDI(str(only))
    assert whole.get_end_time() > prompt_end > new.get_end_time()      # the prompt is left out
    assert len(new.instruments[0].notes) < len(whole.instruments[0].notes)
    r = zoo_cli("eval", final, "--data", midi_folder, "--device", "cpu", "--num", "4", "--length", "32",
                "--json", tmp_path / "eval.json", **env)
    assert r.returncode == 0, r.stderr
    results = json.loads((tmp_path / "eval.json").read_text())
    assert {"nll", "ppl", "tokens", "samples", "gen_in_scale", "test_in_scale"} <= set(results)
    assert 0 < results["nll"] < math.log(390) + 1 and results["samples"] == 4
    # without --data, a run's final/ is evaluated on the data the run was trained on, and says so
    r = zoo_cli("eval", final, "--device", "cpu", "--num", "2", "--length", "16", **env)
    assert r.returncode == 0, r.stderr
    assert f"--data {midi_folder} (the data this run was trained on)" in r.stderr


def preset(name: str):
    """A configs/ preset as `zoo train --config` reads it: (model config, training config)."""
    values = read_config_file(ROOT / "configs" / name)
    model_values, train_values = split_overrides(values, MusicTransformer, MusicTransformerTrainer)
    model_cfg = config_from_dict(MusicTransformer.config_class, model_values)
    train_cfg = config_from_dict(MusicTransformerTrainer.config_class, {**MusicTransformerTrainer.defaults,
                                                                       **train_values})
    return model_cfg, train_cfg


def test_book_preset_is_a_valid_config():
    model_cfg, train_cfg = preset("music_transformer_book.json")
    assert model_cfg == MusicTransformer.config_class()  # the book's model is the default
    assert (train_cfg.optimizer, train_cfg.lr, train_cfg.batch_size, train_cfg.schedule) == ("adam", 1e-4, 2, "constant")
    trainer = MusicTransformerTrainer(MusicTransformer(model_cfg), train_cfg)
    opt = trainer.configure_optimizers()["main"]
    assert type(opt) is torch.optim.Adam


def test_cpu_preset_is_a_small_valid_config():
    model_cfg, train_cfg = preset("music_transformer_cpu.json")
    params = MusicTransformer(model_cfg).num_params()
    tokens = train_cfg.steps * train_cfg.batch_size * model_cfg.block_size
    assert params < 2_000_000 and tokens < 1_000_000      # minutes on one CPU core, not hours
    assert model_cfg.attention == "relative"


SHIPPED = ROOT / "plugins" / "music_transformer" / "zoo_music_transformer" / "weights" / "music-transformer-classical"


def test_shipped_weights_load_by_name_and_continue_their_prompt():
    model = zoo.load("music-transformer-classical", device="cpu")
    assert isinstance(model, MusicTransformer)
    (midi,) = model.generate(prompt=str(SHIPPED / "prompt.mid"), length=48, seed=0, top_p=0.95)
    prompt_notes = pretty_midi.PrettyMIDI(str(SHIPPED / "prompt.mid")).instruments[0].notes
    notes = midi.instruments[0].notes
    assert len(notes) > len(prompt_notes)  # prompt kept, continuation added
    assert max(n.end for n in notes) > max(n.end for n in prompt_notes)
    card = (SHIPPED / "README.md").read_text()
    for needle in ("Steps:", "Hardware:", "NLL", "test", "Differences from the book", "sample.mid"):
        assert needle in card


def test_torchrun_two_processes_match_one_process(midi_folder, tmp_path):
    """2 gloo processes train the Music Transformer to the weights of 1 process with the same global batch.

    Both runs compute each step's gradient as the mean of the same 8 per-sequence gradients, summed in a
    different order (4 + 4 across the processes, DDP's bucketed all-reduce), so they differ by fp32
    rounding: ~1e-7 of a gradient's largest terms (amp off: bf16 would round at 2**-8). The optimizer
    is the book's Adam, whose first steps move a weight by about lr * g / (|g| + eps) = lr * sign(g):
    a gradient within rounding noise of zero can flip its sign and move that weight by up to
    2 * lr * steps, whatever the engine. So: every weight within 2 * lr * steps (Adam's bound), and all
    but 0.1 % of them within 1e-5 (the rounding, with 10x room as in the core's tests/test_trainer.py).
    block_size 32 puts PAD into the training crops (checked below: a step scores fewer tokens than positions). The step
    returns a loss sum and a token count, and the core divides by the count of both processes, so padding
    weighs the same as in one process. (With a mean per process, which DDP then averaged, 45 % of the weights
    differed by more than 1e-5 here.)
    """
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    ZOO = str(Path(sys.executable).with_name("zoo"))   # this interpreter's console script

    steps, lr = 3, 1e-3
    common = ["train", "music-transformer", "--data", str(midi_folder), "--steps", str(steps), "--seed", "0",
              "--batch-size", "8", "--lr", str(lr)]
    for k, v in dict(block_size=32, metrics_every=1, n_layer=1, n_head=2, n_embd=16, dropout=0.0, optimizer="adam", amp="false",
                     schedule="constant", warmup_steps=0, grad_clip=0.0, num_workers=0).items():
        common += ["--set", f"{k}={v}"]
    env = {**os.environ, "ZOO_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    one = subprocess.run([ZOO, *common, "--out", str(tmp_path / "one")], capture_output=True, text=True,
                         timeout=300, env=env)
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0",
                          "--standalone", ZOO, *common, "--out", str(tmp_path / "two")], capture_output=True,
                         text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    # the same tokens scored in both runs, and padding in the crops: fewer scored tokens than positions
    counts = [[json.loads(line)["count"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
              for run in ("one", "two")]
    assert counts[0] == counts[1] and len(counts[0]) == steps and min(counts[0]) < 8 * 32, counts
    a, b = load_file(tmp_path / "one" / "final" / "model.safetensors"), load_file(tmp_path / "two" / "final" / "model.safetensors")
    diff = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert float(diff.max()) <= 2 * lr * steps
    assert float((diff > 1e-5).float().mean()) <= 1e-3, f"{float((diff > 1e-5).float().mean()):.2%} of weights differ"
    # and the test data's NLL, scored in shares by the two processes and summed, is the same number
    s1 = json.loads((tmp_path / "one" / "summary.json").read_text())["test_metrics"]
    s2 = json.loads((tmp_path / "two" / "summary.json").read_text())["test_metrics"]
    assert s1["tokens"] == s2["tokens"] and abs(s1["nll"] - s2["nll"]) < 1e-4
