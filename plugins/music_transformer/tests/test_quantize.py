"""generate(quantize=...): int8 decoding (quantize.py) against exact fp32, the option's checks and its default."""

from __future__ import annotations

import pytest
import torch

from zoo.errors import ConfigError
from zoo_music_transformer import quantize as Q
from zoo_music_transformer.model import CachedDecoder, MusicTransformer

import music_transformer_tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_int8 = pytest.mark.skipif(not Q.int8_kernels(), reason="int8 decoding runs on x86 CPUs (fbgemm)")


def tiny(attention: str = "relative") -> MusicTransformer:
    return music_transformer_tiny.tiny(attention, block_size=64, n_embd=64)


@pytest.fixture
def without_amx(monkeypatch):
    """An x86 CPU without AMX, as the default sees it."""
    monkeypatch.setattr(Q, "cpu_bf16_pays", lambda: (False, "fp32"))
    monkeypatch.setattr(Q, "int8_kernels", lambda: True)
    monkeypatch.setattr(Q, "_said", set())


@pytest.fixture
def with_amx(monkeypatch):
    from zoo_music_transformer import decode

    monkeypatch.setattr(Q, "cpu_bf16_pays", lambda: (True, "bf16"))
    monkeypatch.setattr(decode, "cpu_bf16_pays", lambda: (True, "bf16"))
    monkeypatch.setattr(Q, "_said", set())


