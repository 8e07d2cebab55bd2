"""generate(compile=True): the static-cache decoding step (decode.py), eager and through torch.compile.

The step's math is checked eagerly for both attentions, in fp32 and bf16 (fast). torch.compile (inductor,
max-autotune) costs 10-30 s per compile of a tiny model on one CPU thread: the default suite compiles
the shipped model's attention only; `pytest -m slow` adds absolute positions and the compiled bf16 step.
"""

from __future__ import annotations

import types

import pytest
import torch

from zoo.device import cpu_bf16_pays
from zoo_music_transformer import decode
from zoo_music_transformer.model import KVCache, MusicTransformer, MusicTransformerConfig

from music_transformer_tiny import tiny

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ATTENTION = ["absolute", "relative"]
needs_bf16 = pytest.mark.skipif(not cpu_bf16_pays()[0], reason="bf16 decoding is used only on CPUs with AMX")


@pytest.fixture
def eager_static(monkeypatch):
    """The static-cache step without torch.compile, in fp32: the decoder's own math, in milliseconds."""
    monkeypatch.setattr(decode, "compiled_step", lambda: decode.step)
    monkeypatch.setattr(decode, "decode_dtype", lambda device: torch.float32)


def static_logits(model, x, prompt: int, needed: int | None = None):
    """Logits of positions prompt-1 .. T-2 of x through a CompiledDecoder: the prompt filled, then one token a step."""
    dec = decode.CompiledDecoder(model, x.size(0), needed=needed or x.size(1))
    with torch.no_grad():
        steps = [dec.fill(x[:, :prompt])] + [dec.step(x[:, i]) for i in range(prompt, x.size(1) - 1)]
    return torch.stack(steps, 1)


def test_cache_size_is_a_power_of_two_within_the_block():
    assert decode.cache_size(2048, 1) == 64 and decode.cache_size(2048, 64) == 64
    assert decode.cache_size(2048, 65) == 128 and decode.cache_size(2048, 511) == 512
    assert decode.cache_size(2048, 5000) == 2048 and decode.cache_size(48, 40) == 48


@pytest.mark.parametrize("attention", ATTENTION)
def test_static_step_gives_the_logits_of_a_full_forward(attention, eager_static):
    model = tiny(attention)
    x = torch.randint(0, 388, (3, 30))
    with torch.no_grad():
        full = model(x)[:, 8:29]
    # needed 30 -> a 32-position cache: the two unwritten slots must be masked, whatever they hold
    got = static_logits(model, x, prompt=9)
    # the same fp32 math in other shapes (a masked full-cache attention instead of a slice): rounding of
    # ~sqrt(n_embd) * 2**-24 of the logits' scale; 1e-4 of the scale leaves >100x room, while a wrong
    # position, mask or cache slot moves logits by O(1)
    torch.testing.assert_close(got, full, rtol=0, atol=1e-4 * float(full.abs().max()))


@pytest.mark.parametrize("attention", ATTENTION)
def test_static_decoding_samples_the_eager_tokens_also_past_block_size(attention, eager_static):
    model = tiny(attention)
    prompt = torch.randint(0, 388, (2, 5))
    for kw in (dict(temperature=0), dict(temperature=0.9, top_k=40, top_p=0.95)):
        # 70 new tokens > block_size 32: the context slides twice (a refill of the newest 3/4 block each time)
        ours = model.generate_tokens(prompt, 70, generator=torch.Generator().manual_seed(1), compile=True, **kw)
        eager = model.generate_tokens(prompt, 70, generator=torch.Generator().manual_seed(1), **kw)
        # logits agree to fp32 rounding (previous test): a token could change only on a near-tie, and
        # the greedy margins here are O(0.1) against rounding of O(1e-6)
        assert torch.equal(ours, eager), kw


def test_a_static_cache_too_small_is_refused_before_it_is_overrun(eager_static):
    model = tiny("absolute")
    dec = decode.CompiledDecoder(model, 1, needed=3)   # 64 positions, more than block_size 32 -> 32
    assert dec.cache.size == 32
    dec.fill(torch.zeros(1, 32, dtype=torch.long))
    with pytest.raises(RuntimeError, match="full"):
        dec.step(torch.zeros(1, dtype=torch.long))


def test_compile_is_a_generate_flag_whose_help_states_the_cost():
    from zoo.cli import model_options

    assert model_options(MusicTransformer, ["--compile"]) == {"compile": True}
    assert model_options(MusicTransformer, ["--no-compile"]) == {"compile": False}
    option = next(o for o in MusicTransformer.generate_options if o.name == "compile")
    assert option.default is None and "20-90 s" in option.help   # None: decided per run (compile_pays)


