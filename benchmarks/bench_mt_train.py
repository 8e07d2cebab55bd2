"""6. Music Transformer training, tokens/s: the attention before issue #20 against the fused one, in fp32 and bf16.

The book's widths (6 layers, 8 heads, 512 wide, dropout 0.1) on random tokens; one step = forward,
cross-entropy, backward, AdamW, as the plugin's trainer does it. Rows:

  before         dropout inside the attention call (dropout_p=0.1): on a CPU that forces SDPA's unfused
                 math kernel, which materialises every (T x T) attention matrix
  fused, fp32    the plugin today: no dropout in the attention call (it stays on the residual branches)
  fused, bf16    the same under bf16 autocast, as the trainer does on CUDA and on CPUs with AMX (skipped on
                 a CPU without AMX: bf16 is slower than fp32 there)
"""

from __future__ import annotations

import contextlib
from unittest import mock

import torch
from torch.nn import functional as F


@contextlib.contextmanager
def dropout_in_attention(p: float):
    """The model's attention calls SDPA with dropout_p=p while training, as it did before #20."""
    sdpa = F.scaled_dot_product_attention

    def with_dropout(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, **kw):
        training = torch.is_grad_enabled()
        return sdpa(q, k, v, attn_mask=attn_mask, dropout_p=p if training else dropout_p, is_causal=is_causal, **kw)

    with mock.patch.object(F, "scaled_dot_product_attention", with_dropout):
        yield


def run(bench, device: torch.device, batch: int = 4, block: int = 512) -> dict:
    from zoo.device import cpu_bf16_pays
    from zoo_music_transformer.model import MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    cfg = MusicTransformerConfig(block_size=block)
    base = MusicTransformer(cfg).state_dict()
    data = torch.randint(0, 388, (batch, block + 1), device=device)
    x, y = data[:, :-1], data[:, 1:]

    def timer(label, before=False, bf16=False):
        model = MusicTransformer(cfg).to(device).train()
        model.load_state_dict(base)                       # every row from the same weights
        opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95))
        def contexts():   # fresh each step: a context manager made by a generator runs once
            return (dropout_in_attention(cfg.dropout) if before else contextlib.nullcontext(),
                    torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext())

        def step():
            patch, amp = contexts()
            with patch, amp:
                logits = model(x)
            loss = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize()

        return bench.median(step, label)

    rows, notes = [], [f"{sum(p.numel() for p in MusicTransformer(cfg).parameters()) / 1e6:.1f} M parameters "
                       f"(the book's widths at block {block}); batch {batch} x {block} tokens per step; "
                       "forward + backward + AdamW"]
    t = timer("train before (math kernel, dropout in SDPA)", before=True)
    rows.append({"impl": "before: dropout in SDPA (math kernel), fp32", "s": t})
    rows.append({"impl": "fused SDPA, fp32 (today)", "s": timer("train fused fp32")})
    if device.type == "cuda" or (device.type == "cpu" and cpu_bf16_pays()[0]):
        rows.append({"impl": "fused SDPA, bf16 autocast", "s": timer("train fused bf16", bf16=True)})
    else:
        notes.append("bf16 skipped: this CPU has no AMX (bf16 autocast is slower than fp32 there)")
    for r in rows:
        r["tok_s"] = batch * block / r["s"]
        r["ratio"] = rows[0]["s"] / r["s"]       # speed-up over the "before" row
    return {"rows": rows, "notes": notes}
