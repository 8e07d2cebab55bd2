"""`make bench`: run the seven benchmarks against their peers and regenerate docs/benchmarks.md.

    python benchmarks/run.py                      # CPU, every benchmark -> docs/benchmarks.md
    python benchmarks/run.py --only train --page ''   # one section, printed only (see --help for the names)
    python benchmarks/run.py --device cuda --only generate,train,musegan,cold --json benchmarks/results/gpu.json

Each benchmark runs ours and the peer in the same process run, one warm-up then --repeats timed runs,
and reports medians and the ratio. A GPU run writes JSON (--json); the page includes every
benchmarks/results/*.json it finds as its own section, so GPU numbers come from the same code.
The page is written by this script only; never edit it by hand.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "plugins" / "musegan" / "benchmarks"))   # the MuseGAN iteration lives with its plugin
sys.path.insert(0, str(ROOT / "plugins" / "coconet" / "benchmarks"))   # and Coconet's harmonization with its own
ALL = ("generate", "train", "musegan", "cold", "tokenize", "cli", "coconet")


class Bench:
    """Medians of repeated runs; every sample is kept for the page."""

    def __init__(self, repeats: int, log=print):
        self.repeats, self.log, self.samples = repeats, log, {}

    def median(self, fn, label: str, timed: bool = True, warmup=None) -> float:
        """One warm-up (fn, or a cheaper `warmup` that touches the same code), then `repeats` runs;
        fn() is timed here, or (timed=False) returns its own seconds."""
        (warmup or fn)()
        times = []
        for _ in range(self.repeats):
            if timed:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            else:
                times.append(fn())
        return self._record(label, times)

    def interleaved(self, fns: dict, repeats: int | None = None) -> dict:
        """Medians of several fns timed in turn (one warm-up each, then rounds of one run of each), so that a
        neighbour's load on a shared machine falls on every row alike instead of on whichever ran then."""
        for fn in fns.values():
            fn()
        times = {label: [] for label in fns}
        for _ in range(repeats or self.repeats):
            for label, fn in fns.items():
                t0 = time.perf_counter()
                fn()
                times[label].append(time.perf_counter() - t0)
        return {label: self._record(label, ts) for label, ts in times.items()}

    def _record(self, label: str, times: list[float]) -> float:
        """Keep the samples for the page, log them, return their median."""
        self.samples[label] = times
        med = statistics.median(times)
        self.log(f"  {label}: median {med:.3f} s (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})")
        return med