@pytest.mark.parametrize("amx", [True, False])
def test_the_default_compiles_only_runs_long_enough_to_pay_the_compile_back(amx, monkeypatch):
    monkeypatch.setattr(decode, "cpu_bf16_pays", lambda: (amx, ""))
    book = MusicTransformer(MusicTransformerConfig())
    shipped = MusicTransformer(MusicTransformerConfig(block_size=512, n_layer=4, n_head=4, n_embd=256,
                                                      attention="relative"))
    # `zoo generate music-transformer-classical --length 1024`, and the book at its whole block: never compiled
    assert not decode.compile_pays(shipped, 1, 1024, int8=False)[0]
    assert not decode.compile_pays(shipped, 8, 1024, int8=False)[0]
    assert not decode.compile_pays(book, 1, 2048, int8=False)[0]
    pays, why = decode.compile_pays(book, 1, 1024, int8=False)
    assert not pays and "pays back only after about" in why
    # very long runs of the book's size pay it back; where int8 decodes, or on a GPU, nothing is compiled
    assert decode.compile_pays(book, 8, 50_000, int8=False)[0]
    assert not decode.compile_pays(book, 8, 50_000, int8=True)[0]
    on_gpu = types.SimpleNamespace(device=torch.device("cuda"), config=book.config)   # what compile_pays reads
    assert not decode.compile_pays(on_gpu, 8, 50_000, int8=False)[0]


def test_a_model_loaded_in_bf16_decodes_in_bf16(eager_static):
    model = tiny("relative").to(torch.bfloat16)
    dec = decode.CompiledDecoder(model, 2, needed=20)
    assert dec.cache.k[0].dtype == torch.bfloat16 and not dec.autocast
    out = model.generate_tokens(torch.randint(0, 388, (2, 5)), 40, generator=torch.Generator().manual_seed(0),
                                compile=True)
    assert out.shape == (2, 40) and ((out >= 0) & (out < 388)).all()   # PAD/EOS never sampled


@needs_bf16
@pytest.mark.parametrize("attention", ATTENTION)
def test_bf16_static_step_stays_close_to_fp32(attention, monkeypatch):
    monkeypatch.setattr(decode, "compiled_step", lambda: decode.step)   # eager; the compiled one is tested below
    check_bf16_logits(tiny(attention, block_size=64, n_embd=64))


def check_bf16_logits(model):
    """bf16 (prefill under autocast, cache and step in bf16) against fp32 full-forward logits.

    bf16 keeps 8 significant bits: each rounding is within 2**-9 ~ 2e-3 relative. The logits come
    through ~15 rounded products and the bf16 cache (2 layers here, 6 in the book) whose errors add
    like a random walk: ~2e-3 * sqrt(15) ~ 8e-3 of the logits' L2 norm, and we measured 3.2e-3 to
    4.2e-3 on this model. 3e-2 leaves ~4x room over that estimate, while a wrong position, mask or
    cache slot moves the logits by O(1). Top-1: a bf16 error flips the argmax only where the top two
    logits lie within ~1e-2 of each other, measured on 97-100 % of positions agreeing; 90 % leaves room.
    """
    assert decode.decode_dtype(torch.device("cpu")) == torch.bfloat16
    x = torch.randint(0, 388, (4, 60))
    with torch.no_grad():
        full = model(x)[:, 19:59]
    got = static_logits(model, x, prompt=20)
    assert got.dtype == torch.float32
    rel = float((got - full).norm() / full.norm())
    top1 = float((got.argmax(-1) == full.argmax(-1)).float().mean())
    assert rel < 3e-2 and top1 >= 0.9, (rel, top1)


# --------------------------------------------------------------------------- through torch.compile

def check_compiled_greedy_fp32(attention, monkeypatch, weights_change=False):
    monkeypatch.setattr(decode, "decode_dtype", lambda device: torch.float32)   # as on a CPU without AMX
    model = tiny(attention)
    prompt = torch.randint(0, 388, (2, 5))
    # 40 new tokens > block_size 32: one slide, refilled by the eager forward into the compiled step's cache.
    # Inductor sums in its own order: logits differ by fp32 rounding (~1e-6), greedy margins are O(0.1)
    kw = dict(temperature=0)
    assert torch.equal(model.generate_tokens(prompt, 40, compile=True, **kw), model.generate_tokens(prompt, 40, **kw))
    if weights_change:
        # weights changed in place after compiling (training, load_state_dict): the frozen copy must not be used
        with torch.no_grad():
            model.lm_head.weight.mul_(-1.0)
        assert torch.equal(model.generate_tokens(prompt, 40, compile=True, **kw),
                           model.generate_tokens(prompt, 40, **kw))


def test_compiled_greedy_fp32_decoding_equals_the_eager_path(monkeypatch):
    """The one compiled test of the default suite (two compiles of a tiny model): the shipped model's attention."""
    check_compiled_greedy_fp32("relative", monkeypatch, weights_change=True)


@pytest.mark.slow
def test_compiled_greedy_fp32_decoding_with_absolute_positions(monkeypatch):
    check_compiled_greedy_fp32("absolute", monkeypatch)


@pytest.mark.slow
@needs_bf16
def test_compiled_bf16_step_stays_close_to_fp32():
    check_bf16_logits(tiny("relative", block_size=64, n_embd=64))   # the shipped model's attention