def relative_error(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    """Relative L2 error of each position's logits."""
    return (got - want).norm(dim=-1) / want.norm(dim=-1)


@needs_int8
@pytest.mark.parametrize("attention", ["absolute", "relative"])
def test_int8_logits_agree_with_fp32_within_int8_rounding(attention):
    """Why these bounds: each int8 product rounds its weights to 1/127 of a row's largest |w| and its inputs to
    1/127 of the tensor's range (fbgemm keeps 7 bits of activations on x86); a rounding error is uniform over a
    step, so an output carries ~1 % (weights) + ~1.5 % (inputs) relative error, and the 2 layers' 4 products
    and the head compound it to a few %. The shipped model measured 1.3-2.4 % (median) and 98-99.6 % top-1
    agreement (README). Half a percent of top-1 flips per percent of error is expected where margins are
    small; a wrong layer or a lost bias gives errors of tens of % and agreement near chance (1/388)."""
    model = tiny(attention)
    x = torch.randint(0, 388, (4, 48))
    with torch.no_grad():
        want = model(x)
        got = Q.int8_copy(model)(x)
    err = relative_error(got, want)
    assert err.median() < 0.05 and err.max() < 0.1, err
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.9
    assert err.median() > 1e-4, "the copy must really be int8: fp32 would agree to rounding"


@needs_int8
def test_int8_one_token_steps_agree_with_fp32_and_the_model_itself_is_untouched():
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randint(0, 388, (2, 40))
    logits = []
    for net in (model, Q.int8_copy(model)):
        dec = CachedDecoder(net, 2)
        with torch.no_grad():
            logits.append(torch.stack([dec.fill(x[:, :8])] + [dec.step(x[:, i]) for i in range(8, 39)], 1))
    err = relative_error(logits[1], logits[0])
    assert err.median() < 0.05 and (logits[1].argmax(-1) == logits[0].argmax(-1)).float().mean() >= 0.9
    # generation only: the model keeps its fp32 nn.Linear layers and weights (training, saving, NLL use them)
    assert all(type(m) is torch.nn.Linear for m in model.modules() if "Linear" in type(m).__name__)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@needs_int8
def test_the_int8_copy_is_made_again_when_the_weights_change():
    model = tiny()
    first = Q.int8_copy(model)
    assert Q.int8_copy(model) is first   # made once per model, not per generate()
    x = torch.randint(0, 388, (1, 16))
    with torch.no_grad():
        model.lm_head.weight.mul_(-1)    # an optimizer step changes weights in place
        again = Q.int8_copy(model)
        assert again is not first
        assert (again(x).argmax(-1) == model(x).argmax(-1)).float().mean() >= 0.9


@needs_int8
def test_generate_with_int8_decodes_through_the_int8_copy(monkeypatch):
    model = tiny()
    made = []
    real = Q.int8_copy
    monkeypatch.setattr(Q, "int8_copy", lambda m: made.append(m) or real(m))
    pieces = model.generate(num=2, seed=3, length=80, quantize="int8")   # 80 > block_size 64: the window slides
    assert made == [model] and len(pieces) == 2 and all(p.instruments[0].notes for p in pieces)
    model.generate(num=1, seed=3, length=8, quantize="none")
    assert made == [model], "none decodes in exact fp32"


def test_quantize_is_checked_before_any_work(zoo_cli, tmp_path):
    from zoo.cli import model_options

    assert model_options(MusicTransformer, ["--quantize", "int8"]) == {"quantize": "int8"}
    with pytest.raises(ConfigError, match="quantize must be one of auto, int8, none, got 'int4'"):
        model_options(MusicTransformer, ["--quantize", "int4"])
    with pytest.raises(ConfigError, match="quantize must be one of auto, int8, none"):
        tiny().generate(quantize="fp16")
    done = zoo_cli("generate", "music-transformer-classical", "--quantize", "int4", "-o", "x.mid", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "quantize must be one of auto, int8, none" in done.stderr and not (tmp_path / "x.mid").exists()


def test_int8_is_refused_where_it_cannot_run(monkeypatch):
    model = tiny()
    with pytest.raises(ConfigError, match="do not combine"):
        model.generate(quantize="int8", compile=True, length=4)
    with pytest.raises(ConfigError, match="leave out --dtype"):
        tiny().to(torch.bfloat16).generate(quantize="int8", length=4)
    monkeypatch.setattr(Q, "int8_kernels", lambda: False)
    with pytest.raises(ConfigError, match="x86 CPU"):
        model.generate(quantize="int8", length=4)


def test_auto_is_int8_on_a_cpu_without_amx_and_fp32_elsewhere(without_amx, monkeypatch):
    cpu, fp32 = torch.device("cpu"), torch.float32
    precision, note = Q.choose("auto", cpu, fp32, compile=False)
    assert precision == "int8" and "no AMX" in note
    assert Q.choose("none", cpu, fp32, compile=False)[0] == "none"
    assert Q.choose("auto", cpu, fp32, compile=True)[0] == "none"            # --compile: the compiled fp32 step
    assert Q.choose("auto", cpu, torch.bfloat16, compile=False)[0] == "none"  # --dtype bf16 stays bf16
    assert Q.choose("auto", torch.device("cuda"), fp32, compile=False)[0] == "none"
    monkeypatch.setattr(Q, "cpu_bf16_pays", lambda: (True, "bf16"))
    assert Q.choose("auto", cpu, fp32, compile=False)[0] == "none"            # AMX: fp32 eager or compiled bf16


@needs_int8
def test_the_default_says_in_one_line_that_it_decodes_int8(without_amx, monkeypatch, capsys):
    model = tiny()
    made = []
    real = Q.int8_copy
    monkeypatch.setattr(Q, "int8_copy", lambda m: made.append(m) or real(m))
    model.generate(length=4, seed=0)
    model.generate(length=4, seed=1)
    err = capsys.readouterr().err
    assert made == [model, model]
    assert err.count("\n") == 1 and "decoding int8, not compiled" in err and "--quantize none" in err, err


def test_the_default_on_amx_decodes_fp32_without_compiling_a_short_run(with_amx, monkeypatch, capsys):
    from zoo_music_transformer import decode

    def no_compile(*args, **kwargs):
        raise AssertionError("a short run must not compile")

    monkeypatch.setattr(decode, "CompiledDecoder", no_compile)
    monkeypatch.setattr(Q, "int8_copy", no_compile)
    tiny().generate(length=16, seed=0)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "decoding fp32, not compiled" in err and "pays back only after" in err, err


@needs_int8
def test_zoo_eval_quantize_reaches_the_continuation_metrics(monkeypatch):
    import numpy as np

    from zoo.config import config_from_dict
    from zoo_music_transformer import tokenizer as T
    from zoo_music_transformer.train import MusicTransformerTrainConfig, MusicTransformerTrainer

    model = tiny()
    pieces = [T.notes_to_tokens(np.array([(0.25 * i, 0.25 * i + 0.2, 60 + i % 12, 64) for i in range(80)]))]
    config = config_from_dict(MusicTransformerTrainConfig, {"eval_samples": 2, "eval_prompt": 40, "eval_new": 8})
    trainer = MusicTransformerTrainer(model, config, device="cpu")
    made = []
    real = Q.int8_copy
    monkeypatch.setattr(Q, "int8_copy", lambda m: made.append(m) or real(m))
    trainer.generate_options = {"quantize": "int8"}   # what `zoo eval --quantize int8` sets
    trainer.continuation_metrics(pieces)
    assert made == [model]
    trainer.generate_options = {"quantize": "none"}
    trainer.continuation_metrics(pieces)
    assert made == [model]
