"""MuseGAN's issue-#30 training parts: the moving average of the generator, the balance keys, the release rule,
and the timed GPU script (run here on the CPU with a tiny config)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zoo_musegan")

from safetensors.torch import load_file  # noqa: E402

from musegan_tiny import TINY, write_jsb  # noqa: E402
from zoo.errors import ConfigError  # noqa: E402
from zoo_musegan.model import MuseGAN, MuseGANConfig  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_average_follows_the_trained_generator_by_its_decay():
    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig(**TINY))
    before = {k: v.clone() for k, v in model.generator_ema.state_dict().items()}
    with torch.no_grad():
        for p in model.generator.parameters():
            p.add_(1.0)
        model.generator.bar_generators[0].bn0.running_mean.add_(2.0)
    model.update_average(0.75)
    after, trained = model.generator_ema.state_dict(), model.generator.state_dict()
    name = "bar_generators.0.linear.weight"
    torch.testing.assert_close(after[name], 0.75 * before[name] + 0.25 * trained[name])
    stats = "bar_generators.0.bn0.running_mean"   # batch-norm statistics are averaged too
    torch.testing.assert_close(after[stats], 0.75 * before[stats] + 0.25 * trained[stats])
    model.update_average(0.0)                      # decay 0 (ema_decay=0: off) copies
    assert all(torch.equal(after[k], trained[k]) for k in trained)
    assert not any(p.requires_grad for p in model.generator_ema.parameters())


def test_training_keeps_and_saves_the_average_and_the_critic_lr(tmp_path):
    from unittest import mock

    import zoo
    from zoo.train import checkpoint_dirs, train

    data = write_jsb(tmp_path / "jsb.npz")
    values = dict(steps=3, batch_size=4, eval_samples=8, eval_every=2, lr=1e-3, critic_lr=5e-4, ema_decay=0.2, **TINY)
    decays = []
    real_update = MuseGAN.update_average

    def update(model, decay):
        decays.append(decay)
        real_update(model, decay)
    with mock.patch.object(MuseGAN, "update_average", update):
        final = train("musegan", out=tmp_path / "run", data=str(data), values=values, device="cpu")
    # after every generator update, warmed up: min(ema_decay, (1 + step) / (10 + step))
    assert decays == pytest.approx([0.1, 2 / 11, 0.2])
    ckpt = checkpoint_dirs(tmp_path / "run")[-1]
    assert {"model.safetensors", "generator.safetensors", "critic.safetensors"} <= {p.name for p in ckpt.iterdir()}
    name = "bar_generators.0.convs.4.weight"
    moments = load_file(ckpt / "optimizer-critic.safetensors")
    assert moments                                                # the critic's optimizer is saved too
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evaluated = next(x for x in lines if "valid_release_score" in x)
    assert {"valid_release_score", "valid_trained_release_score", "valid_distance_to_data"} <= set(evaluated)
    from zoo.loader import load_model

    model = load_model(final, device="cpu", generate_only=True)   # what zoo generate loads: the average
    assert torch.equal(model.generator_ema.state_dict()[name], load_file(final / "model.safetensors")[name])
    from zoo_musegan.train import MuseGANTrainConfig, MuseGANTrainer

    trainer = MuseGANTrainer(MuseGAN(MuseGANConfig(**TINY)), MuseGANTrainConfig(lr=1e-3, critic_lr=5e-4))
    opts = trainer.configure_optimizers()
    assert opts["critic"].param_groups[0]["lr"] == 5e-4 and opts["generator"].param_groups[0]["lr"] == 1e-3
    with pytest.raises(ConfigError, match="ema_decay"):
        MuseGANTrainConfig(ema_decay=1.0)


def test_release_score_adds_the_worst_voices_rests_and_the_parallels_beyond_the_data():
    from zoo_chorales.metrics import distance_to_data
    from zoo_musegan.train import PARALLELS_WEIGHT, REST_WEIGHT, release_score

    data = {"in_scale": 0.95, "chord_rate": 0.6, "stepwise": 0.7, "note_length": 4.0, "parallels_per_100": 0.2,
            "rest_rate_S": 0.01, "rest_rate_A": 0.01, "rest_rate_T": 0.01, "rest_rate_B": 0.02}
    assert release_score(dict(data), data) == 0
    gen = {**data, "rest_rate_B": 0.27, "rest_rate_A": 0.03, "parallels_per_100": 2.2, "chord_rate": 0.3}
    want = distance_to_data(gen, data) + REST_WEIGHT * 0.25 + PARALLELS_WEIGHT * 2.0
    assert release_score(gen, data) == pytest.approx(want)
    fewer = {**gen, "parallels_per_100": 0.1}       # fewer parallels than Bach is no fault
    assert release_score(fewer, data) == pytest.approx(distance_to_data(gen, data) + REST_WEIGHT * 0.25)


def test_the_gpu_script_trains_for_its_minutes_and_saves_loadable_shards(tmp_path):
    """Run on the CPU with a tiny config for a few seconds: a checkpoint of generator, critic and average shards,
    each under 16 MiB, that loads back into the same weights and exports to a folder zoo plays."""
    import time

    import zoo
    from zoo_musegan import train_gpu

    data = write_jsb(tmp_path / "jsb.npz")
    sizes = [a for k, v in {**TINY, "batch_size": 4, "eval_samples": 8}.items() for a in ("--set", f"{k}={v}")]
    t0 = time.monotonic()
    code = train_gpu.main(["--out", str(tmp_path / "run"), "--minutes", "0.05", "--device", "cpu", "--data",
                           str(data), "--save-minutes", "0.01", *sizes])
    assert code == 0 and time.monotonic() - t0 < 60
    folder = tmp_path / "run" / "latest"
    info = json.loads((folder / "config.json").read_text())
    assert info["step"] >= 1 and info["model_config"]["z_dim"] == TINY["z_dim"]
    assert "release_score" in json.loads((folder / "metrics.json").read_text())
    for stem in ("generator", "critic", "ema"):
        index = json.loads((folder / f"{stem}.safetensors.index.json").read_text())["weight_map"]
        assert index and all((folder / name).stat().st_size < 16 * 2**20 for name in set(index.values()))
    model = train_gpu.load(folder)
    name = "bar_generators.1.linear.weight"
    shard = json.loads((folder / "ema.safetensors.index.json").read_text())["weight_map"][name]
    assert torch.equal(model.generator_ema.state_dict()[name], load_file(folder / shard)[name])
    exported = train_gpu.export(folder, tmp_path / "model")
    assert zoo.load(str(exported), device="cpu").generate(num=1, seed=0)[0].instruments


def test_the_book_widths_split_into_several_shards_under_16_mib(tmp_path):
    from zoo_musegan import train_gpu

    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig())                        # the book's widths: a 26 MB generator
    folder = train_gpu.save(tmp_path / "ckpt", model, {"step": 0})
    gen_shards = sorted(folder.glob("generator-*.safetensors"))
    assert len(gen_shards) == 2 and all(p.stat().st_size < 16 * 2**20 for p in folder.glob("*.safetensors"))
    loaded = train_gpu.load(folder)
    for attr in ("generator", "critic", "generator_ema"):
        ours, theirs = getattr(model, attr).state_dict(), getattr(loaded, attr).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    with pytest.raises(ConfigError, match="more than a shard"):
        train_gpu.shard({"w": torch.zeros(10)}, limit=16)


def test_the_gpu_script_refuses_a_missing_cuda_with_one_line(capsys):
    from zoo_musegan import train_gpu

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert train_gpu.main(["--out", "unused", "--minutes", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--device cpu" in err


def test_the_average_warms_up_from_scratch_but_not_when_fine_tuning():
    from zoo_musegan.train import average_decay

    assert [average_decay(0.999, s, fine_tuning=False) for s in (0, 1, 90)] == pytest.approx([0.1, 2 / 11, 0.91])
    assert average_decay(0.2, 5, fine_tuning=False) == 0.2            # the warm-up never exceeds ema_decay
    assert [average_decay(0.999, s, fine_tuning=True) for s in (0, 1, 90)] == [0.999, 0.999, 0.999]


def test_release_of_a_fine_tuning_run_keeps_the_checkpoints_trained_generator(tmp_path):
    """zoo release builds the trainer to evaluate a checkpoint; built with the run's init= it copied the average
    over the trained generator, as a fine-tune's start does, so generator.safetensors and the card's trained_*
    rows were the average's."""
    from zoo.checkpoint import load_tensors
    from zoo.cli import main

    data = str(write_jsb(tmp_path / "jsb.npz"))
    sets = [x for k, v in TINY.items() for x in ("--set", f"{k}={v}")]
    common = ["--device", "cpu", "--set", "eval_samples=2", "--set", "batch_size=2", "--data", data]
    assert main(["train", "musegan", "--out", str(tmp_path / "base"), "--steps", "2", *sets, *common]) == 0
    assert main(["train", "musegan", "--out", str(tmp_path / "ft"), "--steps", "2", "--set",
                 f"init={tmp_path / 'base' / 'final'}", "--set", "ckpt_every=1", "--set", "eval_every=1", *common]) == 0
    assert main(["release", str(tmp_path / "ft"), "--out", str(tmp_path / "rel"), "--step", "2"]) == 0
    ckpt = tmp_path / "ft" / "checkpoints" / "step-000002"
    trained, average = load_tensors(ckpt / "generator.safetensors", "cpu"), load_tensors(ckpt / "model.safetensors", "cpu")
    released = load_tensors(tmp_path / "rel" / "generator.safetensors", "cpu")
    assert any(not torch.equal(trained[k], average[k]) for k in trained)   # two steps apart: they differ
    assert all(torch.equal(released[k], trained[k]) for k in trained)
