"""The validation curves of MuseGAN runs: a markdown table and a picture, from each run's metrics.jsonl.

    python plugins/musegan/tools/curves.py runs/musegan-C runs/musegan-D --png docs/img/musegan-branches.png

Every evaluation (eval_every steps) becomes a row: the release rule's score of the moving average
(`valid_release_score`, what zoo release picks by) and of the trained generator, the bass's rest rate and
the parallel fifths and octaves per 100 16ths. The picture needs matplotlib (musezoo[render]).
"""

from __future__ import annotations

import argparse
from pathlib import Path

COLUMNS = {"score": "valid_release_score", "score (trained)": "valid_trained_release_score",
           "distance": "valid_distance_to_data", "bass resting": "valid_gen_rest_rate_B",
           "parallels per 100": "valid_gen_parallels_per_100", "all voices sound": "valid_gen_all_voices_sounding"}


def evaluations(run: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl that hold a validation, in step order."""
    from zoo.train import read_metrics

    return sorted((r for r in read_metrics(run) if "valid_release_score" in r), key=lambda r: r["step"])


def table(runs: dict[str, list[dict]]) -> str:
    head = "| run | step | " + " | ".join(COLUMNS) + " |\n|---|---:|" + "---:|" * len(COLUMNS) + "\n"
    cells = lambda r: " | ".join(f"{r[k]:.3f}" if k in r else "" for k in COLUMNS.values())   # noqa: E731
    return head + "".join(f"| {name} | {r['step']} | {cells(r)} |\n" for name, rows in runs.items() for r in rows)


def picture(runs: dict[str, list[dict]], out: Path, shipped: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (label, key) in zip(axes, [("release score (lower is better)", "valid_release_score"),
                                       ("bass resting (share of 16ths)", "valid_gen_rest_rate_B"),
                                       ("parallel 5ths + 8ves per 100 16ths", "valid_gen_parallels_per_100")]):
        for name, rows in runs.items():
            ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="o", label=name)
        if shipped is not None and key == "valid_release_score":
            ax.axhline(shipped, color="black", linestyle="--", label="shipped")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("steps after the branch")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (zoo train --out)")
    p.add_argument("--png", type=Path, default=None, help="also draw the curves into this picture")
    p.add_argument("--shipped", type=float, default=None, help="the shipped model's score, drawn as a line")
    args = p.parse_args()
    runs = {run.name: evaluations(run) for run in args.runs}
    print(table(runs), end="")
    if args.png:
        picture(runs, args.png, args.shipped)


if __name__ == "__main__":
    main()
