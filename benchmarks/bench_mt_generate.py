"""Music Transformer generation speed on CPU: KV cache (ours) vs the book's full-prefix recompute.

Book configuration (~20.4 M parameters, random weights: speed does not depend on them),
batch 1, a 256-token prompt, 768 new tokens. Same model, same process:

  ours      model.generate_tokens(..., use_cache=True)   one token per forward, cached keys/values
  book      model.generate_tokens(..., use_cache=False)  a forward over the whole prefix per token
  hf-gpt2   transformers' GPT2LMHeadModel.generate at the same sizes (only if transformers is installed)

    python benchmarks/bench_mt_generate.py [--threads 1] [--new 768] [--prompt 256] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def tokens_per_s(fn, new: int, repeat: int = 1) -> float:
    """Best-of-`repeat` rate of fn() producing `new` tokens."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return new / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=768)
    ap.add_argument("--baseline-new", type=int, default=None,
                    help="new tokens for the book's baseline (default: --new; fewer is faster but flatters it)")
    ap.add_argument("--repeat", type=int, default=2, help="repeats of the fast paths (best is kept)")
    ap.add_argument("--no-hf", action="store_true", help="skip the transformers GPT2 comparison")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from zoo_music_transformer.model import MusicTransformer, MusicTransformerConfig

    torch.manual_seed(0)
    cfg = MusicTransformerConfig()
    model = MusicTransformer(cfg).eval()
    prompt = torch.randint(0, 388, (1, args.prompt))
    results = {"config": "book (n_layer 6, n_head 8, n_embd 512, block 2048)", "parameters": model.num_parameters(),
               "batch": 1, "prompt_tokens": args.prompt, "new_tokens": args.new, "threads": args.threads,
               "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    try:
        results["cpu"] = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass

    def ours():
        model.generate_tokens(prompt, args.new, generator=torch.Generator().manual_seed(0))

    results["ours_kv_cache_tok_s"] = tokens_per_s(ours, args.new, args.repeat)
    print(f"ours (KV cache):        {results['ours_kv_cache_tok_s']:8.1f} tokens/s", flush=True)

    base_new = args.baseline_new or args.new

    def book():
        model.generate_tokens(prompt, base_new, generator=torch.Generator().manual_seed(0), use_cache=False)

    results["book_full_recompute_tok_s"] = tokens_per_s(book, base_new, 1)
    results["book_new_tokens"] = base_new
    print(f"book (full recompute):  {results['book_full_recompute_tok_s']:8.1f} tokens/s ({base_new} new tokens)",
          flush=True)
    results["speedup_vs_book"] = results["ours_kv_cache_tok_s"] / results["book_full_recompute_tok_s"]
    print(f"speed-up vs the book:   {results['speedup_vs_book']:8.1f}x", flush=True)

    if not args.no_hf:
        try:
            from transformers import GPT2Config, GPT2LMHeadModel
        except ImportError:
            print("transformers not installed: skipping the GPT2 comparison (pip install -e '.[bench]')")
        else:
            hf = GPT2LMHeadModel(GPT2Config(vocab_size=cfg.vocab_size, n_positions=cfg.block_size, n_embd=cfg.n_embd,
                                            n_layer=cfg.n_layer, n_head=cfg.n_head, activation_function="gelu_new",
                                            tie_word_embeddings=False, pad_token_id=cfg.pad_id,
                                            eos_token_id=cfg.eos_id, bos_token_id=cfg.eos_id,
                                            attn_implementation="sdpa")).eval()

            def hf_gen():
                torch.manual_seed(0)
                with torch.no_grad():
                    hf.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=True, top_k=0,
                                max_new_tokens=args.new, min_new_tokens=args.new, use_cache=True)

            results["hf_gpt2_tok_s"] = tokens_per_s(hf_gen, args.new, args.repeat)
            results["speedup_vs_hf_gpt2"] = results["ours_kv_cache_tok_s"] / results["hf_gpt2_tok_s"]
            print(f"HF GPT2 generate:       {results['hf_gpt2_tok_s']:8.1f} tokens/s "
                  f"(ours is {results['speedup_vs_hf_gpt2']:.2f}x)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
