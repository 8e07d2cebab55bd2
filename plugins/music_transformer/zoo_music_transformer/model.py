"""The Music Transformer of the book: a nanoGPT-style decoder over performance events.

The default config is the book's (6 layers, 8 heads, 512 wide, block 2048, ~20.4 M
parameters, learned absolute positions). `attention="relative"` swaps the absolute
positions for the relative attention of the paper (Huang et al. 2018, "Music Transformer"):
each head learns one embedding per distance, and the memory-efficient "skewing" turns
Q·Er^T into the relative logits without an L x L x D tensor. Unlike the book, generation
uses a KV cache (one token per forward instead of the whole prefix), and batches `num`
sequences together; generate(compile=True) runs a compiled static-cache step (decode.py), and
generate(quantize="int8"), the default on CPUs without AMX, decodes with int8 weights (quantize.py).
MIDI prompts, the stuck-note guard and progress live in prompt.py, which generate() calls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from zoo.errors import ConfigError
from zoo.limits import MAX_LENGTH, MAX_TOP_K, MIN_TOP_P, TEMPERATURE
from zoo.model import GenerateOption, Model

from .quantize import CHOICES as QUANTIZE_CHOICES
from .tokenizer import EOS, PAD, VOCAB_SIZE, PerformanceTokenizer


MAX_LAYERS = 1_024   # far above any music model (the book's has 6), far below what takes minutes to build


@dataclass(frozen=True)
class MusicTransformerConfig:
    """Hyper-parameters; the defaults are the book's configuration."""

    vocab_size: int = VOCAB_SIZE
    block_size: int = 2048
    n_layer: int = 6
    n_head: int = 8
    n_embd: int = 512
    mlp_ratio: int = 4
    dropout: float = 0.1
    bias: bool = True  # biases in Linear/LayerNorm (GPT-2 style); the output head never has one
    pad_id: int = PAD
    eos_id: int = EOS
    attention: str = "absolute"  # "absolute" (the book: learned position embeddings) or "relative" (the paper)

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "mlp_ratio", "pad_id", "eos_id"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < (0 if name.endswith("_id") else 1):
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.n_layer > MAX_LAYERS:   # one module per layer: 10**5 thin layers took minutes to build on meta
            raise ConfigError(f"n_layer must be 1..{MAX_LAYERS:,}, got {self.n_layer:,}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not isinstance(self.dropout, (int, float)) or isinstance(self.dropout, bool) or not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be a float in [0, 1), got {self.dropout!r}")
        if not isinstance(self.bias, bool):
            raise ConfigError(f"bias must be true or false, got {self.bias!r}")
        if self.attention not in ("absolute", "relative"):
            raise ConfigError(f"attention must be 'absolute' or 'relative', got {self.attention!r}")
        if self.block_size < 2:
            raise ConfigError(f"block_size must be at least 2, got {self.block_size}")
        for name in ("pad_id", "eos_id"):
            if getattr(self, name) >= self.vocab_size:
                raise ConfigError(f"{name} ({getattr(self, name)}) must be below vocab_size ({self.vocab_size})")


class KVCache:
    """Pre-allocated keys and values, one (B, n_head, size, head_dim) tensor per layer for each.

    One tensor per layer rather than one 5-D block: the compiled decoder (decode.py) writes a layer's
    slot in place, and a slice of a shared block made inductor copy the whole cache at every step.
    size defaults to block_size; the compiled decoder allocates only what a generation needs.
    """

    def __init__(self, config: MusicTransformerConfig, batch: int, device, dtype, size: int | None = None):
        self.size = config.block_size if size is None else size
        shape = (batch, config.n_head, self.size, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # positions filled

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor):
        """Append this step's keys/values for one layer; return the keys/values so far."""
        start, end = self.length, self.length + k.size(2)
        self.k[layer][:, :, start:end] = k
        self.v[layer][:, :, start:end] = v
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]


def skew(qe: torch.Tensor) -> torch.Tensor:
    """The paper's memory-efficient skewing: (..., L, L) logits against distances -(L-1)..0 -> (..., L, L)
    logits against keys, S[i, j] = qe[i, j - i + L - 1] for j <= i (entries above the diagonal are junk
    and must be masked). Pad one column on the left, view as (L+1, L), drop the first row."""
    *batch, L, _ = qe.shape
    padded = F.pad(qe, (1, 0))
    return padded.reshape(*batch, L + 1, L)[..., 1:, :]