def machine(device: str) -> dict:
    """CPU, threads, torch version, GPU: the page's header."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "os": platform.platform(),
            "device": device, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    info.update(matrix_features())
    try:
        info["load_avg_1m"] = os.getloadavg()[0]
    except OSError:
        pass
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info["gpu"] = f"{p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs"
        info["cuda"] = torch.version.cuda
    try:
        info["commit"] = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                        text=True).stdout.strip()
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("transformers", "miditok", "symusic"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return info


# the CPU's matrix features, as /proc/cpuinfo names them: they decide the fast decoding path (AMX: compiled bf16;
# without: int8, quantize.py), so each kind of CPU keeps its own section of the page
MATRIX_FLAGS = (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"), ("avx512_vnni", "AVX512-VNNI"),
                ("avx512f", "AVX-512"), ("avx2", "AVX2"))


def matrix_features() -> dict:
    """{"amx": "yes (amx_bf16)"/"no", "matrix": "AVX512-BF16, AVX-512, AVX2 (no AMX)", "cpu_kind": "amx"/"no-amx"},
    or {} where /proc/cpuinfo has no flags (not Linux, not x86)."""
    try:
        flags = set(next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split())
    except (OSError, StopIteration):
        return {}
    has = [name for flag, name in MATRIX_FLAGS if flag in flags]
    amx = "amx_bf16" in flags
    return {"amx": "yes (amx_bf16)" if amx else "no", "cpu_kind": "amx" if amx else "no-amx",
            "matrix": ", ".join(has) + ("" if amx else " (no AMX)") if has else "none of AMX, AVX-512, AVX2"}


def run_all(args) -> dict:
    """Run the selected benchmarks; a benchmark that cannot run records why instead of failing the page."""
    import torch

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    bench = Bench(args.repeats)
    out = {"machine": machine(args.device), "repeats": args.repeats, "results": {}}
    only = args.only.split(",") if args.only else ALL
    for name in only:
        print(f"[{name}]", flush=True)
        t0 = time.perf_counter()
        try:
            if name == "generate":
                import bench_generate

                res = bench_generate.run(bench, device, batches=tuple(args.batches), prompt=args.prompt,
                                         new=args.new, book_new=args.book_new, compiled=args.compile)
                if (args.prompt, args.new, args.book_new) != (256, 768, 768) and 1 in args.batches:
                    res["estimate"] = bench_generate.estimate_full(bench, device, batch=1)
                res["bandwidth"] = bench_generate.bandwidth(device, res["rows"])
            elif name == "train":
                import bench_mt_train

                res = bench_mt_train.run(bench, device, batch=args.train_batch, block=args.train_block)
            elif name == "musegan":
                import bench_iteration

                res = bench_iteration.run(bench, device, batch=args.gan_batch)
            elif name == "coconet":
                import bench_harmonize

                res = bench_harmonize.run(bench, device)
            elif name == "cold":
                import bench_cold_load

                res = bench_cold_load.run(bench, args.device)
            elif name == "tokenize":
                import bench_tokenize

                res = bench_tokenize.run(bench)
            elif name == "cli":
                import bench_cli

                res = bench_cli.run(bench)
            else:
                raise SystemExit(f"unknown benchmark {name!r}; choose from {', '.join(ALL)}")
        except ImportError as exc:
            res = {"skipped": f"{type(exc).__name__}: {exc}"}
            print(f"  skipped: {res['skipped']}")
        res["seconds"] = time.perf_counter() - t0
        out["results"][name] = res
    out["samples"] = bench.samples
    return out


# --- the page --------------------------------------------------------------------------------------

TITLES = {
    "generate": "1. Music Transformer generation (tokens/s)",
    "train": "2. Music Transformer training (tokens/s)",
    "musegan": "3. MuseGAN training iteration (5 critic + 1 generator step)",
    "cold": "4. Cold load to first output",
    "tokenize": "5. Tokenizing a MIDI folder",
    "cli": "6. CLI start-up",
    "coconet": "7. Coconet: harmonizing an 8-bar melody",
}


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(head))) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def section(name: str, res: dict, repeats: int) -> list[str]:
    lines = [f"### {TITLES[name]}", ""]
    if "skipped" in res:
        return lines + [f"Skipped: {res['skipped']}", ""]
    if name == "generate":
        lines += _table(["batch", "implementation", "tokens/s (median)", "× ours (KV cache)", "× HF generate"],
                        [(r["batch"], r["impl"], f"{r['tok_s']:.1f}", f"{r['ratio']:.2f}",
                          f"{r['vs_hf']:.2f}" if "vs_hf" in r else "-") for r in res["rows"]])
        est = res.get("estimate")
        if est:
            lines += ["", f"At the full sizes (batch {est['batch']}, {est['prompt']} + {est['new']} tokens), "
                      f"estimated from single steps timed at context lengths {', '.join(map(str, est['lengths']))} "
                      f"(medians, interpolated and summed; sampling left out): ours {est['ours_tok_s']:.1f} tokens/s, "
                      f"the book's recompute {est['book_tok_s']:.2f} tokens/s: ours is {est['ratio']:.1f}× faster."]
        bw = res.get("bandwidth")
        if bw and "rows" in bw:
            what = "1 GiB" if bw["device"] == "cuda" else "256 MiB"
            lines += ["", f"Memory read per decoding step (every weight once, the embedding tables left out, plus "
                      f"each sequence's cached keys and values: the context so far for ours, the whole static "
                      f"cache for the compiled step, which reads it masked), times steps/s from the tokens/s "
                      f"above (prefill and sampling included), against {bw['read_GBs']:.1f} GB/s measured "
                      f"read bandwidth (a sum over {what}, same threads):", ""]
            lines += _table(["batch", "implementation", "MB read / step", "GB/s achieved", "% of read bandwidth"],
                            [(r["batch"], r["impl"], f"{r['MB_per_step']:.0f}", f"{r['achieved_GBs']:.1f}",
                              f"{100 * r['fraction']:.0f}") for r in bw["rows"]])
        elif bw:   # a result file from before the compiled rows
            lines += ["", f"Batch-1 decoding (ours) reads about {bw['bytes_per_token_MB']:.0f} MB per token: "
                      f"{bw['achieved_GBs']:.1f} GB/s achieved against {bw['copy_GBs']:.1f} GB/s measured copy "
                      f"bandwidth ({100 * bw['fraction']:.0f} %)."]
    elif name == "train":
        lines += _table(["model", "implementation", "tokens/s (median)", "s / step", "× before"],
                        [(r.get("size", ""), r["impl"], f"{r['tok_s']:.0f}", f"{r['s']:.2f}", f"{r['ratio']:.2f}")
                         for r in res["rows"]])
        if res.get("memory"):
            lines += ["", f"Peak memory of one training step ({res['memory_note']}):", ""]
            lines += _table(["implementation", "batch", "RSS before the step (GB)", "peak RSS (GB)", "s (that one step)"],
                            [(m["impl"], m["batch"], "-", m["error"], "-") if "error" in m else
                             (m["impl"], m["batch"], f"{m['rss_before_GB']:.2f}",
                              f"{m['peak_rss_GB']:.2f}", f"{m['s']:.1f}") for m in res["memory"]])
    elif name == "musegan":
        lines += _table(["implementation", "s / iteration (median)", "× ours fp32 (time)"],
                        [(r["impl"], f"{r['s']:.3f}", f"{r['ratio']:.2f}") for r in res["rows"]])
    elif name == "coconet":
        lines += _table(["network", "parameters", "s / Gibbs step (median)", "s / harmonization (median)",
                         "× shipped (step time)"],
                        [(r["impl"], f"{r['params']:,}", f"{r['step_s']:.3f}", "-" if r["s"] is None else f"{r['s']:.2f}",
                          f"{r['ratio']:.2f}") for r in res["rows"]])
    elif name == "cold":
        lines += _table(["implementation", "wall s (median)", "× ours"],
                        [(r["impl"], f"{r['s']:.2f}", f"{r['ratio']:.2f}") for r in res["rows"]])
    elif name == "tokenize":
        lines += _table(["implementation", "files/s", "tokens/s", "tokens", "× ours (time)"],
                        [(r["impl"], f"{r['files_s']:.1f}", f"{r['tok_s']:.0f}", r["tokens"], f"{r['ratio']:.2f}")
                         for r in res["rows"]])
    elif name == "cli":
        lines += _table(["command", "wall s (median)", "× import torch"],
                        [(r["impl"], f"{r['s']:.2f}", f"{r['ratio']:.2f}") for r in res["rows"]])
    lines += [""] + [f"- {n}" for n in res.get("notes", [])]
    how = "timed in turn, " if res.get("interleaved") else ""
    lines += [f"- medians of {res.get('repeats', repeats)} timed runs after one warm-up ({how}this benchmark took "
              f"{res['seconds']:.0f} s)", ""]
    return lines


def header(m: dict) -> list[str]:
    keys = [("date", "run at"), ("commit", "commit"), ("cpu", "CPU"), ("amx", "AMX (bf16 matrix units)"),
            ("matrix", "matrix features"),
            ("cpu_count", "logical CPUs"),
            ("torch_threads", "torch threads"), ("load_avg_1m", "load average (1 min) at start"),
            ("torch", "torch"), ("cuda", "CUDA"), ("gpu", "GPU"), ("python", "Python"), ("os", "OS"),
            ("transformers", "transformers"), ("miditok", "miditok"), ("symusic", "symusic")]
    return [f"- {label}: {m[k] if not isinstance(m[k], float) else f'{m[k]:.2f}'}" for k, label in keys if k in m]


# each kind of CPU keeps its own section of the page, rewritten only by a run on that kind
CPU_KINDS = {"amx": "CPU with AMX", "no-amx": "CPU without AMX (AVX2 / AVX-512)"}
RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "benchmarks.md"


def body(run: dict) -> list[str]:
    """One run's part of the page under its title: the machine, the sizes, a section per benchmark."""
    lines = [*header(run["machine"]), ""]
    if run.get("sizes"):
        lines += [run["sizes"], ""]
    for name in ALL:
        if name in run["results"]:
            lines += section(name, run["results"][name], run["repeats"])
    return lines


