"""1. Music Transformer generation, tokens/s: ours (KV cache, eager and compiled) vs the book's recompute vs HF GPT2.

The book's configuration (6 layers, 8 heads, 512 wide, block 2048, ~20 M parameters), random weights
(speed does not depend on them), sampling at temperature 1 with a fixed generator. tokens/s counts the
new tokens of all sequences in the batch; the prompt's prefill is inside the timed region for everyone.
"""

from __future__ import annotations

import time

import torch


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def hf_gpt2(cfg, device):
    """transformers' GPT2LMHeadModel at the same sizes (GELU-tanh, untied head, SDPA attention), or None."""
    try:
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError:
        return None
    conf = GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
                      n_head=cfg.n_head, activation_function="gelu_new", tie_word_embeddings=False,
                      pad_token_id=cfg.pad_id, eos_token_id=cfg.eos_id, bos_token_id=cfg.eos_id)
    conf._attn_implementation = "sdpa"
    return GPT2LMHeadModel(conf).to(device).eval()


def run(bench, device: torch.device, batches=(1, 8), prompt: int = 256, new: int = 768, book_new: int | None = None,
        compiled: bool = True):
    """Rows of tokens/s per (batch, implementation): medians over bench.repeats rounds, every implementation of
    a batch timed in turn within a round (Bench.interleaved), after one warm-up each.

    compiled: also generate(compile=True): the static-cache step through torch.compile (bf16 on a CPU with
    AMX, fp32 elsewhere). Its first call is the compile (timed apart, per batch size: one shape each).
    On an x86 CPU, also quantize="int8": eager decoding with int8 weights (quantize.py).
    """
    from zoo_music_transformer import decode, quantize
    from zoo_music_transformer.model import MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    cfg = MusicTransformerConfig()
    model = MusicTransformer(cfg).to(device).eval()
    hf = hf_gpt2(cfg, device)
    int8 = device.type == "cpu" and quantize.int8_kernels()
    book_new = book_new or new
    rows, notes = [], []
    params = sum(p.numel() for p in model.parameters())
    dtype = decode.decode_dtype(device)
    compiled_name = f"ours compiled (static cache, {'bf16' if dtype == torch.bfloat16 else 'fp32'})"
    int8_name = "ours int8 (KV cache, --quantize int8)"
    notes.append(f"{params / 1e6:.1f} M parameters; prompt {prompt} tokens; {new} new tokens"
                 + (f" ({book_new} for the book's recompute)" if book_new != new else ""))
    for b in batches:
        ids = torch.randint(0, 356, (b, prompt), device=device)

        def gen(n, **kw):
            def call():
                model.generate_tokens(ids, n, generator=torch.Generator(device=device).manual_seed(0), **kw)
                _sync(device)
            return call

        fns = {f"gen b{b} ours": gen(new)}
        if compiled:
            def first_step():   # the prompt's prefill and one step: the first call of a shape compiles it
                dec = decode.CompiledDecoder(model, b, needed=prompt + new - 1)
                with torch.no_grad():
                    dec.fill(ids)
                    dec.step(ids[:, -1])
                _sync(device)

            t0 = time.perf_counter()
            first_step()
            compile_s = time.perf_counter() - t0
            fns[f"gen b{b} compiled"] = gen(new, compile=True)
        if int8:
            t0 = time.perf_counter()
            quantize.int8_copy(model)   # made once per model (cached): what a first generate() pays on top
            quantize_s = time.perf_counter() - t0
            fns[f"gen b{b} int8"] = gen(new, quantize="int8")
        fns[f"gen b{b} book"] = gen(book_new, use_cache=False)
        if hf is not None:
            mask = torch.ones_like(ids)

            def hf_gen():
                torch.manual_seed(0)
                with torch.no_grad():
                    hf.generate(ids, attention_mask=mask, do_sample=True, top_k=0, max_new_tokens=new,
                                min_new_tokens=new, use_cache=True)
                _sync(device)

            fns[f"gen b{b} hf"] = hf_gen
        t = bench.interleaved(fns)
        rows.append({"batch": b, "impl": "ours (KV cache)", "tok_s": b * new / t[f"gen b{b} ours"],
                     "s": t[f"gen b{b} ours"], "bytes_per_step": step_bytes(cfg, params, b, prompt + new / 2, 4, 4)})
        if compiled:
            size = decode.cache_size(cfg.block_size, prompt + new - 1)
            width = torch.finfo(dtype).bits // 8
            rows.append({"batch": b, "impl": compiled_name, "tok_s": b * new / t[f"gen b{b} compiled"],
                         "s": t[f"gen b{b} compiled"], "compile_s": compile_s,
                         "bytes_per_step": step_bytes(cfg, params, b, size, width, width)})
        if int8:
            rows.append({"batch": b, "impl": int8_name, "tok_s": b * new / t[f"gen b{b} int8"],
                         "s": t[f"gen b{b} int8"], "quantize_s": quantize_s,
                         "bytes_per_step": step_bytes(cfg, params, b, prompt + new / 2, 1, 4)})
        rows.append({"batch": b, "impl": "book (full-prefix recompute)", "tok_s": b * book_new / t[f"gen b{b} book"],
                     "s": t[f"gen b{b} book"]})
        if hf is not None:
            rows.append({"batch": b, "impl": HF_NAME, "tok_s": b * new / t[f"gen b{b} hf"], "s": t[f"gen b{b} hf"]})
    if hf is None:
        notes.append("HF GPT2 skipped: transformers is not installed (pip install -e '.[bench]')")
    if compiled:
        comp = [f"batch {r['batch']} {r['compile_s']:.0f} s" for r in rows if "compile_s" in r]
        notes.append(f"compiled: torch.compile (inductor, max-autotune, freezing) of the one-token step, "
                     f"{'bf16 (this CPU has AMX)' if dtype == torch.bfloat16 else 'fp32'}; its compile is not in "
                     f"the tokens/s: {', '.join(comp)} (one per batch size and cache length; a prefill and a step included)")
    if int8:
        q = next(r["quantize_s"] for r in rows if "quantize_s" in r)
        notes.append(f"int8: torch.ao.quantization.quantize_dynamic (fbgemm, per-channel int8 weights) of every "
                     f"nn.Linear, eager with the KV cache; quantizing the model took {q:.2f} s, once (not in the tokens/s)")
    eager = {r["batch"]: r["tok_s"] for r in rows if r["impl"] == "ours (KV cache)"}
    hf_speed = {r["batch"]: r["tok_s"] for r in rows if r["impl"] == HF_NAME}
    for r in rows:
        r["ratio"] = r["tok_s"] / eager[r["batch"]]   # speed relative to our eager decoding at that batch
        if r["batch"] in hf_speed:
            r["vs_hf"] = r["tok_s"] / hf_speed[r["batch"]]
    return {"rows": rows, "notes": notes, "params": params, "repeats": bench.repeats, "interleaved": True}


