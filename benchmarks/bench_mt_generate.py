"""Music Transformer generation speed on CPU: KV cache (ours) vs the book's full-prefix recompute.

Book configuration (~20.4 M parameters, random weights: speed does not depend on them),
batch 1, a 256-token prompt, 768 new tokens. Same model, same process:

  ours      model.generate_tokens(..., use_cache=True)   one token per forward, cached keys/values
  book      model.generate_tokens(..., use_cache=False)  a forward over the whole prefix per token
            (768 such forwards take tens of minutes on one CPU thread, so by default the time of a
            book step is measured at prefix lengths 256, 512, 768 and 1023 and the 768-step total is
            the trapezoid integral of that line; --baseline-new N times N real steps instead)
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
                    help="time N real book steps (default: estimate all --new steps from sampled prefix lengths)")
    ap.add_argument("--baseline-probes", type=int, default=4, help="timed book steps per sampled prefix length")
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

    if args.baseline_new:
        def book():
            model.generate_tokens(prompt, args.baseline_new, generator=torch.Generator().manual_seed(0),
                                  use_cache=False)

        results["book_full_recompute_tok_s"] = tokens_per_s(book, args.baseline_new, 1)
        results["book_method"] = f"timed {args.baseline_new} real steps (early, short-prefix steps: flatters the book)"
    else:
        # one book step = a forward over the whole prefix + sampling; its cost grows with the prefix
        lengths = sorted({args.prompt, args.prompt + args.new // 3, args.prompt + 2 * args.new // 3,
                          args.prompt + args.new - 1})
        per_step = {}
        for n in lengths:
            ctx = torch.randint(0, 388, (1, n))
            per_step[n] = 1 / tokens_per_s(lambda: model.generate_tokens(ctx, args.baseline_probes, use_cache=False,
                                                                         generator=torch.Generator().manual_seed(0)),
                                           args.baseline_probes, 1)
            print(f"  book step at prefix {n:5d}: {per_step[n] * 1000:7.1f} ms", flush=True)
        # a probe of k steps covers prefixes n..n+k-1; that drift is negligible against 768
        xs = list(range(args.prompt, args.prompt + args.new))
        import numpy as np

        total = float(np.sum(np.interp(xs, lengths, [per_step[n] for n in lengths])))
        results["book_full_recompute_tok_s"] = args.new / total
        results["book_step_ms_by_prefix"] = {str(n): round(v * 1000, 2) for n, v in per_step.items()}
        results["book_method"] = "estimated: timed steps at sampled prefix lengths, linearly interpolated and summed"
    print(f"book (full recompute):  {results['book_full_recompute_tok_s']:8.1f} tokens/s ({results['book_method']})",
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
