"""1. Music Transformer generation, tokens/s: ours (KV cache) vs the book's full-prefix recompute vs HF GPT2.

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


def run(bench, device: torch.device, batches=(1, 8), prompt: int = 256, new: int = 768, book_new: int | None = None):
    """Rows of tokens/s per (batch, implementation); medians over bench.repeats, after one warm-up."""
    from zoo_music_transformer.model import MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    cfg = MusicTransformerConfig()
    model = MusicTransformer(cfg).to(device).eval()
    hf = hf_gpt2(cfg, device)
    book_new = book_new or new
    rows, notes = [], []
    params = sum(p.numel() for p in model.parameters())
    notes.append(f"{params / 1e6:.1f} M parameters; prompt {prompt} tokens; {new} new tokens"
                 + (f" ({book_new} for the book's recompute)" if book_new != new else ""))
    for b in batches:
        ids = torch.randint(0, 356, (b, prompt), device=device)

        def ours():
            model.generate_tokens(ids, new, generator=torch.Generator(device=device).manual_seed(0))
            _sync(device)

        def book():
            model.generate_tokens(ids, book_new, generator=torch.Generator(device=device).manual_seed(0), use_cache=False)
            _sync(device)

        def warm(use_cache):
            return lambda: model.generate_tokens(ids, 2, generator=torch.Generator(device=device).manual_seed(0),
                                                 use_cache=use_cache)

        t_ours = bench.median(ours, f"gen b{b} ours", warmup=warm(True))
        rows.append({"batch": b, "impl": "ours (KV cache)", "tok_s": b * new / t_ours, "s": t_ours})
        t_book = bench.median(book, f"gen b{b} book", warmup=warm(False))
        rows.append({"batch": b, "impl": "book (full-prefix recompute)", "tok_s": b * book_new / t_book, "s": t_book})
        if hf is not None:
            mask = torch.ones_like(ids)

            def hf_gen():
                torch.manual_seed(0)
                with torch.no_grad():
                    hf.generate(ids, attention_mask=mask, do_sample=True, top_k=0, max_new_tokens=new,
                                min_new_tokens=new, use_cache=True)
                _sync(device)

            def hf_warm():
                with torch.no_grad():
                    hf.generate(ids, attention_mask=mask, do_sample=True, top_k=0, max_new_tokens=2, min_new_tokens=2)

            t_hf = bench.median(hf_gen, f"gen b{b} hf", warmup=hf_warm)
            rows.append({"batch": b, "impl": "HF transformers GPT2 generate", "tok_s": b * new / t_hf, "s": t_hf})
    if hf is None:
        notes.append("HF GPT2 skipped: transformers is not installed (pip install -e '.[bench]')")
    ours_rate = {r["batch"]: r["tok_s"] for r in rows if r["impl"].startswith("ours")}
    for r in rows:
        r["ratio"] = ours_rate[r["batch"]] / r["tok_s"]   # how many times faster ours is
    return {"rows": rows, "notes": notes, "params": params}


def bandwidth(device: torch.device, params: int, tok_s_b1: float, prompt: int, new: int, cfg=None) -> dict:
    """Achieved memory bandwidth of batch-1 decoding vs the card's measured device-to-device copy bandwidth.

    Bytes per decoded token = all weights (fp32) once + the KV cache read so far (mean context length).
    """
    from zoo_music_transformer.model import MusicTransformerConfig

    cfg = cfg or MusicTransformerConfig()
    n = 256 * 1024 * 1024 if device.type == "cuda" else 16 * 1024 * 1024   # 1 GiB of fp32 on a GPU
    a = torch.empty(n, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    _sync(device)
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        b.copy_(a)
    _sync(device)
    copy_bw = 2 * a.numel() * 4 * reps / (time.perf_counter() - t0)   # read + write
    del a, b
    mean_ctx = prompt + new / 2
    kv_bytes = 2 * cfg.n_layer * mean_ctx * cfg.n_embd * 4
    per_token = params * 4 + kv_bytes
    achieved = per_token * tok_s_b1
    return {"device": device.type, "copy_GBs": copy_bw / 1e9, "achieved_GBs": achieved / 1e9, "bytes_per_token_MB": per_token / 1e6,
            "fraction": achieved / copy_bw}


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