HF_NAME = "HF transformers GPT2 generate (fp32)"


def step_bytes(cfg, params: int, batch: int, keys: float, weight_bytes: int, cache_bytes: int) -> float:
    """Bytes one decoding step reads: every weight once (the embedding tables only a row per token, left
    out) plus, per sequence, the keys and values of `keys` positions in all layers."""
    embeddings = cfg.vocab_size * cfg.n_embd + (cfg.block_size * cfg.n_embd if cfg.attention == "absolute" else 0)
    return (params - embeddings) * weight_bytes + batch * 2 * cfg.n_layer * keys * cfg.n_embd * cache_bytes


def read_bandwidth(device: torch.device) -> float:
    """Bytes/s of reading a buffer far larger than any cache (a sum over 1 GiB on a GPU, 256 MiB on a
    CPU), with the threads decoding uses."""
    n = (256 if device.type == "cuda" else 64) * 1024 * 1024
    a = torch.ones(n, device=device)
    for _ in range(2):
        a.sum()
    _sync(device)
    reps = 10
    t0 = time.perf_counter()
    for _ in range(reps):
        a.sum()
    _sync(device)
    return a.numel() * 4 * reps / (time.perf_counter() - t0)


def bandwidth(device: torch.device, rows: list[dict]) -> dict:
    """Achieved read bandwidth of each decoding row that counts its bytes, against read_bandwidth()."""
    bw = read_bandwidth(device)
    out = []
    for r in rows:
        if "bytes_per_step" in r:
            achieved = r["bytes_per_step"] * r["tok_s"] / r["batch"]   # one step makes `batch` tokens
            out.append({"batch": r["batch"], "impl": r["impl"], "MB_per_step": r["bytes_per_step"] / 1e6,
                        "achieved_GBs": achieved / 1e9, "fraction": achieved / bw})
    return {"device": device.type, "read_GBs": bw / 1e9, "rows": out}


def estimate_full(bench, device: torch.device, batch: int = 1, prompt: int = 256, new: int = 768, points: int = 4):
    """Both implementations at the full sizes (batch 1, 256 + 768 tokens), estimated where running them whole is too slow (a CPU).

    Times single steps at `points` context lengths from prompt to prompt+new-1 (medians), interpolates
    linearly over every length and sums: the book's step is a forward over the whole prefix; ours is a
    one-token forward against the KV cache, after one prefill of the prompt. Sampling is left out of both.
    """
    import numpy as np
    from zoo_music_transformer.model import KVCache, MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    cfg = MusicTransformerConfig()
    model = MusicTransformer(cfg).to(device).eval()
    dtype = next(model.parameters()).dtype
    ids = torch.randint(0, 356, (batch, prompt + new), device=device)
    lengths = np.linspace(prompt, prompt + new - 1, points).round().astype(int)
    book_t, ours_t = [], []
    with torch.no_grad():
        for L in lengths:
            L = int(L)

            def book_step():
                model(ids[:, :L])
                _sync(device)

            book_t.append(bench.median(book_step, f"est b{batch} book step @{L}"))
            cache = KVCache(cfg, batch, device, dtype)
            model(ids[:, :L], cache)

            def ours_step():
                cache.length = L
                model(ids[:, L:L + 1], cache)
                _sync(device)

            ours_t.append(bench.median(ours_step, f"est b{batch} ours step @{L}"))

        def prefill():
            model(ids[:, :prompt], KVCache(cfg, batch, device, dtype))
            _sync(device)

        t_prefill = bench.median(prefill, f"est b{batch} ours prefill")
    every = np.arange(prompt, prompt + new)
    book_total = float(np.interp(every, lengths, book_t).sum())
    ours_total = t_prefill + float(np.interp(every[1:], lengths, ours_t).sum())   # token 1 comes from the prefill
    return {"batch": batch, "prompt": prompt, "new": new, "lengths": [int(x) for x in lengths],
            "ours_tok_s": batch * new / ours_total, "book_tok_s": batch * new / book_total,
            "ratio": book_total / ours_total}