def relative_logits_naive(q: torch.Tensor, rel: torch.Tensor) -> torch.Tensor:
    """The O(L^2 * D) definition, for tests: S[b, h, i, j] = q[b, h, i] . rel[h, L_max - 1 - (i - j)] for j <= i, else 0."""
    L, L_max = q.shape[-2], rel.shape[-2]
    i = torch.arange(L)[:, None]
    j = torch.arange(L)[None, :]
    dist = (i - j).clamp(min=0)
    e = rel[:, L_max - 1 - dist]                           # (H, L, L, D): one embedding per query/key pair
    out = torch.einsum("bhid,hijd->bhij", q, e)
    return out.masked_fill(j > i, 0.0)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: MusicTransformerConfig, layer: int):
        super().__init__()
        self.layer = layer
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.rel = None
        if config.attention == "relative":
            # one embedding per head and distance; row block_size-1 is distance 0, row 0 the farthest
            self.rel = nn.Parameter(torch.zeros(config.n_head, config.block_size, config.n_embd // config.n_head))

    def relative_bias(self, q: torch.Tensor, past: int) -> torch.Tensor:
        """Relative logits (B, H, T, past+T) for queries at positions past..past+T-1 and every key so far."""
        T, L = q.size(2), self.rel.size(1)
        if past == 0:  # training and prompt fill: the skewing, O(L^2) memory
            return skew(q @ self.rel[:, L - T:].transpose(1, 2).unsqueeze(0))
        # a cached prefix: gather each query's row of distances (T is 1 or small here)
        qe = q @ self.rel.transpose(1, 2).unsqueeze(0)     # (B, H, T, L): logits against every distance
        qpos = torch.arange(past, past + T, device=q.device)[:, None]
        kpos = torch.arange(past + T, device=q.device)[None, :]
        index = (L - 1 - (qpos - kpos)).clamp(0, L - 1)     # future keys get a valid index; the mask hides them
        return qe.gather(-1, index.expand(*qe.shape[:2], T, past + T))

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(self.layer, k, v)
        # No dropout inside the attention call: on the CPU a dropout_p > 0 forces SDPA's unfused math
        # kernel (1.7x slower, and the book config at batch 8 needs ~22 GB instead of 4.4 GB measured in fp32). Dropout
        # stays on the residual branches.
        if self.rel is not None:
            bias = self.relative_bias(q, past) * (q.size(-1) ** -0.5)   # SDPA scales q.k, not the mask
            if T > 1:
                causal = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
                bias = bias.masked_fill(~causal, -float("inf"))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype))
        elif past == 0:  # whole sequence (training, or a prompt filling an empty cache)
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif T == 1:  # one new token sees everything cached: no mask needed
            y = F.scaled_dot_product_attention(q, k, v)
        else:  # several new tokens after a cached prefix: causal within the new block
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: MusicTransformerConfig):
        super().__init__()
        hidden = config.mlp_ratio * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, hidden, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, config: MusicTransformerConfig, layer: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config, layer)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class CachedDecoder:
    """Eager incremental decoding: fill(ctx) runs a context into a fresh KVCache, step(tokens) feeds one
    token per sequence; both return the last position's logits (B, vocab). length: positions cached
    (None before the first fill). decode.CompiledDecoder is the compiled counterpart."""

    def __init__(self, model: "MusicTransformer", batch: int, size: int | None = None):
        self.model, self.batch, self.cache = model, batch, None
        self.size = size   # cache positions (default block_size): zeroing 2,048 unused ones cost more than a step

    @property
    def length(self) -> int | None:
        return None if self.cache is None else self.cache.length

    def fill(self, ctx: torch.Tensor) -> torch.Tensor:
        dtype = next(self.model.parameters()).dtype
        self.cache = KVCache(self.model.config, self.batch, ctx.device, dtype, size=self.size)
        return self.model(ctx, self.cache)[:, -1]

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens[:, None], self.cache)[:, -1]