def page(runs: list[tuple[str, dict]], command: str, kept: dict[str, str] | None = None) -> str:
    """The whole page: each CPU kind's kept section (kind -> markdown, benchmarks/results/cpu-KIND.md),
    then every run of `runs` (title, result) under its title."""
    lines = ["# Benchmarks", "",
             f"Generated by `{command}` (`make bench`); do not edit by hand. Sources: `benchmarks/`.",
             "Every benchmark runs ours and its peer in the same process run and reports medians and the ratio.",
             "Each kind of CPU keeps its own dated section (" + ", ".join(CPU_KINDS.values()) + "): a run on a "
             "CPU rewrites its kind's section (kept in `benchmarks/results/cpu-KIND.md`) and leaves the other as "
             "it was.", ""]
    for kind, title in CPU_KINDS.items():
        if kind in (kept or {}):
            lines += [f"## {title}", "", kept[kind].rstrip(), ""]
    for title, run in runs:
        lines += [f"## {title}", "", *body(run)]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(ALL)}")
    ap.add_argument("--repeats", type=int, default=3,
                    help="timed runs per measurement after one warm-up (default 3: the page stays under ~15 minutes)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default 1 on a CPU: shared cores make more threads slower and noisier)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--prompt", type=int, default=None, help="prompt tokens (default 256)")
    ap.add_argument("--new", type=int, default=None, help="new tokens (default 768 on a GPU, 256 on a CPU)")
    ap.add_argument("--book-new", dest="book_new", type=int, default=None,
                    help="new tokens for the book's recompute (default: --new on a GPU, 4 on a CPU)")
    ap.add_argument("--no-compile", dest="compile", action="store_false",
                    help="leave out the compiled decoding rows (they compile 20-90 s per batch size)")
    ap.add_argument("--train-batch", dest="train_batch", type=int, default=4, help="MT training batch at the book widths (default 4)")
    ap.add_argument("--train-block", dest="train_block", type=int, default=512,
                    help="MT training sequence length (default 512)")
    ap.add_argument("--gan-batch", dest="gan_batch", type=int, default=None, help="default 64")
    ap.add_argument("--json", default=None, help="write the raw results here (a GPU run: benchmarks/results/NAME.json)")
    ap.add_argument("--page", default=None,
                    help="the page to regenerate ('' = none; default docs/benchmarks.md, or none with --only: a "
                         "subset would replace this CPU kind's whole section, so it is printed instead; give "
                         "--page docs/benchmarks.md to write it all the same)")
    args = ap.parse_args(argv)
    unknown = set(args.only.split(",")) - set(ALL) if args.only else set()
    if unknown:
        ap.error(f"unknown benchmark {', '.join(sorted(unknown))}; choose from {','.join(ALL)}")
    gpu = args.device.startswith("cuda")
    args.prompt = args.prompt or 256
    args.new = args.new or (768 if gpu else 256)
    args.book_new = args.book_new or (args.new if gpu else 4)
    args.gan_batch = args.gan_batch or 64
    if args.threads is None and not gpu:
        args.threads = 1
    if args.threads:   # the subprocess benchmarks (cold load, CLI) get the same thread count
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    result = run_all(args)
    only = args.only.split(",") if args.only else ALL
    sizes = []
    if "generate" in only:
        sizes.append(f"generation prompt {args.prompt} + {args.new} new tokens"
                     f"{f' ({args.book_new} for the book)' if args.book_new != args.new else ''}, batches "
                     f"{', '.join(map(str, args.batches))}")
    if "train" in only:
        sizes.append(f"Music Transformer training block {args.train_block}, batch 8 (4 x 256) and "
                     f"{args.train_batch} (book widths)")
    if "musegan" in only:
        sizes.append(f"MuseGAN batch {args.gan_batch}")
    result["sizes"] = f"Sizes: {'; '.join(sizes)}." if sizes else ""
    if "generate" in only and (args.prompt, args.new, args.book_new) != (256, 768, 768):
        result["sizes"] += (" The generation sizes are smaller than the full benchmark's (256 + 768 tokens for every "
                            "implementation), which `python benchmarks/run.py --new 768 --book-new 768` "
                            "runs: on this shared 2-core CPU the book's full-prefix recompute at "
                            "batch 8 alone would take hours at those sizes, far past the page's 15-minute budget. "
                            "Each step of the book's recompute is a forward over the whole prefix, so its cost "
                            "per token grows with the context: its tokens/s over a few tokens after the prompt "
                            "flatters it. The estimate under the table puts both at the full sizes.")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    if args.page is None and args.only:
        print("\n" + page([(f"This machine ({args.device})", result)], "python benchmarks/run.py " + " ".join(argv or sys.argv[1:])))
        print("(--only: docs/benchmarks.md left as it was; --page docs/benchmarks.md rewrites this CPU kind's "
              "section with this subset, --page PATH writes the page to PATH)")
    elif args.page is None:
        args.page = str(PAGE)
    if args.page:
        kind = result["machine"].get("cpu_kind") if not gpu else None
        runs = [] if kind else [(f"This machine ({args.device})", result)]
        kept = {k: (RESULTS / f"cpu-{k}.md").read_text() for k in CPU_KINDS if (RESULTS / f"cpu-{k}.md").is_file()}
        if kind:   # this CPU's kind gets its section rewritten; the other kinds' stay as they were
            kept[kind] = "\n".join(body(result)).rstrip() + "\n"
            if Path(args.page).resolve() == PAGE.resolve():   # kept for the next run on another kind of CPU
                RESULTS.mkdir(parents=True, exist_ok=True)
                (RESULTS / f"cpu-{kind}.md").write_text(kept[kind])
        for extra in sorted(RESULTS.glob("*.json")):
            if args.json and Path(args.json).resolve() == extra.resolve():
                continue
            other = json.loads(extra.read_text())
            runs.append((f"{other['machine'].get('gpu') or other['machine']['device']} "
                         f"(recorded by `benchmarks/run.py --json {extra.relative_to(ROOT)}`)", other))
        text = page(runs, "python benchmarks/run.py", kept)
        if not any(r["machine"].get("gpu") for _, r in runs):
            text += ("\n## GPU\n\nNo GPU was at hand for this page. On a CUDA machine, "
                     "`python benchmarks/run.py --device cuda --only generate,train,musegan,cold --json "
                     "benchmarks/results/gpu.json` runs benchmarks 1-4 at the full sizes and measures the achieved "
                     "memory bandwidth of decoding against the card's read bandwidth; the next "
                     "`make bench` includes that file as its own section.\n")
        Path(args.page).parent.mkdir(parents=True, exist_ok=True)
        Path(args.page).write_text(text)
        print(f"wrote {args.page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
