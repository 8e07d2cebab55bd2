"""Turn a finished `zoo train musegan` run into a shippable folder (weights/musegan-bach).

    python -m zoo_musegan.finalize RUN_DIR DEST [--calibrate] [--note TEXT ...]

With --calibrate, the tokenizer's rest threshold is set so that generated pieces have the
training data's rest rate (a decode-time setting; the weights are untouched), and the metric
table is computed again with it. Everything else in the card comes from the run's summary.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def calibrate_threshold(model, target_rest_rate: float, num: int = 1024, seed: int = 0) -> float:
    """The rest threshold at which `num` generated pieces are rests on `target_rest_rate` of their (voice, step)s."""
    rolls = model.sample(num, seed=seed)
    step_max = rolls.amax(dim=-1).flatten().double()
    return float(torch.quantile(step_max, target_rest_rate))


def finalize(run: Path, dest: Path, calibrate: bool = False, notes: list[str] | None = None) -> Path:
    """Load run/final, optionally calibrate the rest threshold, evaluate, write DEST with the full card."""
    import zoo
    from zoo.config import config_from_dict

    from .card import model_card
    from .data import WindowDataset, load_data
    from .metrics import rest_rate
    from .train import MuseGANTrainConfig, MuseGANTrainer

    summary = json.loads((run / "summary.json").read_text())
    model = zoo.load(str(run / "final"), device="cpu")
    c = model.config
    source = json.loads((run / "run.json").read_text()).get("data")   # the card's summary names only the folder
    data = load_data(source or None,
                     n_bars=c.n_bars, steps_per_bar=c.steps_per_bar, n_pitches=c.n_pitches)
    extra = list(notes or [])
    if calibrate:
        target = float(np.mean(rest_rate(data.splits["train"])))
        before = model.tokenizer.threshold
        model.tokenizer.threshold = round(calibrate_threshold(model, target), 4)
        extra.append(f"The tokenizer's rest threshold is {model.tokenizer.threshold} (default {before}): calibrated "
                     f"after training on 1,024 generated pieces so that their rest rate matches the training "
                     f"windows' ({target:.3f}). It changes decoding only, not the weights.")
        tc = config_from_dict(MuseGANTrainConfig, summary["train_config"])
        trainer = MuseGANTrainer(model, tc, source=None, device="cpu")
        ds = WindowDataset(data.splits["test"], c.n_bars, c.steps_per_bar, c.n_pitches)
        with torch.no_grad():
            summary["test_metrics"] = {k: float(v) for k, v in trainer.evaluate(ds).items()}
    stats = data.stats
    extra.append(f"Data: {stats.get('listed')} chorales listed by music21, {stats.get('unique')} distinct files, "
                 f"{stats.get('used')} used, {stats.get('skipped')} skipped "
                 f"({', '.join(f'{k}: {len(v)}' for k, v in stats.get('skipped_by_reason', {}).items())}); "
                 f"windows train/valid/test {'/'.join(str(len(data.splits[s])) for s in ('train', 'valid', 'test'))} "
                 f"(data version {stats.get('data_version')}).")
    card = model_card(summary)
    if extra:
        card += "\n## Notes\n\n" + "\n".join(f"- {n}" for n in extra) + "\n"
    model.eval()
    model.save_pretrained(dest, card=card)
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("dest", type=Path)
    ap.add_argument("--calibrate", action="store_true")
    ap.add_argument("--note", action="append", default=[])
    args = ap.parse_args()
    print(finalize(args.run, args.dest, args.calibrate, args.note))


if __name__ == "__main__":
    main()
