"""Turn a finished `zoo train music-transformer` run into weights/music-transformer-classical.

    python plugins/music_transformer/scripts/publish_classical.py RUN_DIR [--dest weights/music-transformer-classical]

Measures train (a fixed sample of training windows, no augmentation), validation and test NLL
per token, generates the card's sample from a prompt taken from the test split, and saves
everything (card, prompt.mid, sample.mid) through save_pretrained so the manifest covers it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from pathlib import Path

import torch

import zoo
from zoo.config import config_from_dict
from zoo_music_transformer import data
from zoo_music_transformer.train import MusicTransformerTrainer

BOOK = {"n_layer": 6, "n_head": 8, "n_embd": 512, "block_size": 2048, "dropout": 0.1}


def nll(trainer, pieces, block, windows=None):
    ds = data.EvalDataset(pieces, block)
    if windows:
        step = max(1, len(ds.windows) // windows)
        ds.windows = ds.windows[::step][:windows]
    return trainer.evaluate(ds)


def midi_bytes(midi) -> bytes:
    buf = io.BytesIO()
    midi.write(buf)
    return buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--dest", default="weights/music-transformer-classical")
    ap.add_argument("--prompt-tokens", type=int, default=256)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--train-windows", type=int, default=200)
    ap.add_argument("--note", default="", help="extra text for the Training section (e.g. how the run was resumed)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = Path(args.run)
    summary = json.loads((run / "summary.json").read_text())
    metrics = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    model = zoo.load(str(run / "final"), device="cpu").eval()
    cfg = model.config
    tcfg = config_from_dict(MusicTransformerTrainer.config_class, summary["train_config"])
    trainer = MusicTransformerTrainer(model, tcfg, device="cpu")
    corpus = data.load_corpus(None, max_pieces=tcfg.max_pieces or None)
    stats = corpus.stats()

    t0 = time.time()
    train_m = nll(trainer, corpus.split("train"), cfg.block_size, args.train_windows)
    valid_m = nll(trainer, corpus.split("valid"), cfg.block_size)
    test_m = nll(trainer, corpus.split("test"), cfg.block_size)  # every token (the run's own may be capped)
    eval_s = time.time() - t0

    # the prompt: the opening of a test-split piece (a Bach chorale if one is there: short and familiar)
    splits = data.assign_splits(corpus.names)
    test_names = [n for n, s in zip(corpus.names, splits) if s == "test"]
    name = next((n for n in test_names if n.startswith("bach/")), test_names[0])
    ids = torch.as_tensor(corpus.tokens[corpus.names.index(name)][:args.prompt_tokens])
    prompt_midi = model.tokenizer.decode(ids)
    settings = dict(length=args.length, temperature=0.9, top_p=0.95, seed=0)
    t0 = time.time()
    sample = model.generate(prompt=ids.tolist(), **settings)
    gen_s = time.time() - t0

    valid_curve = [(m["step"], m["valid_nll"]) for m in metrics if "valid_nll" in m]
    losses = [m["loss"] for m in metrics if "loss" in m]
    tc = summary["train_config"]
    token_positions = summary["steps"] * tc["batch_size"] * cfg.block_size
    diffs = ", ".join(f"{k} {getattr(cfg, k)} (book {v})" for k, v in BOOK.items() if getattr(cfg, k) != v)
    curve = "\n".join(f"| {s} | {v:.4f} |" for s, v in valid_curve)
    card = f"""# music-transformer-classical

