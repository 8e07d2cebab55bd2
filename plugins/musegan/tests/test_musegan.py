"""MuseGAN plugin: the book's math, the voice-bug fix, rests and held notes, data, metrics, training, weights."""

from __future__ import annotations

import json
import math
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zoo_musegan")

from zoo.errors import ConfigError, DataError, MidiError  # noqa: E402
from zoo_chorales import data as mdata  # noqa: E402
from zoo_musegan.data import WindowDataset  # noqa: E402
from zoo_chorales import metrics as CM  # noqa: E402
from zoo_chorales.metrics import all_metrics, tonal_distance  # noqa: E402
from zoo_musegan.model import MuseCritic, MuseGAN, MuseGANConfig, MuseGenerator, book_init  # noqa: E402
from zoo_musegan.tokenizer import REST, PianoRollTokenizer, grid_to_notes  # noqa: E402
from zoo_musegan.train import gradient_penalty  # noqa: E402

from musegan_reference import copy_weights, reference_from_config, reference_name, split_voices  # noqa: E402
from musegan_tiny import TINY, write_jsb  # noqa: E402

REPO = Path(__file__).resolve().parents[3]   # the checkout: plugins/musegan/tests/
SHIPPED = Path(__file__).resolve().parents[1] / "zoo_musegan" / "weights" / "musegan-bach"   # inside the package


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def noise(config, b, seed=0):
    g = torch.Generator().manual_seed(seed)
    z, t = config.z_dim, config.n_tracks
    return (torch.randn(b, z, generator=g), torch.randn(b, z, generator=g), torch.randn(b, t, z, generator=g),
            torch.randn(b, t, z, generator=g))


# --- the architecture -----------------------------------------------------------------------------

def test_default_config_has_the_books_parameter_counts():
    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig())
    assert sum(p.numel() for p in model.generator.parameters()) == 6_576_612
    assert sum(p.numel() for p in model.critic.parameters()) == 1_446_401
    assert set(model.state_files()) == {"model", "critic", "generator"}   # model: the average that plays


def test_book_init():
    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig(**TINY))
    bn2d = model.generator.bar_generators[0].bns[0]
    assert torch.all(bn2d.bias == 0) and 0 < bn2d.weight.std() < 0.1   # BN2d weights ~ N(0, 0.02)
    lin = model.critic.linear1
    assert torch.all(lin.bias == 0) and abs(lin.weight.std().item() - 0.02) < 0.005
    assert torch.all(model.generator.bar_generators[0].bn0.weight == 1)  # BN1d keeps PyTorch's init


def assert_same_math(actual, expected, rel=1e-4):
    """Two fp32 implementations of the same math agree to `rel` of the tensor's scale.

    The literal book layers (conv kernels) and ours (matmuls) sum the same products in different
    orders, and which order depends on the CPU's kernels (AVX2, AVX-512, AMX). A reduction over K
    terms then differs by about sqrt(K) * 2**-24 of the terms' size: K is at most a few thousand
    here, so ~5e-6 of the scale. Comparing element by element against the tensor's largest value
    (not each element's own, which may be a cancellation near zero) at 1e-4 leaves 20x room, while
    a wrong weight layout, a missed transpose or a batch norm over the wrong axes moves values by
    O(1) of the scale.
    """
    scale = float(expected.detach().abs().max())
    torch.testing.assert_close(actual, expected, rtol=0, atol=rel * max(scale, 1e-30))


def make_pair(config):
    torch.manual_seed(0)
    gen, critic = MuseGenerator(config), MuseCritic(config)
    gen.apply(book_init), critic.apply(book_init)
    rgen, rcritic = reference_from_config(config)
    copy_weights(gen, rgen), copy_weights(critic, rcritic)
    return gen, critic, rgen, rcritic


def test_book_configuration_computes_what_the_literal_book_layers_compute():
    """The default (book) widths: same generator output in train and eval mode, same critic score."""
    config = MuseGANConfig()
    gen, critic, rgen, rcritic = make_pair(config)
    z = noise(config, 2)
    with torch.no_grad():
        for training in (True, False):
            gen.train(training), rgen.train(training)
            assert_same_math(gen(*z), rgen(*z))
        x = torch.randn(2, 4, 2, 16, 84)
        assert_same_math(critic(x), rcritic(x))


SHIPPED_OPTIONS = dict(output="gumbel", gumbel_tau=0.3, sample_temperature=0.35, critic_onsets=True)   # musegan-bach's options


@pytest.mark.parametrize("overrides", [
    TINY, {"n_bars": 3, **TINY}, {"n_tracks": 3, "n_pitches": 48, **TINY},
    {**SHIPPED_OPTIONS, **TINY},                                              # the shipped configuration
    {"output": "onehot", **TINY}, {"output": "gumbel", **TINY},
    {**SHIPPED_OPTIONS, "critic_voice_channels": 4, **TINY}, {**SHIPPED_OPTIONS, "critic_voice_channels": 3, "n_bars": 3, **TINY},
])
def test_same_math_as_the_literal_book_layers(overrides):
    """Same weights in the reference (tests/musegan_reference.py, beside this file) and in zoo_musegan, for every
    output mode and critic option: same outputs (logits for a categorical output), same gradient penalty and its
    gradients, same BN running statistics after training-mode passes."""
    config = MuseGANConfig(**overrides)
    gen, critic, rgen, rcritic = make_pair(config)
    z = noise(config, 5)
    extra = int(config.output != "linear")   # a categorical output's rest logit
    for training in (True, False, True):
        gen.train(training), rgen.train(training)
        ours, ref = gen(*z), rgen(*z)
        assert ours.shape == ref.shape == (5, config.n_tracks, config.n_bars, config.steps_per_bar,
                                           config.n_pitches + extra)
        assert_same_math(ours, ref)
    ref_state = rgen.state_dict()
    for name, value in gen.state_dict().items():   # running means/vars, num_batches_tracked
        assert_same_math(value.float(), ref_state[reference_name(name)].float())
    if critic.voices is not None:   # its projection starts at zero; give it weight, so that the front end counts
        for c in (critic, rcritic):
            torch.manual_seed(3)
            (c.voices if c is critic else c.voice_front).project.weight.data.normal_(0, 0.02)
    x = torch.randn(5, config.n_tracks, config.n_bars, config.steps_per_bar, config.n_pitches)
    assert_same_math(critic(x), rcritic(x))
    real = torch.where(torch.rand_like(x) < 0.05, 1.0, -1.0)
    torch.manual_seed(1)
    gp = gradient_penalty(critic, real, x)
    gp.backward()
    torch.manual_seed(1)
    rgp = gradient_penalty(rcritic, real, x)
    rgp.backward()
    assert_same_math(gp, rgp)
    rgrads = {}
    for name, p in rcritic.named_parameters():
        rgrads[name] = p.grad
    for name, p in critic.named_parameters():   # gradients of a gradient: the double backward agrees too
        if name.startswith("voices.per_voice."):
            want = torch.cat([rgrads[k] for k in split_voices(name, p.detach(), config.n_tracks)])
        else:
            want = rgrads[reference_name(name)]
        if want is None:   # a parameter the penalty does not reach (the last layer's bias) has none in either
            assert p.grad is None, name
            continue
        assert_same_math(p.grad, want, rel=1e-3)  # two backward passes: 10x more room


