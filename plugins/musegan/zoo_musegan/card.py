"""MuseGAN's sections of the model card (README.md): what its metrics mean, how it decodes, how it differs from
the book. zoo.card builds the card around them."""

from __future__ import annotations

import dataclasses

from .model import MuseGANConfig

BOOK_TRAIN = {"lr": 1e-3, "batch_size": 64, "n_critic": 5, "gp_weight": 10.0, "beta1": 0.5, "beta2": 0.9,
              "critic_lr": 0.0, "ema_decay": 0.0}

CHORALE_NOTES = {
    "in_scale": "duration-weighted share of sounding voice-steps in the best-fitting major / natural-minor scale",
    "chord_rate": "share of 16ths with 3+ voices sounding whose pitch classes form a major/minor triad or dominant 7th",
    "voice_crossing": "share of (16th, adjacent voice pair) with both sounding where the upper voice is below",
    "stepwise": "share of melodic motions (consecutive notes of a voice) of at most 2 semitones",
    "note_length": "mean note length in 16ths, held notes merged",
    "leaps_over_octave": "share of melodic motions larger than 12 semitones",
    "near_duplicates": "share of pairs of pieces whose normalised Hamming distance is below 0.6",
    "satb_order": "share of pieces whose mean pitches fall S > A > T > B",
}

METRIC_NOTES = {
    "rest_rate": "share of 16th steps that are rests, per voice",
    "upc_per_bar": "distinct pitch classes per bar, all voices",
    "tonal_distance": "Harte et al. (2006) tonal-centroid distance between two voices, per bar",
    "in_range": "share of a voice's notes inside its SATB range (S C4-A5, A F3-D5, T C3-A4, B C2-D4)",
}


RELEASE_RULE = """Fixed before the runs it picks from (issue #30). `zoo release` takes the checkpoint with the lowest
`release_score` on the validation windows (`zoo_musegan.train.release_score`):

    release_score = distance_to_data
                  + 4.0  x  the largest |rest rate of a voice - the data's|
                  + 0.06 x  max(0, parallel fifths and octaves per 100 16ths - the data's)

- `distance_to_data`: the mean relative gap to Bach over the chorale table, as every earlier release used it.
- 4.0 on rests: a silent voice is what a listener hears first; the worst voice counts, since an average over
  four hides one silent bass. 4 puts musegan-bach v3's bass (resting 22 % of the validation 16ths, Bach 1 %)
  at +0.83, more than twice its whole distance.
- 0.06 on parallels: audible faults; v3 writes 7.6 per 100 16ths (all six voice pairs; Bach 0.16), which
  0.06 puts at +0.45, about its distance."""


def differences_from_book(model_config: dict, train_config: dict) -> list[str]:
    """Lines saying where a run differs from the book's network and recipe."""
    book = dataclasses.asdict(MuseGANConfig())
    lines = [f"`{k}` = {model_config[k]} (book: {v})" for k, v in book.items() if model_config.get(k) != v]
    lines += [f"`{k}` = {train_config[k]} (book: {v})" for k, v in BOOK_TRAIN.items() if train_config.get(k) != v]
    if train_config.get("transpose"):
        lines.append(f"transposition augmentation of up to ±{train_config['transpose']} semitones, kept inside every "
                     f"voice's range (book: none)")
    if model_config.get("output") in ("onehot", "gumbel"):
        how = ("the one-hot of the largest logit (deterministic binary neurons, Dong & Yang, ISMIR 2018)"
               if model_config["output"] == "onehot" else
               f"a Gumbel-max sample at temperature {model_config.get('sample_temperature', 1.0)}")
        lines.append(f"one-hot output `{model_config['output']}` (book: linear): per voice and 16th, logits over the "
                     f"84 pitches and a rest; the critic sees what the decoder plays, {how}, with a straight-through "
                     "softmax gradient, so it cannot tell real from fake by 'one-hotness' and must judge the music")
    if model_config.get("critic_onsets"):
        lines.append("the critic also sees where each note starts (book: the roll only), as in the onset stream of "
                     "Dong & Yang's MuseGAN code: it folds the pitch axis before it looks along time, so from the roll "
                     "alone it hardly tells a held note from a pitch jittering around it")
    if model_config.get("critic_voice_channels"):
        lines.append(f"the critic first hears each voice along time ({model_config['critic_voice_channels']} channels "
                     "per voice, convolutions over the 16ths with the pitches as channels), then mixes the voices, "
                     "and adds what it heard to its hidden layer (book: pitches folded before time)")
    if train_config.get("ema_decay"):
        lines.append(f"the generator that plays is the moving average of the trained weights (decay "
                     f"{train_config['ema_decay']}, Yazıcı et al. 2019; book: the trained weights)")
    return lines


