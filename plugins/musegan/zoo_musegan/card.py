"""The model card (README.md) of a trained MuseGAN: config, training, losses, metrics beside the test data."""

from __future__ import annotations

import dataclasses
import json

from .model import MuseGANConfig

BOOK_TRAIN = {"lr": 1e-3, "batch_size": 64, "n_critic": 5, "gp_weight": 10.0, "beta1": 0.5, "beta2": 0.9}

METRIC_NOTES = {
    "rest_rate": "share of 16th steps that are rests, per voice",
    "upc_per_bar": "distinct pitch classes per bar, all voices",
    "in_scale": "share of notes in the best-fitting major / harmonic-minor scale",
    "note_length": "mean note length in 16th steps (held pitches merged)",
    "tonal_distance": "Harte et al. (2006) tonal-centroid distance between two voices, per bar",
    "in_range": "share of a voice's notes inside its SATB range (S C4-A5, A F3-D5, T C3-A4, B C2-D4)",
    "voice_crossing": "share of sounding adjacent-voice pairs where the upper voice is lower",
}


def differences_from_book(model_config: dict, train_config: dict) -> list[str]:
    """Lines saying where a run differs from the book's network and recipe."""
    book = dataclasses.asdict(MuseGANConfig())
    lines = [f"`{k}` = {model_config[k]} (book: {v})" for k, v in book.items() if model_config.get(k) != v]
    lines += [f"`{k}` = {train_config[k]} (book: {v})" for k, v in BOOK_TRAIN.items() if train_config.get(k) != v]
    if train_config.get("transpose"):
        lines.append(f"transposition augmentation of up to ±{train_config['transpose']} semitones (book: none)")
    return lines


def metric_table(metrics: dict) -> str:
    """Rows `| metric | generated | test data |` from evaluate()'s gen_* / data_* keys."""
    rows = []
    for key, value in metrics.items():
        if not key.startswith("gen_"):
            continue
        name = key[4:]
        data = metrics.get(f"data_{name}")
        rows.append(f"| {name} | {value:.3f} | {'' if data is None else f'{data:.3f}'} |")
    return "| metric | generated | test data |\n| --- | ---: | ---: |\n" + "\n".join(rows)


def model_card(summary: dict) -> str:
    """README.md for final/ from the trainer's summary."""
    mc, tc = summary["model_config"], summary["train_config"]
    diffs = differences_from_book(mc, tc)
    diff_text = "\n".join(f"- {d}" for d in diffs) if diffs else "- none: this is the book's configuration"
    last = summary.get("last", {})
    losses = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k in ("critic_loss", "gen_loss", "wasserstein", "gp"))
    metrics = summary.get("test_metrics", {})
    data = summary["data"]
    if data in (None, "embedded default"):
        data = "the Bach chorales of music21's corpus (the plugin's default data; 2-bar windows, train split by BWV)"
    notes = "\n".join(f"- **{k}**: {v}" for k, v in METRIC_NOTES.items())
    extra = f"\nCritic's Wasserstein estimate, test data vs generated: {metrics['critic_w_distance']:.4f}\n" \
        if "critic_w_distance" in metrics else ""
    return f"""---
license: mit
library_name: musezoo
tags: [music-generation, midi, musegan, gan, bach-chorales]
---

# {summary['arch']} trained with musezoo

MuseGAN (Dong et al. 2018) as in the book's chapter: a WGAN-GP whose generator turns four
noise inputs (chords, style, melody, groove) into 2-bar, 4-voice (SATB) piano rolls of 16th
notes and 84 pitches. The book's bugs are fixed (voice order when decoding, alpha drawn once,
U[0,1) noise at inference, generator not in eval mode), rests and held notes are expressible.

- Parameters: {summary['parameters']:,} (generator and critic; the generator alone is `model.safetensors`,
  the critic is `critic.safetensors`, kept for resuming and fine-tuning)
- Data: {data}
- Steps: {summary['steps']} (one step = {tc.get('n_critic', 5)} critic updates + 1 generator update, batch {tc['batch_size']})
- Hardware: {summary['hardware']}
- Training time: {summary['train_time_s']} s
- Final losses: {losses}

## Differences from the book

{diff_text}

## Config

```json
{json.dumps(mc, indent=2)}
```

Training config:

```json
{json.dumps(tc, indent=2)}
```

## Metrics: generated pieces vs held-out test windows

{metric_table(metrics)}
{extra}
{notes}

## Use

```console
zoo generate musegan-bach -o chorale.mid --num 4 --seed 7   # chorale-1.mid ... chorale-4.mid, one 2-bar piece each
```

```python
import zoo
midi = zoo.load("musegan-bach").generate(num=4, seed=0)   # a list of 4 PrettyMIDI objects
```
"""