def test_the_book_called_its_bar_generator_per_bar_and_eval_mode_cannot_tell():
    """The book's one call per bar takes batch-norm statistics per bar; the model folds bars into the batch. In
    eval mode (running statistics, how music is generated) the two compute the same; in training they differ."""
    config = MuseGANConfig(**TINY)
    gen, _, rgen, _ = make_pair(config)
    for m in gen.modules():   # unit scales, as a trained model has: the book's N(0, 0.02) ones hide the statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(m.weight)
    per_bar, _ = reference_from_config(config)
    per_bar.fold_bars = False
    copy_weights(gen, per_bar)
    z = noise(config, 5)
    gen.eval(), per_bar.eval()
    assert_same_math(gen(*z), per_bar(*z))
    gen.train(), per_bar.train()
    ours = gen(*z)
    assert (ours - per_bar(*z)).abs().max() > 0.01 * ours.abs().max()   # measured: about 0.4 of the scale


@pytest.mark.parametrize("bad, message", [
    ({"n_pitches": 80}, "multiple of 12"),
    ({"steps_per_bar": 12}, "steps_per_bar"),
    ({"n_bars": 1}, "n_bars"),
    ({"bar_hidden_channels": 3}, "even"),
    ({"z_dim": 0}, "positive"),
])
def test_config_validation(bad, message):
    with pytest.raises(ConfigError, match=message):
        MuseGANConfig(**bad)


def test_a_config_too_large_is_refused_from_its_sizes_at_once(monkeypatch):
    """n_tracks=10**6 was refused only after 160 s of building one network per track on the meta device (the
    time grew with the machine's memory); the sizes decide at once now, by arithmetic that counts exactly."""
    import time

    import zoo

    for config in (MuseGANConfig(), MuseGANConfig(**TINY),
                   MuseGANConfig(**TINY, output="gumbel", critic_onsets=True, n_tracks=3, n_bars=5, n_pitches=96,
                                 critic_voice_channels=5)):
        with torch.device("meta"):
            model = MuseGAN(config)
        assert config.numbers() == sum(t.numel() for m in model.state_files().values() for t in m.state_dict().values())
    t0 = time.monotonic()
    for sizes in ({"n_tracks": 10 ** 6}, {"n_bars": 10 ** 6}):
        with pytest.raises(ConfigError, match="n_tracks must be 1..16 and n_bars 2..64"):
            zoo.create("musegan", **sizes)
    monkeypatch.setattr("zoo.build.machine_elements", lambda: 10 ** 6)   # a machine smaller than the book's model
    with pytest.raises(ConfigError, match="builds a model of 14,657,669 numbers, more than this machine"):
        zoo.create("musegan")
    assert time.monotonic() - t0 < 5


def test_training_numbers_have_upper_bounds():
    from zoo_musegan.train import MuseGANTrainConfig

    for bad, says in (({"n_critic": 10 ** 9}, "n_critic must be 1..1,000"),
                      ({"eval_samples": 10 ** 9}, "eval_samples must be 1..100,000")):
        with pytest.raises(ConfigError, match=says):
            MuseGANTrainConfig(**bad)


def test_unknown_config_key_lists_valid_keys():
    from zoo.config import config_from_dict

    with pytest.raises(ConfigError, match="critic_hidden"):
        config_from_dict(MuseGANConfig, {"hidden": 3})


# --- generation -------------------------------------------------------------------------------------

