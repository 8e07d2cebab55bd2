"""Compiled decoding for `generate(compile=True)`: one token per call against a static KV cache.

The eager decoder (model.CachedDecoder) attends to a cache slice that grows by one position per
token, so every step has new shapes. Here every step has the same: the cache has a fixed length,
the new keys/values are written in place at a position *tensor* (`index_put_`), and a mask hides
the positions not yet written. torch.compile (inductor, max-autotune, freezing: the weights become
constants it can pre-pack) then compiles the step once per batch size and cache length.
Measured on one CPU thread (book config, 256 + 256 tokens): eager bf16 gains nothing at batch 1;
with AMX the compiled bf16 step decodes ~2.5x faster than the eager fp32 path at batch 1 and ~2.7x
at batch 8, after 19-50 s of compiling per batch shape. Without AMX (an AMD EPYC) the compiled fp32
step is ~1.5x eager, slower than int8 decoding (quantize.py), and its first compile took 86 s, 26 s
again from inductor's on-disk caches (freezing keeps the FX graph itself out of them).
`generate(compile=None)`, the default, compiles only where compile_pays() says the run repays it.

The prompt (and the context rebuilt when a generation slides past block_size) is filled by the
model's ordinary forward into the same cache, so sampling and sliding are model.generate_tokens'.
"""

from __future__ import annotations

import warnings
import weakref

import torch
from torch.nn import functional as F

from zoo.device import cpu_bf16_pays
from zoo.errors import ConfigError

from .model import KVCache

MIN_CACHE = 64   # the smallest static cache: tiny generations share one compiled shape

# What compiling saves a decoding step and what the compile costs, measured on one CPU thread with the
# book config (eager fp32 against the compiled step): seconds saved per step at batch 1 and at batch 8,
# and the compile from a cold cache (the slow end measured). The smaller savings measured are kept,
# so that the default errs towards not compiling.
COMPILE_GAIN = {
    "amx": (0.0094, 0.023, 50.0),      # Intel Xeon with AMX, compiled bf16 (docs/benchmarks.md): compile 19-50 s
    "no-amx": (0.0060, 0.010, 90.0),   # AMD EPYC, compiled fp32 (issue #32, quiet): compile 57-88 s
}
BOOK_WEIGHTS = 12 * 6 * 512 ** 2 + 512 * 390   # the matrix weights one step of the book config reads


def compile_pays(model, batch: int, steps: int, int8: bool) -> tuple[bool, str]:
    """Whether compiling the decoding step pays for `steps` steps of `batch` sequences, and why in a few words.

    A step is memory-bound, so what compiling saves is scaled from the book config's measured saving by
    the model's matrix weights (each step reads them once); it pays when the steps save more than the
    compile costs. Never on a GPU (not measured) nor where int8 decoding runs (`int8`: eager int8 beat
    the compiled fp32 step on a CPU without AMX, with no compile to wait for)."""
    if model.device.type != "cpu":
        return False, ""
    if int8:
        return False, ""   # quantize.choose says why
    at_1, at_8, compile_s = COMPILE_GAIN["amx" if cpu_bf16_pays()[0] else "no-amx"]
    cfg = model.config
    scale = (12 * cfg.n_layer * cfg.n_embd ** 2 + cfg.n_embd * cfg.vocab_size) / BOOK_WEIGHTS
    saved = scale * (at_1 + (at_8 - at_1) * (batch - 1) / 7)   # linear in the batch, as measured at 1 and 8
    pays_after = compile_s / saved
    about = f"about {float(f'{pays_after:.2g}'):,.0f} steps at batch {batch}"   # two figures: an estimate
    if steps >= pays_after:
        return True, f"{steps:,} steps pay back a compile of up to {compile_s:.0f} s (from {about})"
    return False, f"a compile of up to {compile_s:.0f} s pays back only after {about}"


def decode_dtype(device: torch.device) -> torch.dtype:
    """bf16 on a CPU where it pays (AMX, zoo.device.cpu_bf16_pays), fp32 elsewhere: without AMX bf16
    matrix products are slower than fp32 on a CPU; on a GPU fp32 keeps the samples of the eager path."""
    if device.type == "cpu" and cpu_bf16_pays()[0]:
        return torch.bfloat16
    return torch.float32


def cache_size(block_size: int, needed: int) -> int:
    """Positions of the static cache: the next power of two >= needed (at least MIN_CACHE), at most
    block_size. Every step reads the whole cache, so it should not be much longer than needed; powers
    of two keep the number of distinct shapes (each a fresh compile) small."""
    size = MIN_CACHE
    while size < needed:
        size *= 2
    return min(size, block_size)