def copy_text(metrics: dict) -> str:
    """The copy check in words, when evaluate() measured it."""
    if "copy_median_generated" not in metrics:
        return ""
    return (f"Copy check: the median distance (normalised Hamming, any transposition -6..+6) from a generated piece "
            f"to its nearest training window is {metrics['copy_median_generated']:.3f}, against "
            f"{metrics['copy_median_heldout']:.3f} for held-out Bach windows; "
            f"{metrics['copy_share_below_0.2_generated']:.1%} of generated pieces and "
            f"{metrics['copy_share_below_0.2_heldout']:.1%} of held-out windows lie within 0.2 of a training window.\n")


def decoding_rule(output: str, temperature: float = 1.0) -> str:
    """How a generated roll becomes notes, fixed before anything was measured."""
    if output == "onehot":
        return ("Decoding rule (fixed before measuring): each voice at each 16th plays one pitch or a rest, "
                "whichever has the largest logit; the critic was trained on exactly these one-hots. The noise inputs "
                "(seeded per piece) are the only randomness. No threshold.")
    if output == "gumbel":
        return ("Decoding rule (fixed before measuring): each voice at each 16th plays one pitch or a rest, "
                f"sampled from the generator's categorical at temperature {temperature}, softmax(logits / "
                f"{temperature}) (the Gumbel-max trick), seeded per piece; the critic was trained on exactly such "
                "samples. No threshold.")
    return ("Decoding rule: the highest output of each voice and 16th sounds if it is at least the "
            "tokenizer's threshold, else the voice rests.")


def card_sections(summary: dict) -> dict[str, str]:
    """MuseGAN's sections of the model card (zoo.card builds the rest: metadata, data, training, the metric
    tables, limitations, config): what the metrics mean, the decoding rule, the differences from the book."""
    mc, tc = summary["model_config"], summary["train_config"]
    metrics = summary.get("test_metrics", {})
    sections = {}
    if summary.get("data") in (None, "embedded default"):
        sections["Data"] = ("The Bach chorales of music21's corpus: 2-bar windows, split into train, valid and test "
                            "by BWV number.")
    sections["Training"] = (f"One step is {tc.get('n_critic', 5)} critic updates and 1 generator update (WGAN-GP). "
                            "The generator that plays is `model.safetensors`: the moving average of the trained "
                            "weights when `ema_decay` > 0. The trained generator (`generator.safetensors`) and the "
                            "critic (`critic.safetensors`) are kept for resuming and fine-tuning.")
    sections["Release rule"] = RELEASE_RULE
    notes = "\n".join(f"- **{k}**: {v}" for k, v in {**CHORALE_NOTES, **METRIC_NOTES}.items())
    critic = (f"Critic's Wasserstein estimate, test data vs generated: {metrics['critic_w_distance']:.4f}\n\n"
              if "critic_w_distance" in metrics else "")
    rule = decoding_rule(mc.get("output", "linear"), mc.get("sample_temperature", 1.0))
    sections["Metrics"] = f"{rule}\n\n{copy_text(metrics)}\n{critic}{notes}"
    diffs = differences_from_book(mc, tc)
    sections["Differences from the book"] = (
        "The book's bugs are fixed (voice order when decoding, alpha drawn once, U[0,1) noise at inference, "
        "generator not in eval mode); rests and held notes are expressible.\n\n"
        + ("\n".join(f"- {d}" for d in diffs) if diffs else "- none: this is the book's configuration"))
    sections["Use"] = """```console
zoo generate musegan-bach -o chorale.mid --num 4 --seed 7   # chorale-1.mid ... chorale-4.mid, one 2-bar piece each
```

```python
import zoo
pieces = zoo.load("musegan-bach").generate(num=4, seed=0)   # a list of 4 PrettyMIDI objects
```"""
    return sections