def test_generation_is_deterministic_and_in_eval_mode():
    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig(**TINY))
    for m in model.generator_ema.modules():   # unit BN scales, as a trained model has, so the noise shows
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            torch.nn.init.ones_(m.weight)
    model.train()
    a, b, c = (model.sample(3, seed=s) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert model.generator_ema.training   # restored after sampling
    # eval mode: one piece does not depend on the others in its batch (no batch statistics)
    assert_same_math(model.sample(1, seed=7)[0], a[0])  # a batch of 1 may take another kernel path
    midis = model.generate(num=2, seed=7)
    assert len(midis) == 2
    assert [i.name for i in midis[0].instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
    again = model.generate(num=2, seed=7)
    notes = lambda m: [(n.pitch, n.start, n.end) for i in m.instruments for n in i.notes]  # noqa: E731
    assert notes(midis[1]) == notes(again[1])
    with pytest.raises(ConfigError):
        model.generate(num=1, temperature=0.5)


def test_onehot_output_plays_the_largest_logit_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig(output="onehot", **TINY))
    z = model.sample_noise(3)
    logits = model(*z)
    rolls = model.fake_rolls(*z)
    want = torch.nn.functional.one_hot(logits.argmax(-1), 85)[..., :-1] * 2 - 1   # the rest column dropped
    assert torch.equal(rolls.detach(), want.float())
    model.critic(rolls).sum().backward()
    assert model.generator.bar_generators[0].rest.weight.grad.abs().sum() > 0
    a, b = model.sample(2, seed=4), model.sample(2, seed=4)
    assert torch.equal(a, b) and ((a > 0).sum(-1) <= 1).all()


def test_onehot_output_starts_from_unit_bn_scales_so_the_noise_shows():
    from zoo_chorales.metrics import near_duplicate_rate

    torch.manual_seed(0)
    book, onehot = MuseGAN(MuseGANConfig(**TINY)), MuseGAN(MuseGANConfig(output="onehot", **TINY))
    assert all(torch.all(m.weight == 1) for m in onehot.generator.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert book.generator.bar_generators[0].bns[0].weight.std() < 0.1      # the book's N(0, 0.02) stays for linear

    def near_duplicates(model):   # in training mode, as the critic sees them, 16 pieces from 16 noise vectors
        with torch.no_grad():
            rolls = model.fake_rolls(*model.sample_noise(16))
        return near_duplicate_rate(model.tokenizer.roll_to_grid(rolls).reshape(4, 16, -1).transpose(1, 0, 2))

    wider = dict(temporal_hidden=64, bar_hidden_features=128, bar_hidden_channels=64, critic_hidden=8,
                 critic_hidden_features=16)
    unit, scaled = [], []
    for seed in range(1, 5):
        torch.manual_seed(seed)
        model = MuseGAN(MuseGANConfig(output="onehot", **wider))
        unit.append(near_duplicates(model))
        model.generator.apply(book_init)                                    # the book's scales instead
        scaled.append(near_duplicates(model))
    assert np.mean(unit) < 0.3 < 0.7 < np.mean(scaled)      # measured: ~0.07 against 1.0


def test_gumbel_output_samples_one_pitch_or_rest_per_voice_and_step():
    from zoo_musegan.categorical import categorical_roll

    torch.manual_seed(0)
    config = MuseGANConfig(output="gumbel", **TINY)
    model = MuseGAN(config)
    z = model.sample_noise(3)
    logits = model(*z)
    assert logits.shape == (3, 4, 2, 16, 85)             # 84 pitches + rest
    rolls = model.fake_rolls(*z)
    assert rolls.shape == (3, 4, 2, 16, 84)
    assert set(rolls.detach().unique().tolist()) <= {-1.0, 1.0} and ((rolls > 0).sum(-1) <= 1).all()
    # straight through: the critic's score reaches the generator's weights
    model.critic(rolls).sum().backward()
    assert model.generator.bar_generators[0].convs[-1].weight.grad.abs().sum() > 0
    assert model.generator.bar_generators[0].rest.weight.grad.abs().sum() > 0
    # decoding samples the categorical: a voice whose rest logit dominates rests, a sure pitch sounds
    sure = torch.full((1, 1, 1, 2, 85), -30.0)
    sure[..., 0, 60], sure[..., 1, 84] = 30.0, 30.0
    roll = categorical_roll(sure, generator=torch.Generator().manual_seed(0))
    assert roll[0, 0, 0, 0].argmax() == 60 and roll[0, 0, 0, 0, 60] == 1 and (roll[0, 0, 0, 1] == -1).all()
    # frequencies follow the softmax: two equal logits split about evenly
    even = torch.full((4000, 1, 1, 1, 85), -30.0)
    even[..., 10], even[..., 20] = 0.0, 0.0
    picks = categorical_roll(even, generator=torch.Generator().manual_seed(1)).argmax(-1).flatten()
    assert 0.45 < (picks == 10).float().mean() < 0.55
    a, b = model.sample(2, seed=5), model.sample(2, seed=5)
    assert torch.equal(a, b) and ((a > 0).sum(-1) <= 1).all()


def test_sample_temperature_draws_from_the_sharpened_categorical_in_training_and_sampling():
    from zoo_musegan.categorical import categorical_roll

    # logits 0 and ln 3 (probabilities 1/4, 3/4): at temperature 0.5 they become 1/10, 9/10
    # (softmax of 0, 2 ln 3); 8000 draws have binomial sd 0.0048 (p 3/4) and 0.0034 (p 9/10): +-0.015 is 3-4 sd
    two = torch.full((8000, 1, 1, 1, 85), -30.0)
    two[..., 10], two[..., 20] = 0.0, math.log(3)
    for temperature, share in [(1.0, 0.75), (0.5, 0.9)]:
        picks = categorical_roll(two, generator=torch.Generator().manual_seed(2), temperature=temperature).argmax(-1)
        assert abs((picks == 20).float().mean() - share) < 0.015
    # the critic sees draws at the model's temperature, and sample() plays them
    model = MuseGAN(MuseGANConfig(output="gumbel", sample_temperature=0.5, gumbel_tau=0.3, **TINY))
    played = model.sample(1, seed=4)
    g = torch.Generator().manual_seed(4)          # sample(): the piece's noise, then its Gumbel draws
    with torch.no_grad():
        model.generator.eval()
        logits = model.generator(*model.sample_noise(1, g)).float()
    assert torch.equal(played, categorical_roll(logits, generator=g, temperature=0.5))
    # a fresh model's logits are nearly flat, so the two temperatures could give the same roll: check the call too
    import zoo_musegan.model as musegan_model

    seen = []
    real = musegan_model.categorical_roll
    with mock.patch.object(musegan_model, "categorical_roll", lambda *a, **k: seen.append(k.get("temperature")) or real(*a, **k)):
        model.sample(2, seed=4)
    assert seen == [0.5, 0.5]
    model.generator.train()
    torch.manual_seed(7)
    fake = model.fake_rolls(*model.sample_noise(3))
    torch.manual_seed(7)
    logits = model.generator(*model.sample_noise(3))
    assert torch.equal(fake, categorical_roll(logits, 0.3, straight_through=True, temperature=0.5))
    torch.manual_seed(7)
    assert not torch.equal(fake, categorical_roll(model.generator(*model.sample_noise(3)), 0.3, straight_through=True))
    for bad in (0, -1, 100, True, "hot"):
        with pytest.raises(ConfigError, match="sample_temperature"):
            MuseGANConfig(output="gumbel", sample_temperature=bad)
    with pytest.raises(ConfigError, match="output='gumbel' only"):
        MuseGANConfig(output="onehot", sample_temperature=0.5)


def test_critic_onsets_mark_where_notes_start_and_take_the_gradient_penalty():
    from zoo_musegan.model import onset_roll

    roll = -torch.ones(1, 1, 2, 16, 84)
    roll[0, 0, 0, 0:4, 60] = 1                    # a held quarter note, then
    roll[0, 0, 0, 4:6, 62] = 1                    # an eighth a step up,
    roll[0, 0, 0, 14:16, 64] = 1                  # and a note held across the bar line
    roll[0, 0, 1, 0:2, 64] = 1
    onsets = onset_roll(roll)
    starts = [(int(b), int(s), int(p)) for b, s, p in (onsets[0, 0] > 0).nonzero()]
    assert starts == [(0, 0, 60), (0, 4, 62), (0, 14, 64)]
    assert set(onsets.unique().tolist()) == {-1.0, 1.0}
    torch.manual_seed(0)
    config = MuseGANConfig(output="gumbel", critic_onsets=True, **TINY)
    model = MuseGAN(config)
    assert model.critic.convs[0].weight.shape[1] == 2 * config.n_tracks
    # held and struck again are the same roll, but a held note and a run of different pitches are not: the critic
    # with onsets has a direct view of the difference, and its first layer's onset weights get a gradient
    fake = model.fake_rolls(*model.sample_noise(4)).detach()
    real = -torch.ones_like(fake)
    real[:, :, :, :, 60] = 1
    gp = gradient_penalty(model.critic, real, fake)
    assert torch.isfinite(gp)
    (model.critic(fake).mean() - model.critic(real).mean() + 10 * gp).backward()
    assert model.critic.convs[0].weight.grad[:, config.n_tracks:].abs().sum() > 0
    with pytest.raises(ConfigError, match="critic_onsets"):
        MuseGANConfig(critic_onsets="yes")


def test_linear_output_is_the_default_and_old_folders_still_load(tmp_path):
    import zoo

    assert MuseGANConfig().output == "linear"
    folder = MuseGAN(MuseGANConfig(**TINY)).save_pretrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["arch_version"] = 1                           # a folder written before `output` existed
    for key in ("output", "gumbel_tau", "sample_temperature", "critic_onsets"):
        del config["config"][key]
    (folder / "config.json").write_text(json.dumps(config))
    from zoo.checkpoint import write_manifest

    write_manifest(folder)
    assert zoo.load(str(folder), device="cpu").config.output == "linear"


REMOVED = {"hold": (False, True), "critic_rests": (False, True), "gumbel_noise": ("cell", "voice")}   # key: (off, on)


def test_removed_options_load_at_their_off_values_and_are_one_error_when_used(tmp_path, capsys):
    """hold, critic_rests and gumbel_noise="voice" lost when measured and were removed in 0.2.0. Folders saved before
    (musegan-bach's among them) name them: at their off values such a folder loads and plays what it played; a
    folder, --set or zoo.create that turns one on is one ConfigError line that says what to do."""
    import shutil

    import zoo
    from zoo.checkpoint import write_manifest
    from zoo.testing import cli_in_process, one_error_line
    from zoo.train import split_overrides
    from zoo_musegan.train import MuseGANTrainer

    shipped = json.loads((SHIPPED / "config.json").read_text())["config"]
    assert all(shipped[k] == off for k, (off, _) in REMOVED.items() if k in shipped)
    torch.manual_seed(0)
    model = MuseGAN(MuseGANConfig(**SHIPPED_OPTIONS, **TINY))
    folder = model.save_pretrained(tmp_path / "new")
    config = json.loads((folder / "config.json").read_text())
    assert not REMOVED.keys() & config["config"].keys()   # no longer written

    def old_folder(name, **values):
        old = tmp_path / name
        shutil.copytree(folder, old)
        (old / "config.json").write_text(json.dumps({**config, "arch_version": 4,
                                                     "config": {**config["config"], **values}}))
        write_manifest(old)
        return old

    off = old_folder("off", **{k: off for k, (off, _) in REMOVED.items()})
    loaded = zoo.load(str(off), device="cpu")
    assert loaded.config == model.config and torch.equal(loaded.sample(4, seed=11), model.sample(4, seed=11))
    model_part, _ = split_overrides({"hold": "false", "gumbel_noise": "cell", "lr": "1e-3"}, MuseGAN, MuseGANTrainer)
    assert zoo.create("musegan", **model_part, **TINY).config == MuseGANConfig(**TINY)   # --set at the off value
    for key, (_, on) in REMOVED.items():
        says = f"'{key}' was removed, so {key}={json.dumps(on)} is no longer possible; it lost when measured"
        used = old_folder(key, **{key: on})
        with pytest.raises(ConfigError, match=says):
            zoo.load(str(used), device="cpu")
        line = one_error_line(*cli_in_process(capsys, "generate", used, "-o", tmp_path / "x.mid", "--threads", "1"))
        assert str(used / "config.json") in line and says in line and "musezoo-musegan 0.1.0" in line
        with pytest.raises(ConfigError, match=says):
            zoo.create("musegan", **{key: on})
        run = tmp_path / f"run-{key}"
        line = one_error_line(*cli_in_process(capsys, "train", "musegan", "--out", run, "--set", f"{key}={on}"))
        assert says in line and not run.exists()
    assert not (tmp_path / "x.mid").exists()


def test_noise_at_inference_is_standard_normal():
    model = MuseGAN(MuseGANConfig(**TINY))
    chords, style, melody, groove = model.sample_noise(4000, torch.Generator().manual_seed(0))
    assert abs(melody.mean().item()) < 0.05 and abs(melody.std().item() - 1) < 0.05
    assert (chords < 0).any()   # the book's U[0,1) never is


# --- tokenizer --------------------------------------------------------------------------------------

def test_decode_keeps_voices_apart_the_books_bug_is_fixed():
    tok = PianoRollTokenizer()
    roll = -torch.ones(2, 4, 2, 16, 84)
    pitches = [72, 64, 55, 48]
    for v, p in enumerate(pitches):
        roll[:, v, :, :, p] = 1.0
    midi = tok.decode(roll)
    assert [i.name for i in midi.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
    step = 60 / 66 / 4
    for inst, p in zip(midi.instruments, pitches):
        # one held note per voice over both pieces (2 x 32 steps), not S, A, T, B in turn
        assert [(n.pitch, round(n.start / step), round(n.end / step)) for n in inst.notes] == [(p, 0, 64)]
    assert midi.get_tempo_changes()[1][0] == pytest.approx(66)


def test_rests_and_held_notes():
    tok = PianoRollTokenizer()
    grid = np.full((4, 32), REST)
    grid[0, 0:4] = 60
    grid[0, 4:8] = 62
    grid[0, 12:32] = 62      # after a rest of 4 steps
    roll = tok.grid_to_roll(grid)
    assert roll.shape == (1, 4, 2, 16, 84) and set(roll.unique().tolist()) == {-1.0, 1.0}
    assert (roll[0, 1:] == -1).all()          # silent voices are rests
    back = tok.roll_to_grid(roll)
    np.testing.assert_array_equal(back, grid)
    assert grid_to_notes(back[0]) == [(60, 0, 4), (62, 4, 8), (62, 12, 32)]
    midi = tok.decode(roll)
    assert [len(i.notes) for i in midi.instruments] == [3, 0, 0, 0]


def test_decode_never_crashes_on_model_output():
    tok = PianoRollTokenizer()
    weird = torch.randn(3, 4, 2, 16, 84) * 1e6
    weird[0, 0, 0, 0, :3] = float("nan")
    weird[1, 2, 1, 5, 7] = float("inf")
    weird[2] = -float("inf")
    for x in (weird, weird[0], torch.zeros(1, 4, 2, 16, 84), weird.double(), weird.half()):
        midi = tok.decode(x)
        assert len(midi.instruments) == 4
    with pytest.raises(MidiError, match="shape"):
        tok.decode(torch.zeros(4, 2, 16, 80))


def test_tokenizer_saves_as_json(tmp_path):
    from zoo.loader import load_tokenizer

    tok = PianoRollTokenizer(tempo=80, threshold=0.2)
    tok.save(tmp_path / "tokenizer.json")
    assert json.loads((tmp_path / "tokenizer.json").read_text())["tokenizer"] == "pianoroll"
    back = load_tokenizer(tmp_path / "tokenizer.json")
    assert back.to_dict() == tok.to_dict()


@pytest.fixture(scope="module")
def chorale_midi(tmp_path_factory):
    """A real chorale from music21's corpus, written as MIDI by music21 (no network)."""
    music21 = pytest.importorskip("music21")
    score = music21.corpus.parse("bach/bwv66.6")
    path = tmp_path_factory.mktemp("chorale") / "bwv66.6.mid"
    score.write("midi", fp=str(path))
    return score, path


def test_encode_decode_a_real_chorale_note_for_note(chorale_midi):
    import pretty_midi

    score, path = chorale_midi
    original = pretty_midi.PrettyMIDI(str(path))
    tok = PianoRollTokenizer()
    roll = tok.encode(original)
    assert roll.shape[1:] == (4, 2, 16, 84)
    decoded = tok.decode(roll)
    assert [i.name for i in decoded.instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
    # the original's notes in 16th steps, voice by voice; repeated pitches merged (the format's one lossy step)
    per_step = original.resolution / 4
    step = 60 / 66 / 4
    voices = {i.name: i for i in original.instruments}
    for inst in decoded.instruments:
        src = sorted(voices[inst.name].notes, key=lambda n: n.start)
        want = []
        for n in src:
            s, e = round(original.time_to_tick(n.start) / per_step), round(original.time_to_tick(n.end) / per_step)
            if want and want[-1][0] == n.pitch and want[-1][2] == s:
                want[-1] = (n.pitch, want[-1][1], e)
            else:
                want.append((n.pitch, s, e))
        got = [(n.pitch, round(n.start / step), round(n.end / step)) for n in inst.notes]
        assert got == want, inst.name
    # and against music21's own notes of the soprano: same pitches in the same order
    soprano = [p.pitch.midi for p in score.parts[0].stripTies().flatten().notes]
    merged = [p for k, p in enumerate(soprano) if k == 0 or p != soprano[k - 1]]
    assert [n.pitch for n in decoded.instruments[0].notes] == merged


def test_voices_by_name_else_by_order():
    import pretty_midi

    from zoo_musegan.tokenizer import select_voices

    insts = [pretty_midi.Instrument(0, name=n) for n in ("Bass", "Tenor", "Alto", "Soprano")]
    assert [i.name for i in select_voices(insts)] == ["Soprano", "Alto", "Tenor", "Bass"]
    plain = [pretty_midi.Instrument(0, name=f"Track {k}") for k in range(5)]
    assert select_voices(plain) == plain[:4]
    with pytest.raises(MidiError, match="4"):
        select_voices(plain[:3])


# --- data ------------------------------------------------------------------------------------------

def test_chorale_pipeline_on_a_small_subset():
    names = ["bach/bwv66.6", "bach/bwv269", "bach/bwv66.6", "bach/no-such-chorale"]
    d = mdata.build_chorales(names)
    s = d.stats
    assert (s["listed"], s["unique"], s["used"], s["skipped"]) == (4, 3, 1, 2)
    assert "no full 4/4 bars" in s["skipped_by_reason"]          # bwv269 is in 3/4
    assert "unreadable" in s["skipped_by_reason"]
    windows = np.concatenate([d.splits[k] for k in mdata.SPLITS])
    assert windows.shape[1:] == (4, 32) and len(windows) >= 5
    split = mdata.split_of(mdata.bwv_key("bach/bwv66.6"))
    assert len(d.splits[split]) == len(windows)                  # one BWV, one split
    notes = windows[windows != REST]
    assert 36 <= notes.min() and notes.max() <= 84
    mean = np.array([[np.mean(w[v][w[v] != REST]) for v in range(4)] for w in windows])
    assert np.all(np.diff(mean, axis=1) < 0)                     # S above A above T above B


def test_humdrum_chorale_voices_in_score_order():
    music21 = pytest.importorskip("music21")
    score = music21.corpus.parse("bach/bwv277")                  # a .krn file: parts are spine_6 ... spine_0
    voices = mdata.chorale_voices(score)
    assert [p.id for p in voices] == [p.id for p in score.parts]
    grid, bars = mdata.chorale_grid(score)
    means = [np.mean(row[row != REST]) for row in grid]
    assert means == sorted(means, reverse=True)


def test_windows_are_bar_aligned_with_a_one_bar_hop():
    grid = np.arange(4 * 80).reshape(4, 80) % 60 + 20
    bars = [4, 20, 36, 52]                                       # a 4-step pickup, then full bars; last bar cut short
    wins = mdata.cut_windows(grid, bars, 2, 16)
    assert [w[0, 0] for w in wins] == [grid[0, 4], grid[0, 20], grid[0, 36]]
    assert all(w.shape == (4, 32) for w in wins)


def test_split_is_deterministic_and_roughly_80_10_10():
    splits = [mdata.split_of(f"bwv{n}") for n in range(1, 1001)]
    assert splits == [mdata.split_of(f"bwv{n}") for n in range(1, 1001)]
    share = {s: splits.count(s) / len(splits) for s in mdata.SPLITS}
    assert 0.75 < share["train"] < 0.85 and 0.06 < share["valid"] < 0.14 and 0.06 < share["test"] < 0.14


def test_cache_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))
    calls = []

    def fake_build(**kw):
        calls.append(kw)
        return mdata.WindowData({s: np.full((2, 4, 32), 60, dtype=np.int16) for s in mdata.SPLITS},
                                {s: ["x", "x"] for s in mdata.SPLITS}, {"source": "fake", "used": 1})

    monkeypatch.setattr(mdata, "build_chorales", fake_build)
    a = mdata.load_chorales()
    b = mdata.load_chorales()
    assert len(calls) == 1                                       # parsed once, then read from the cache
    files = list((tmp_path / "chorales").glob("chorales-v*.npz"))
    assert len(files) == 1 and f"v{mdata.DATA_VERSION}" in files[0].name
    np.testing.assert_array_equal(a.splits["train"], b.splits["train"])
    files[0].write_bytes(b"garbage")                             # a damaged cache is rebuilt, not fatal
    mdata.load_chorales()
    assert len(calls) == 2


def test_jsb_npz_format(tmp_path):
    d = mdata.load_jsb_npz(write_jsb(tmp_path / "Jsb16thSeparated.npz"))
    assert d.stats["used"] == 7 and d.stats["skipped"] == 1
    assert d.splits["train"].shape[1:] == (4, 32)
    # windows from step 0 with a one-bar hop: a 48-step piece gives 2, a 64-step piece 3
    assert len(d.splits["valid"]) == 2 + 3
    w = d.splits["train"][0]
    assert np.nanmean(np.where(w[0] >= 0, w[0], np.nan)) > np.nanmean(np.where(w[3] >= 0, w[3], np.nan))
    assert (d.splits["train"] == REST).any()                     # NaN became a rest
    with pytest.raises(DataError):
        mdata.load_jsb_npz(tmp_path / "nothing.npz")


def test_npz_references_to_one_piece_count_once_per_use(tmp_path):
    """A 99 KB file whose 100,000 pieces are pickle memo references (BINGET) to one array is refused at once.
    Before, the references counted once against the 2^25-number budget, but each was processed and kept as a
    piece (~2.5 s and 70 MB apiece: days and terabytes in all)."""
    import pickle
    import time

    piece = np.zeros((1000, 4))                 # 4,000 numbers, listed 100,000 times: 4 * 10^8 > 2^25
    bomb = np.empty(100_000, dtype=object)
    for i in range(len(bomb)):
        bomb[i] = piece                         # one object: pickle writes it once, then memo references
    t0 = time.monotonic()
    with pytest.raises(ValueError, match="an array listed again counts again"):
        mdata.decode_numpy_pickle(pickle.dumps(bomb, protocol=4))
    small = np.empty(2, dtype=object)
    small[0] = small[1] = np.full((64, 4), 60.0)
    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, train=bomb, valid=small, test=small)
    assert path.stat().st_size < 100_000
    with pytest.raises(DataError, match="listed again counts again"):
        mdata.load_jsb_npz(path)
    assert time.monotonic() - t0 < 10            # (measured well under 1 s)
    assert [len(p) for p in mdata.decode_numpy_pickle(pickle.dumps(small))] == [64, 64]   # a few uses are fine


def test_midi_folder_skips_bad_files(tmp_path, chorale_midi):
    import shutil

    _, path = chorale_midi
    shutil.copy(path, tmp_path / "good.mid")
    (tmp_path / "corrupt.mid").write_bytes(b"MThd not really")
    import pretty_midi

    two = pretty_midi.PrettyMIDI()
    two.instruments = [pretty_midi.Instrument(0), pretty_midi.Instrument(0)]
    two.instruments[0].notes.append(pretty_midi.Note(80, 60, 0, 1))
    two.write(str(tmp_path / "two-voices.mid"))
    d = mdata.load_midi_folder(tmp_path)
    assert d.stats["used"] == 1 and d.stats["skipped"] == 2
    assert sum(len(d.splits[s]) for s in mdata.SPLITS) > 5
    with pytest.raises(DataError, match="no .mid"):
        mdata.load_midi_folder(tmp_path / "empty-does-not-exist")


def test_transposition_stays_inside_each_voice_range():
    grids = np.full((3, 4, 32), REST, dtype=np.int16)
    for v, p in enumerate((70, 62, 55, 45)):
        grids[:, v, :16] = p
    grids[0, 0, :4] = 76                                          # the soprano's top note: no room upwards
    ds = WindowDataset(grids, transpose=5, ranges=[(60, 76), (55, 70), (48, 62), (40, 55)], seed=1)
    shifts = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        for i in range(3):
            s = ds.shift_for(i)
            shifts.add((i, s))
            roll = ds[i]
            assert roll.shape == (4, 2, 16, 84)
            if i == 0:
                assert s <= 0
    assert any(s > 0 for i, s in shifts if i > 0) and any(s < 0 for _, s in shifts)
    ds.set_epoch(3)
    first = [ds.shift_for(i) for i in range(3)]
    ds.set_epoch(3)
    assert first == [ds.shift_for(i) for i in range(3)]           # (seed, epoch, index) decides


# --- metrics on hand-made inputs -------------------------------------------------------------------

def test_metrics_known_answers():
    g = np.full((1, 4, 32), REST)
    g[0, 0, :16] = 72          # C5, whole bar
    g[0, 1, :16] = 67          # G4
    g[0, 2, :16] = 64          # E4
    g[0, 3, :16] = 48          # C3
    m = all_metrics(g)
    assert m["rest_rate_S"] == 0.5
    assert m["upc_per_bar"] == 1.5       # {C, G, E} in bar 1, nothing in bar 2
    assert m["in_scale"] == 1.0
    assert m["note_length"] == 16.0
    assert m["tonal_distance_SB"] == pytest.approx(0.0)          # both voices C
    assert m["in_range_S"] == 1.0 and m["voice_crossing"] == 0.0
    crossed = g.copy()
    crossed[0, 0, :8] = 40              # soprano below everyone for half the bar: S<A crossing, out of range
    assert CM.crossing_rate(crossed) == pytest.approx(8 / (3 * 16))   # 8 crossed of 3 pairs x 16 sounding steps
    assert all_metrics(crossed)["in_range_S"] == 0.5
    chromatic = np.arange(60, 72).reshape(1, 1, 12)
    assert CM.in_scale(chromatic) == pytest.approx(7 / 12)
    fifth = np.array([[[60] * 16, [67] * 16]])
    d = tonal_distance(fifth)[(0, 1)]
    # single pitch classes 0 and 7: each circle contributes r^2 * (2 - 2 cos(7 * angle))
    want = np.sqrt(sum(r * r * (2 - 2 * np.cos(7 * a)) for r, a in ((1, 7 * np.pi / 6), (1, 3 * np.pi / 2), (0.5, 2 * np.pi / 3))))
    assert d == pytest.approx(want)


def _piece(*voices):
    """A (1, voices, steps) grid from per-voice lists of (pitch, 16ths); pitch -1 = rest."""
    rows = [[p for p, n in voice for _ in range(n)] for voice in voices]
    return np.array([rows])


def test_in_scale_weighs_by_duration():
    # C held 14 steps, then C# and D one step each: no major scale holds three semitones in a row,
    # and the best ones (C major, C# major) hold 15 of the 16 sounding steps
    g = _piece([(60, 14), (61, 1), (62, 1)])
    assert CM.in_scale(g) == pytest.approx(15 / 16)


def test_chord_rate_counts_triads_and_dominant_sevenths_among_three_voice_sonorities():
    g = _piece([(72, 4), (71, 4), (72, 4), (74, 4)],     # S: C  B  C  D
               [(67, 4), (65, 4), (64, 4), (65, 4)],     # A: G  F  E  F
               [(64, 4), (62, 4), (55, 4), (59, 4)],     # T: E  D  G  B
               [(48, 4), (55, 4), (48, 4), (-1, 4)])     # B: C  G  C  rest
    # C major triad; G7 (G B D F); C major (doubled C); D-F-B: a diminished triad, not counted
    assert CM.chord_rate(g) == pytest.approx(3 / 4)
    two_voices = _piece([(60, 4)], [(64, 4)], [(-1, 4)], [(-1, 4)])
    assert CM.chord_rate(two_voices) == 0.0              # no sonority of 3+ voices at all


def test_stepwise_and_leap_rates_merge_held_notes_and_skip_rests():
    g = _piece([(60, 4), (62, 4), (-1, 2), (64, 2), (79, 4)])   # C-D step, D-E step over a rest, E-G5 leap of 15
    assert CM.stepwise_rate(g) == pytest.approx(2 / 3)
    assert CM.leap_rate(g) == pytest.approx(1 / 3)
    assert CM.stepwise_rate(_piece([(60, 16)])) == 0.0 and CM.leap_rate(_piece([(60, 16)])) == 0.0   # no motion


def test_satb_order_needs_falling_mean_pitches_in_every_voice():
    good = _piece([(72, 4)], [(67, 4)], [(64, 4)], [(48, 4)])
    swapped = _piece([(60, 4)], [(67, 4)], [(64, 4)], [(48, 4)])
    silent_bass = _piece([(72, 4)], [(67, 4)], [(64, 4)], [(-1, 4)])
    assert CM.satb_order_rate(np.concatenate([good, swapped, silent_bass])) == pytest.approx(1 / 3)


def test_near_duplicates_and_copy_check():
    rng = np.random.default_rng(0)
    pieces = rng.integers(40, 80, size=(4, 4, 32))
    twin = pieces[0].copy()
    twin[:, :8] = REST                                   # 25 % of cells differ from piece 0: a near-duplicate
    g = np.concatenate([pieces, twin[None]])
    assert CM.hamming(g[:1], g[4:])[0, 0] == pytest.approx(0.25)
    assert CM.near_duplicate_rate(g) == pytest.approx(1 / 10)   # 1 of the 10 pairs
    # a generated piece that is a training window moved up a tone is a copy; fresh random music is not
    moved = np.where(pieces[1] != REST, pieces[1] + 2, REST)[None]
    check = CM.copy_check(generated=moved, held_out=rng.integers(40, 80, size=(2, 4, 32)), train=pieces)
    assert check["copy_median_generated"] == 0.0 and check["copy_median_heldout"] > 0.5


def test_distance_to_data_is_zero_only_for_a_match():
    data = {k: 0.5 for k in CM.DISTANCE_METRICS}
    assert CM.distance_to_data(dict(data), data) == 0.0
    assert CM.distance_to_data({**data, "chord_rate": 0.25}, data) == pytest.approx(0.5 / len(data))


# --- training end to end ---------------------------------------------------------------------------

def test_train_a_tiny_model_end_to_end(tmp_path):
    import zoo
    from zoo.train import train

    data = write_jsb(tmp_path / "jsb.npz")
    values = dict(steps=2, batch_size=4, eval_samples=8, metrics_every=1, **TINY)
    final = train("musegan", out=tmp_path / "run", data=str(data), values=values, device="cpu")
    names = {p.name for p in final.iterdir()}
    assert {"config.json", "model.safetensors", "critic.safetensors", "tokenizer.json", "README.md"} <= names
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2]
    assert {"critic_loss", "gen_loss", "gp", "wasserstein"} <= set(lines[-1])
    card = (final / "README.md").read_text()
    assert "| metric | generated | test data |" in card and "in_scale" in card and "Differences from the book" in card
    model = zoo.load(str(final), device="cpu")
    assert not model.generator.training
    a = model.generate(num=2, seed=3)
    b = zoo.load(str(final), device="cpu").generate(num=2, seed=3)
    assert [[(n.pitch, n.start) for n in i.notes] for i in a[1].instruments] == \
        [[(n.pitch, n.start) for n in i.notes] for i in b[1].instruments]
    # resume continues from the checkpoint written at the end, with the critic restored
    final2 = train("musegan", out=tmp_path / "run", data=str(data), values={"steps": 3}, resume=True, device="cpu")
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
    assert final2 == final