A Music Transformer (decoder-only GPT over the book's 390 performance events) trained with
`zoo train music-transformer` on the embedded music21 classical corpus. It continues a MIDI
prompt:

```console
$ zoo generate music-transformer-classical --prompt some.mid --length 512 --temperature 0.9 --top-p 0.95 -o cont.mid
```

## Model

{summary['parameters']:,} parameters. Config:

```json
{json.dumps(summary['model_config'], indent=2)}
```

**Differences from the book:** no GPU was available, so this is a smaller model trained for
{summary['train_time_s'] / 60:.0f} minutes on one CPU thread: {diffs}. The book trains its 20.4 M-parameter model
(6 layers, 512 wide, block 2048) with Adam at lr 1e-4, batch 2, no schedule, on the first
2,048 tokens of each file; here AdamW (lr {tc['lr']}, {tc['warmup_steps']} warmup steps then cosine to
{tc['min_lr_ratio']} x lr, weight decay {tc['weight_decay']}, clipping {tc['grad_clip']}), batch {tc['batch_size']}, random crops
of every piece each epoch, transposition +-{tc['transpose']} semitones and time stretch +-{tc['stretch'] * 100:.0f} %.
The book's velocity-token bug is fixed and drum tracks are dropped (the corpus has none).

## Data

The music21 corpus (Bach, Palestrina, Monteverdi, Beethoven, Mozart, Haydn, Handel, Schubert,
the Schumanns, Josquin, the Trecento collection and single pieces by other composers),
rendered with tempo from the scores' marks (80 beats per minute of the time signature's beat
where there are none) and velocity from dynamics (mf where there are none). Split by piece
(hash of the name, 90/5/5):

| split | pieces | tokens |
| --- | --- | --- |
| train | {stats['train']['pieces']} | {stats['train']['tokens']:,} |
| valid | {stats['valid']['pieces']} | {stats['valid']['tokens']:,} |
| test | {stats['test']['pieces']} | {stats['test']['tokens']:,} |

{stats['skipped']} score(s) could not be parsed and were skipped.

## Training

- Steps: {summary['steps']:,} at batch {tc['batch_size']} x {cfg.block_size} tokens:
  {token_positions:,} token positions seen (PAD positions of short pieces are not scored).
- Hardware: {summary['hardware']}.
- Training time: {summary['train_time_s'] / 60:.1f} min (wall clock, on a 2-core machine shared with other jobs).
- Training loss (NLL/token on augmented crops, as logged): first logged {losses[0]:.3f}, last {losses[-1]:.3f}.
{args.note}

Validation NLL per token during training (on the first {tc['eval_windows'] or 'all'} windows of the valid split; the
table below scores every token):

| step | valid NLL (nats) |
| --- | --- |
{curve}

## Results (NLL per token in nats, every token of the split, no dropout, no augmentation)

| data | NLL / token | perplexity | tokens |
| --- | --- | --- | --- |
| train (sample of {args.train_windows} windows) | {train_m['nll']:.4f} | {train_m['ppl']:.2f} | {int(train_m['tokens']):,} |
| validation | {valid_m['nll']:.4f} | {valid_m['ppl']:.2f} | {int(valid_m['tokens']):,} |
| test | {test_m['nll']:.4f} | {test_m['ppl']:.2f} | {int(test_m['tokens']):,} |

A uniform guess over the 388 sampled events scores ln 388 = 5.96 nats.

## Sample

`prompt.mid` is the first {args.prompt_tokens} tokens of the test-split piece `{name}`;
`sample.mid` is that prompt followed by {args.length} generated tokens
(`temperature=0.9, top_p=0.95, seed=0`, notes cut at 5 s by `generate`'s default stuck-note
guard `max_note_s=5.0`; {gen_s:.1f} s on one CPU thread). This small model sometimes never
releases a note; without the guard such notes would sound to the end. Reproduce:

```python
import zoo
from zoo_music_transformer.data import load_corpus
corpus = load_corpus()  # parses and caches the music21 corpus on first use
ids = corpus.tokens[corpus.names.index("{name}")][:{args.prompt_tokens}]
model = zoo.load("music-transformer-classical")
model.generate(prompt=ids.tolist(), length={args.length}, temperature=0.9, top_p=0.95, seed=0).write("x.mid")
```

Or continue the prompt file: `zoo generate music-transformer-classical --prompt prompt.mid --length 512 -o cont.mid`.

## Licence

Weights: MIT. Training data: the music21 corpus (BSD licence; the scores are public domain).
"""
    model.save_pretrained(args.dest, card=card, extra_files={"prompt.mid": midi_bytes(prompt_midi),
                                                             "sample.mid": midi_bytes(sample)})
    print(json.dumps({"train": train_m, "valid": valid_m, "test": test_m, "eval_s": eval_s, "gen_s": gen_s,
                      "prompt_piece": name, "stats": stats}, indent=2))


if __name__ == "__main__":
    main()