class MusicTransformer(Model):
    """Decoder-only transformer over the 390 performance events, with KV-cache sampling."""

    arch = "music-transformer"
    card_metadata = {"license": "mit", "tags": ["music-transformer", "transformer"]}
    arch_version = 2       # 2: the `attention` field (relative attention); version-1 folders load unchanged
    min_arch_version = 1
    config_class = MusicTransformerConfig
    tokenizer_name = "performance"
    generate_options = (
        GenerateOption("prompt", str, None, "MIDI file to continue (default: none, start from scratch)",
                       midi_file=True),
        GenerateOption("length", int, 1024, "number of new tokens", min=1, max=MAX_LENGTH),
        GenerateOption("temperature", float, 1.0, "sampling temperature; 0 = greedy (always the most likely token)",
                       min=0, max=TEMPERATURE[1]),
        GenerateOption("top_k", int, None, "sample from the k most likely tokens (default: all)", min=1, max=MAX_TOP_K),
        GenerateOption("top_p", float, None, "nucleus sampling: the smallest set of tokens with this much "
                       "probability (default: all)", min=MIN_TOP_P, max=1),
        GenerateOption("include_prompt", bool, True, "write the prompt before the new music; --continuation-only "
                       "writes only the new music", flag="--continuation-only"),
        GenerateOption("quantize", str, "auto", "decoding precision. int8: int8 weights (fbgemm, x86 CPUs); on a "
                       "2-core AMD EPYC without AMX, the book's size at 2.6-2.9x Hugging Face's generate at batch 1 "
                       "and 1.9-2.7x at batch 8 (fp32: 1.0-1.5x, 1.3-1.4x), the shipped model 1.2-1.6x fp32, logits about 2 % from fp32's (median), the same top token at 98-99 % "
                       "of steps, the same music by zoo eval's measures. none: exact fp32. auto (the default): int8 on a "
                       "CPU without AMX, fp32 elsewhere; a line on stderr says which", choices=QUANTIZE_CHOICES),
        GenerateOption("compile", bool, None, "compile the decoding step (torch.compile; a C++ compiler is needed "
                       "on a CPU): a one-off compile of 20-90 s per --num, then about 2.5x faster than eager with "
                       "AMX (bf16); without AMX (fp32) slower than int8 decoding. Default: compile only a run long "
                       "enough to repay the compile (with AMX, thousands of tokens of the book's size), said in "
                       "one line; --no-compile: never"),
    )

    def __init__(self, config: MusicTransformerConfig, tokenizer=None):
        # built directly (tests, notebooks), it falls back to the plugin's own tokenizer, no registry
        super().__init__(config, tokenizer if tokenizer is not None else PerformanceTokenizer())
        layers = dict(wte=nn.Embedding(config.vocab_size, config.n_embd))
        if config.attention == "absolute":
            layers["wpe"] = nn.Embedding(config.block_size, config.n_embd)
        self.transformer = nn.ModuleDict(dict(
            **layers,
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config, i) for i in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)  # untied, as in the book
        if torch.empty(0).is_meta:   # built on the meta device to take saved weights: nothing to initialise
            return
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
            elif name.endswith("attn.rel"):
                nn.init.normal_(p, mean=0.0, std=0.02)

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of parameters."""
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, vocab). With a cache, idx continues the cached prefix."""
        B, T = idx.shape
        past = cache.length if cache is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"sequence of {past + T} tokens exceeds block_size {self.config.block_size}")
        if cache is not None and past + T > cache.size:
            raise ValueError(f"sequence of {past + T} tokens exceeds the cache's {cache.size} positions")
        x = self.transformer.wte(idx)
        if "wpe" in self.transformer:
            x = x + self.transformer.wpe(torch.arange(past, past + T, dtype=torch.long, device=idx.device))
        x = self.transformer.drop(x)
        for block in self.transformer.h:
            x = block(x, cache)
        if cache is not None:
            cache.length += T
        return self.lm_head(self.transformer.ln_f(x))

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def generate_tokens(self, prompt_ids: torch.Tensor, length: int, temperature: float = 1.0,
                        top_k: int | None = None, top_p: float | None = None, generator=None,
                        allow_eos: bool = False, use_cache: bool = True, compile: bool = False,
                        quantize: str = "none", on_token=None) -> torch.Tensor:
        """Sample `length` new tokens after prompt_ids (B, T0); returns (B, length).

        PAD is never sampled; EOS only when allow_eos, and a sequence that ends is padded.
        Past block_size the context slides: the cache is rebuilt from the newest 3/4 block.
        use_cache=False is the book's way (a full forward over the prefix per token), kept
        as the benchmark baseline. compile=True decodes with the compiled static-cache step
        (decode.py): the same sampling, faster after a one-off compile. quantize="int8" decodes
        with int8 weights (quantize.py); "auto" picks as generate() does; "none" is exact fp32.
        """
        from .quantize import choose, int8_copy

        cfg = self.config
        B = prompt_ids.size(0)
        precision, _ = choose(quantize, self.device, next(self.parameters()).dtype, compile)
        net = int8_copy(self) if precision == "int8" else self   # the model that decodes; self is never changed
        seq = prompt_ids.to(self.device)
        out = torch.full((B, length), cfg.pad_id, dtype=torch.long, device=self.device)
        done = torch.zeros(B, dtype=torch.bool, device=self.device)
        keep = max(1, cfg.block_size - cfg.block_size // 4)
        decoder, logits = None, None
        # the cache never holds more than the first context and the tokens fed back after it
        needed = min(seq.size(1), cfg.block_size) + length - 1
        if use_cache and compile:
            from .decode import CompiledDecoder

            decoder = CompiledDecoder(self, B, needed=needed)
        elif use_cache:
            decoder = CachedDecoder(net, B, size=min(needed, cfg.block_size))
        for i in range(length):
            if not use_cache:
                logits = net(seq[:, -cfg.block_size:])[:, -1]
            elif decoder.length is None or decoder.length >= cfg.block_size:
                # (re)fill: first step, or the window is full and positions must restart
                logits = decoder.fill(seq[:, -(keep if decoder.length is not None else cfg.block_size):])
            logits = logits.float()
            logits[:, cfg.pad_id] = -float("inf")
            if not allow_eos:
                logits[:, cfg.eos_id] = -float("inf")
            nxt = sample(logits, temperature, top_k, top_p, generator)
            nxt = torch.where(done, torch.full_like(nxt, cfg.pad_id), nxt)
            out[:, i] = nxt
            if on_token is not None:   # generate() shows progress with it
                on_token()
            done |= nxt == cfg.eos_id
            if bool(done.all()):
                break
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            if use_cache and i + 1 < length and decoder.length < cfg.block_size:   # the last token is never fed back
                logits = decoder.step(nxt)
        return out

    @torch.no_grad()
    def generate(self, num: int = 1, seed: int | None = None, prompt=None, length: int = 1024,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 allow_eos: bool = False, include_prompt: bool = True, max_note_s: float | None = 5.0,
                 compile: bool | None = None, quantize: str = "auto"):
        """Sample `num` continuations of `prompt` (a MIDI path, PrettyMIDI or token ids; None = from
        scratch), each `length` new tokens. Returns a list of `num` PrettyMIDI.
        The output contains the prompt followed by the continuation unless include_prompt=False.
        Notes longer than max_note_s seconds are cut to that length (a small model sometimes never
        emits a note's off event, which would hold it to the end); None keeps every note whole.
        compile=True decodes with a compiled step (decode.py): faster after a one-off compile of
        tens of seconds per batch size; bf16 on CPUs with AMX (samples then differ from fp32's).
        compile=None compiles only where the run pays the compile back (decode.compile_pays).
        quantize: "auto" (int8 weights on a CPU without AMX, fp32 elsewhere), "int8" or "none" (exact
        fp32); see quantize.py. What auto chose is said in one line on stderr, once per process."""
        from .prompt import pieces

        return pieces(self, num, seed, prompt, length, temperature, top_k, top_p, allow_eos, include_prompt,
                      max_note_s, compile, quantize)


def sample(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
           top_p: float | None = None, generator=None) -> torch.Tensor:
    """Draw one token per row of logits (B, V) with temperature, top-k and nucleus (top-p) filtering.

    generator: None (the global RNG), one torch.Generator for the batch, or a list with one per row.
    A list of CPU generators makes each row's draw depend on its own seed only, on any device: the
    uniform number comes from the CPU and picks the token by inverse CDF."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -float("inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cum = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - torch.softmax(sorted_logits, dim=-1) >= top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, -float("inf"))
        logits = torch.full_like(logits, -float("inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits.float(), dim=-1)
    if isinstance(generator, (list, tuple)):
        u = torch.cat([torch.rand(1, generator=g) for g in generator]).to(probs.device)
        cdf = probs.cumsum(dim=-1)
        pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None], right=True).squeeze(-1)  # right: never a 0-probability token
        return pick.clamp(max=probs.size(-1) - 1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