# --- the shipped weights ---------------------------------------------------------------------------

def test_shipped_musegan_bach(tmp_path, zoo_cli):
    import zoo

    model = zoo.load("musegan-bach", device="cpu")
    assert model.arch == "musegan"
    midis = model.generate(num=2, seed=0)
    assert [i.name for i in midis[0].instruments] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert sum(len(i.notes) for i in midis[0].instruments) > 4
    card = (SHIPPED / "README.md").read_text()
    assert "Training time" in card and "| metric | generated | test data |" in card
    out = tmp_path / "x.mid"
    r = zoo_cli("generate", "musegan-bach", "-o", out, "--num", "2", "--seed", "7", "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x-1.mid").is_file() and (tmp_path / "x-2.mid").is_file()

def test_the_musegan_bach_preset_builds_the_shipped_model():
    """(`zoo train musegan` without a config built the book's 8 M-parameter model and configs/ had no MuseGAN
    preset.) configs/musegan_bach.json is the shipped model's config, and its training keys are valid."""
    import zoo
    from zoo.config import config_from_dict
    from zoo.train import read_config_file, split_overrides
    from zoo_musegan.train import MuseGANTrainer

    values = read_config_file(REPO / "configs" / "musegan_bach.json")
    model_values, train_values = split_overrides(values, MuseGAN, MuseGANTrainer)
    shipped = json.loads((SHIPPED / "config.json").read_text())["config"]   # it may name removed keys at their off values
    assert config_from_dict(MuseGANConfig, model_values) == config_from_dict(MuseGANConfig, shipped)
    train_config = config_from_dict(MuseGANTrainer.config_class, {**MuseGANTrainer.defaults, **train_values})
    assert (train_config.batch_size, train_config.n_critic, train_config.transpose) == (64, 5, 6)
    with torch.device("meta"):
        preset = zoo.create("musegan", **model_values)
        book = zoo.create("musegan")
    assert preset.num_parameters() == zoo.load("musegan-bach", device="cpu").num_parameters() < book.num_parameters() / 10