def attend(attn, x: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """One layer's attention for one new token per sequence: x (B, 1, C) at position pos (a 1-element
    long tensor); its key/value are written into the caches (B, H, S, D) in place."""
    B, T, C = x.shape
    q, k, v = attn.c_attn(x).split(C, dim=2)
    q, k, v = (t.view(B, T, attn.n_head, C // attn.n_head).transpose(1, 2) for t in (q, k, v))
    # indexing by a position tensor is aten.index_put_: one slot written in place, one graph for every position
    k_cache[:, :, pos] = k.to(k_cache.dtype)
    v_cache[:, :, pos] = v.to(v_cache.dtype)
    S = k_cache.size(2)
    kpos = torch.arange(S, device=x.device)
    written = kpos <= pos                                  # (S,): the positions filled so far
    q = q.to(k_cache.dtype)
    if attn.rel is not None:
        # relative logits against every cached key: key j is at distance pos - j; the last S rows of
        # rel hold distances S-1..0 (the eager path's gather, with a fixed shape)
        qe = q @ attn.rel[:, -S:].transpose(1, 2).to(q.dtype).unsqueeze(0)        # (B, H, 1, S)
        index = (S - 1 - pos + kpos).clamp(0, S - 1)     # keys not yet written get a valid index; masked
        bias = qe.gather(-1, index.view(1, 1, 1, S).expand(B, attn.n_head, 1, S)).float() * (q.size(-1) ** -0.5)
        mask = bias.masked_fill(~written, -float("inf")).to(q.dtype)
    else:
        mask = written.view(1, 1, 1, S)
    y = F.scaled_dot_product_attention(q, k_cache, v_cache, attn_mask=mask)
    y = y.transpose(1, 2).reshape(B, T, C)
    return attn.c_proj(y)


def step(model, ks: list[torch.Tensor], vs: list[torch.Tensor], idx: torch.Tensor, pos: torch.Tensor,
         bf16: bool) -> torch.Tensor:
    """The whole model for one token per sequence, idx (B, 1) at position pos: logits (B, vocab) in fp32.
    bf16: under bf16 autocast (fp32 weights, bf16 cache). Eager-callable (the tests check it so);
    CompiledDecoder calls it through torch.compile."""
    with torch.autocast(idx.device.type, dtype=torch.bfloat16, enabled=bf16):
        tr = model.transformer
        x = tr.wte(idx)
        if "wpe" in tr:
            x = x + tr.wpe(pos)
        for i, block in enumerate(tr.h):
            x = x + attend(block.attn, block.ln_1(x), ks[i], vs[i], pos)
            x = x + block.mlp(block.ln_2(x))
        return model.lm_head(tr.ln_f(x))[:, -1].float()


_compiled = None
_weights_seen = weakref.WeakKeyDictionary()   # model -> its parameters' version counters when compiled


def compiled_step():
    """step() through torch.compile: static shapes (a new batch size or cache length compiles anew)."""
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(step, mode="max-autotune", dynamic=False, fullgraph=True)
    return _compiled


class CompiledDecoder:
    """model.CachedDecoder's interface (fill, step, length) over a static cache and a compiled step."""

    def __init__(self, model, batch: int, needed: int):
        device = model.device
        if device.type not in ("cpu", "cuda"):
            raise ConfigError(f"--compile runs on a CPU or CUDA, not {device.type}; leave it out there")
        self.model = model
        weights = next(model.parameters()).dtype
        # fp32 weights decode in decode_dtype (bf16 through autocast); a model loaded in bf16/fp16 stays in it
        self.dtype = decode_dtype(device) if weights == torch.float32 else weights
        self.autocast = self.dtype == torch.bfloat16 and weights == torch.float32
        self.cache = KVCache(model.config, batch, device, self.dtype, size=cache_size(model.config.block_size, needed))
        self.filled = False
        self.step_fn = compiled_step()
        # freezing copies the weights into the compiled code: weights changed in place since (training,
        # load_state_dict) would go unseen, so a change of any version counter drops what was compiled
        versions = tuple(p._version for p in model.parameters())
        if _weights_seen.get(model, versions) != versions:
            torch._dynamo.reset()
        _weights_seen[model] = versions

    @property
    def length(self) -> int | None:
        return self.cache.length if self.filled else None

    def fill(self, ctx: torch.Tensor) -> torch.Tensor:
        """The context through the ordinary forward, written into the static cache from position 0."""
        self.cache.length, self.filled = 0, True
        with torch.autocast(ctx.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            return self.model(ctx, self.cache)[:, -1].float()

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cache.length >= self.cache.size:   # never by construction; a write past the end would corrupt memory
            raise RuntimeError(f"static cache of {self.cache.size} positions is full")
        pos = torch.tensor([self.cache.length], device=tokens.device)
        # compiled for fixed shapes *and strides*: a column sliced from a wider tensor would compile anew
        idx = tokens.reshape(-1, 1).clone(memory_format=torch.contiguous_format)
        # read when the step compiles (the first call of each shape): freezing, and no autotuning report on stderr
        with torch._inductor.config.patch(freezing=True, autotune_num_choices_displayed=0,
                                          max_autotune_report_choices_stats=False), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="TypedStorage is deprecated")   # inductor's own use (2.13)
            try:
                logits = self.step_fn(self.model, self.cache.k, self.cache.v, idx, pos, self.autocast)
            except torch._dynamo.exc.BackendCompilerFailed as exc:
                raise ConfigError(f"--compile failed ({str(exc).splitlines()[0][:200]}); a CPU needs a C++ "
                                  "compiler (g++); generate without --compile") from None
        self.cache.length += 1
        return logits
