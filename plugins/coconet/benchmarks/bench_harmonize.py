"""Coconet: harmonizing an 8-bar melody (alto, tenor and bass written under a given soprano) with the
default Gibbs steps, on the shipped network's shape against a depthwise-separable one of the shipped width
(the Bach Doodle's layer), timed in turn in one process; and one Gibbs step of each beside one of the
paper's network (64 layers of 128 channels), whose whole harmonization takes minutes on a CPU.

Speed depends on the network's shape only, so the peers are freshly initialised; the shipped row uses the
released weights when they are installed. `make bench` (benchmarks/run.py) calls run(); alone:

    python plugins/coconet/benchmarks/bench_harmonize.py [--threads 1] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses

import torch

MELODY = [67, 67, 69, 71, 72, 71, 69, 67, 69, 71, 72, 74, 72, 71, 69, 67]   # a 16-quarter tune, twice: 8 bars


def _melody_classes(model) -> torch.Tensor:
    grid = torch.full((1, 4, 128), -1, dtype=torch.long)
    for k, pitch in enumerate(MELODY * 2):
        grid[0, 0, 4 * k:4 * k + 4] = pitch
    grid[0, 1:] = 60   # placeholders: every cell of these voices is rewritten
    return model.grid_to_classes(grid)


def run(bench, device: torch.device) -> dict:
    """Rows of seconds per Gibbs step and per harmonization (medians); ratio = a step's time / the shipped one's."""
    import zoo
    from zoo_coconet.model import Coconet, CoconetConfig
    from zoo_coconet.sampling import gibbs

    try:
        shipped = zoo.load("coconet-bach", device=device)
        shipped_label = "coconet-bach (shipped weights)"
    except Exception:   # not released yet: the default network's shape
        shipped = Coconet(CoconetConfig()).to(device)
        shipped_label = "default network (no weights installed)"
    steps = next(o.default for o in Coconet.generate_options if o.name == "gibbs_steps")
    temperature = next(o.default for o in Coconet.generate_options if o.name == "temperature")
    models = {shipped_label: shipped,
              "depthwise-separable, shipped width": Coconet(dataclasses.replace(shipped.config, separable=True)).to(device),
              "paper's network (64 x 128, full 3x3)": Coconet(CoconetConfig.paper()).to(device)}

    def harmonizer(model, gibbs_steps):
        model.eval()
        classes = _melody_classes(model).to(device)
        redo = torch.ones_like(classes, dtype=torch.bool)
        redo[:, 0] = False
        return lambda: gibbs(model, classes, redo, gibbs_steps, temperature, torch.Generator(device=device).manual_seed(0))

    labels = list(models)
    whole = bench.interleaved({label: harmonizer(models[label], steps) for label in labels[:2]})
    one = bench.interleaved({f"{label}, one step": harmonizer(models[label], 1) for label in labels})
    rows = [{"impl": label, "params": sum(p.numel() for p in models[label].parameters()),
             "step_s": one[f"{label}, one step"], "s": whole.get(label), "ratio": one[f"{label}, one step"] / one[f"{labels[0]}, one step"]}
            for label in labels]
    return {"rows": rows, "interleaved": True, "repeats": bench.repeats,
            "notes": [f"8 bars (128 16ths), {steps} Gibbs steps at temperature {temperature}, batch 1, "
                      f"{torch.get_num_threads()} thread(s); the issue's target: at most 2 s on one CPU thread"]}


def main(argv=None) -> int:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    from run import Bench

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = run(Bench(args.repeats), torch.device("cpu"))
    for r in res["rows"]:
        whole = "-" if r["s"] is None else f"{r['s']:.3f} s"
        print(f"{r['impl']:45s} {r['params']:>10,} params  step {r['step_s']:.3f} s  harmonization {whole}  x{r['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