def test_from_pretrained_takes_a_registered_name_as_zoo_load_does():
    """(MuseGAN.from_pretrained("musegan-bach") raised a raw FileNotFoundError: it took the name for a folder.)"""
    import zoo
    from zoo.errors import CheckpointError

    model = MuseGAN.from_pretrained("musegan-bach", device="cpu")
    assert isinstance(model, MuseGAN) and model.generate(num=1, seed=0)[0].instruments
    loaded = zoo.load("musegan-bach", device="cpu")
    for part in ("generator_ema", "critic"):   # the folder's files (it has no trained generator.safetensors)
        ours, theirs = getattr(model, part).state_dict(), getattr(loaded, part).state_dict()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    with pytest.raises(CheckpointError, match="holds a 'music-transformer' model, not 'musegan'"):
        MuseGAN.from_pretrained("music-transformer-classical")


def test_piece_k_of_a_batch_is_seed_plus_k_alone():
    torch.manual_seed(0)
    for output in ("linear", "onehot", "gumbel"):
        model = MuseGAN(MuseGANConfig(output=output, **TINY))
        for m in model.generator_ema.modules():   # unit BN scales, as a trained model has, so the noise shows
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                torch.nn.init.ones_(m.weight)
        batch = model.sample(4, seed=7)
        assert_same_math(model.sample(1, seed=9)[0], batch[2])   # another batch size may take another kernel path
        if output != "onehot":   # an untrained net's largest logits hardly move with the noise
            assert not torch.equal(batch[0], batch[1])


