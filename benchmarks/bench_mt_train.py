"""2. Music Transformer training: tokens/s and peak memory, the attention before issue #20 against the fused one.

One step = forward, cross-entropy, backward, AdamW, as the plugin's trainer does it, on random tokens.
Speed is measured at two sizes, block 512, the rows of a size timed in turn (medians of at least 5 rounds):

  4 x 256          the shipped model's widths (4 layers, 4 heads, 256 wide) with absolute attention (the
                   shipped model uses relative attention), batch 8: the size the issue measured
  book widths      6 layers, 8 heads, 512 wide, batch --train-batch (default 4)

Rows:

  before         dropout inside the attention call (dropout_p=0.1): on a CPU that forces SDPA's unfused
                 math kernel, which materialises every (T x T) attention matrix
  fused, fp32    the plugin today: no dropout in the attention call (it stays on the residual branches)
  fused, bf16    the same under bf16 autocast, as the trainer does on CUDA and on CPUs with AMX (skipped on
                 a CPU without AMX: bf16 is slower than fp32 there)

Peak memory is the book's own config (block 2048): each row runs in a fresh process (peak RSS only
grows), which allocates AdamW's state first and then times one training step, so the peak holds the
weights, the optimizer state, the activations and the gradients together. The RSS just before that
step is recorded beside it. A row whose process fails or runs past 15 minutes is reported as such.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from unittest import mock

import torch
from torch.nn import functional as F

SHIPPED = {"n_layer": 4, "n_head": 4, "n_embd": 256}


@contextlib.contextmanager
def dropout_in_attention(p: float):
    """The model's attention calls SDPA with dropout_p=p while training, as it did before #20."""
    sdpa = F.scaled_dot_product_attention

    def with_dropout(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        training = torch.is_grad_enabled()
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=p if training else dropout_p, is_causal=is_causal, **kw)

    with mock.patch.object(F, "scaled_dot_product_attention", with_dropout):
        yield


def make_step(cfg, device: torch.device, batch: int, before: bool, bf16: bool, state=None):
    """A training step of a fresh model (from `state` when given) on one random batch."""
    from zoo_music_transformer.model import MusicTransformer

    model = MusicTransformer(cfg).to(device).train()
    if state is not None:
        model.load_state_dict(state)                  # every row from the same weights
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95))
    data = torch.randint(0, 388, (batch, cfg.block_size + 1), generator=torch.Generator().manual_seed(0)).to(device)
    x, y = data[:, :-1], data[:, 1:]

    def step():
        # fresh contexts each step: a context manager made by a generator runs once
        patch = dropout_in_attention(cfg.dropout) if before else contextlib.nullcontext()
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with patch, amp:
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return model, opt, step


VARIANTS = [("before: dropout in SDPA (math kernel), fp32", True, False),
            ("fused SDPA, fp32 (today)", False, False),
            ("fused SDPA, bf16 autocast", False, True)]


def run(bench, device: torch.device, batch: int = 4, block: int = 512, memory: bool = True) -> dict:
    from zoo.device import cpu_bf16_pays
    from zoo_music_transformer.model import MusicTransformer, MusicTransformerConfig

    bf16_ok = device.type == "cuda" or (device.type == "cpu" and cpu_bf16_pays()[0])
    variants = VARIANTS if bf16_ok else VARIANTS[:2]
    rows, notes = [], []
    for size, cfg, b in [("4 x 256 (shipped widths, absolute attention)",
                          MusicTransformerConfig(block_size=block, **SHIPPED), 8),
                         ("book widths (6 x 512)", MusicTransformerConfig(block_size=block), batch)]:
        torch.manual_seed(0)
        state = MusicTransformer(cfg).state_dict()
        params = sum(v.numel() for v in state.values())
        steps = {f"train {size} {impl}": make_step(cfg, device, b, before, bf16, state)[2]
                 for impl, before, bf16 in variants}
        medians = bench.interleaved(steps, repeats=max(bench.repeats, 5))
        group = [{"size": size, "impl": impl, "s": s, "tok_s": b * block / s}
                 for (impl, _, _), s in zip(variants, medians.values())]
        for r in group:
            r["ratio"] = group[0]["s"] / r["s"]       # speed-up over the "before" row
        rows += group
        notes.append(f"{size}: {params / 1e6:.1f} M parameters, batch {b} x {block} tokens per step")
    notes.append("forward + cross-entropy + backward + AdamW")
    if not bf16_ok:
        notes.append("bf16 skipped: this CPU has no AMX (bf16 autocast is slower than fp32 there)")
    out = {"rows": rows, "notes": notes, "repeats": max(bench.repeats, 5), "interleaved": True}
    if memory and device.type == "cpu":
        out["memory"] = [peak_rss(impl, before, bf16, b, device) for impl, before, bf16, b in
                         [(VARIANTS[0][0], True, False, 2), (VARIANTS[1][0], False, False, 2),
                          (VARIANTS[1][0], False, False, 8)] + ([(VARIANTS[2][0], False, True, 8)] if bf16_ok else [])]
        out["memory_note"] = ("the book's config at block 2048; the 'before' path is left out at batch 8: "
                              "issue #20 measured about 22 GB for it (its (T x T) attention matrices)")
    return out


def peak_rss(impl: str, before: bool, bf16: bool, batch: int, device: torch.device, timeout: float = 900) -> dict:
    """Peak RSS of one book-config training step in a fresh process (see the module docstring)."""
    args = json.dumps({"before": before, "bf16": bf16, "batch": batch, "threads": torch.get_num_threads()})
    row = {"impl": impl, "batch": batch}
    try:
        proc = subprocess.run([sys.executable, __file__, args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"no result within {timeout:.0f} s"}
    if proc.returncode != 0:   # e.g. killed for memory (-9)
        last = (proc.stderr.strip().splitlines() or ["no message"])[-1][:200]
        return {**row, "error": f"exit status {proc.returncode}: {last}"}
    return {**row, **json.loads(proc.stdout.strip().splitlines()[-1])}


def _rss_gb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 1e9


def _child(args: dict) -> None:
    from zoo_music_transformer.model import MusicTransformerConfig

    torch.set_num_threads(args["threads"])
    torch.manual_seed(0)
    model, opt, step = make_step(MusicTransformerConfig(), torch.device("cpu"), args["batch"], args["before"], args["bf16"])
    for p in model.parameters():              # AdamW's state exists before the measured step, as from step 2 on
        p.grad = torch.zeros_like(p)
    opt.step()
    before_gb = _rss_gb()
    t0 = time.perf_counter()
    step()
    seconds = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9   # Linux reports KiB
    print(json.dumps({"peak_rss_GB": peak_gb, "rss_before_GB": before_gb, "s": seconds}))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("bench_mt_train.py is run by benchmarks/run.py (make bench); alone it measures one memory row: "
                 "python benchmarks/bench_mt_train.py '{\"before\": false, \"bf16\": false, \"batch\": 2, \"threads\": 1}' (Linux)")
    _child(json.loads(sys.argv[1]))