def test_the_split_of_every_piece_is_what_musegan_bach_was_trained_with():
    """zoo.data.split_of with this plugin's arguments gives exactly the crc32 split the plugin had its own copy of
    when musegan-bach was trained, so the same chorales stay held out."""
    import zlib

    def before(key):   # the plugin's split_of until it moved to zoo.data
        bucket = zlib.crc32(key.encode("utf-8", "surrogateescape")) % 10
        return "test" if bucket == 0 else "valid" if bucket == 1 else "train"

    keys = [f"bwv{n}" for n in range(1, 1500)] + ["bach/bwv66.6", "sub/dir/x.mid", "caf\udce9.mid", ""]
    assert [mdata.split_of(k) for k in keys] == [before(k) for k in keys]
    assert {mdata.split_of(k) for k in keys} == {"train", "valid", "test"}


def test_zoo_eval_gets_the_chorale_rows_and_the_test_split_from_the_model(monkeypatch):
    """music_metrics of decoded pieces are all_metrics of their grids (the rows `zoo eval` adds), and the
    registered dataset builder serves the test windows without a Trainer."""
    model = MuseGAN(MuseGANConfig(**TINY))
    rolls = model.sample(3, seed=0)
    grids = model.tokenizer.roll_to_grid(rolls).reshape(4, 3, -1).transpose(1, 0, 2)
    pieces = [model.tokenizer.decode(r) for r in rolls]
    got, want = model.music_metrics(pieces), all_metrics(grids, 16)
    assert got.keys() == want.keys()
    assert [got[k] for k in want] == pytest.approx([want[k] for k in want], nan_ok=True)
    assert model.music_metrics([]) == {}

    windows = np.full((2, 4, 32), 60, dtype=np.int16)
    fake = mdata.WindowData({"train": windows, "valid": windows[:0], "test": windows}, stats={"source": "fake"})
    import zoo_musegan.data

    monkeypatch.setattr(zoo_musegan.data, "load_data", lambda source, **grid: fake)   # what the builder reads
    split = zoo_musegan.data.build_dataset(None, "test", model)
    assert len(split) == 2 and np.array_equal(split.grids, windows)
    fake.splits["test"] = windows[:0]
    with pytest.raises(DataError, match="no test windows"):
        zoo_musegan.data.build_dataset(None, "test", model)


def test_generating_neither_reads_nor_allocates_the_critic():
    """zoo generate loads with generate_only: the critic stays on the meta device, and the music is the same."""
    from zoo.loader import load_model, resolve

    folder = resolve("musegan-bach")
    for_generate, full = load_model(folder, device="cpu", generate_only=True), load_model(folder, device="cpu")
    assert all(p.is_meta for p in for_generate.critic.parameters())
    assert not any(p.is_meta for p in full.critic.parameters()) and for_generate.device.type == "cpu"
    a, b = for_generate.generate(num=2, seed=3), full.generate(num=2, seed=3)
    assert [[(n.pitch, n.start) for i in m.instruments for n in i.notes] for m in a] == \
        [[(n.pitch, n.start) for i in m.instruments for n in i.notes] for m in b]


def test_the_shipped_weights_play_the_music_they_played_before_the_rewrite():
    """musegan-bach through zoo.load and the rewritten layers (modules, bars folded, patch matmuls) plays, for seed 11,
    the notes that the fused code before it played (musegan_bach_seed11.json, recorded from that code at 81e1e51;
    the release of 2026-12-02, 100 steps further, plays the same notes, and its logit sums were recorded again).
    The logits are compared to fp32 rounding: four sums of 10,880 logits each (|logit| <= 30) move by about
    sqrt(10,880) * 30 * 2**-24 ~ 2e-4 when only the order of the products changes; 0.05 leaves 250x room, while a
    wrong layout or a missed batch-norm moves them by hundreds."""
    import zoo

    want = json.loads((Path(__file__).with_name("musegan_bach_seed11.json")).read_text())
    model = zoo.load("musegan-bach", device="cpu")
    rolls = model.sample(want["num"], seed=want["seed"])
    assert model.tokenizer.roll_to_grid(rolls).tolist() == want["grid"]
    gens = [torch.Generator().manual_seed(want["seed"] + k) for k in range(want["num"])]
    noise = [torch.cat(parts) for parts in zip(*[model.sample_noise(1, g) for g in gens])]
    with torch.no_grad():
        logits = model(*noise)
    torch.testing.assert_close(logits.sum(dim=(1, 2, 3, 4)), torch.tensor(want["logit_sums"]), rtol=0, atol=0.05)


def test_zoo_info_and_the_card_count_the_same_parameters(tmp_path):
    """A folder saved with the trained generator beside its moving average: `zoo info` counts what the card counts,
    the tensors of every state file (the average is a file of its own), and lists each file's part."""
    import re

    import zoo

    model = MuseGAN(MuseGANConfig(**TINY))
    folder = model.save_pretrained(tmp_path / "m")
    facts = zoo.info(str(folder))
    by_file = facts["parameters_by_file"]
    assert set(by_file) == {"model", "critic", "generator"} and by_file["model"] == by_file["generator"]
    card = re.search(r"([\d,]+) parameters", (folder / "README.md").read_text())
    assert facts["parameters"] == sum(by_file.values()) == int(card[1].replace(",", ""))
