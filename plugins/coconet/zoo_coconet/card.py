"""Coconet's sections of the model card: the data, how it trains, how it differs from the paper, its limits.
zoo.card builds the card around them; the measured tables come from `zoo eval` (see the plugin README)."""

from __future__ import annotations

import dataclasses

from .model import CoconetConfig


def differences_from_paper(model_config: dict) -> list[str]:
    """Lines saying where a network differs from the paper's (CoconetConfig.paper())."""
    paper = dataclasses.asdict(CoconetConfig.paper())
    return [f"`{k}` = {model_config[k]} (paper: {v})" for k, v in paper.items()
            if k in ("channels", "n_layers", "separable", "dilation_cycle") and model_config.get(k) != v]


def card_sections(summary: dict) -> dict[str, str]:
    model, train = summary["model_config"], summary["train_config"]
    diffs = differences_from_paper(model)
    return {
        "Data": (
            f"Four-voice Bach chorales from the music21 corpus, windows of {train.get('n_bars', 4)} full 4/4 bars "
            "at 16th notes with a one-bar hop, split by BWV number exactly as `musegan-bach` is (`zoo_chorales."
            "data.split_of`), so neither model saw the test chorales. Pitches "
            f"{model['lowest_pitch']}..{model['lowest_pitch'] + model['n_pitches'] - 1} (MIDI) plus a rest per "
            f"voice. Training windows are transposed by up to ±{train.get('transpose', 0)} semitones, kept inside "
            "every voice's range, so the model sees every key."),
        "Training": (
            "The orderless-NADE objective of the paper: per window, the number of erased (voice, 16th) cells is "
            "uniform between one and all of them, the erased cells are a uniform subset, and the loss is the mean "
            "negative log-likelihood of the erased cells (the paper's loss rescaled by one over their count). "
            "The released checkpoint is the one with the lowest held-out framewise NLL on the validation windows, "
            "a rule fixed before training."
            + ("\n\nDifferences from the paper's network: " + "; ".join(diffs) + "." if diffs else "")),
        "Limitations": (
            "- It writes four-part chorale texture only: one note per voice and 16th, no instruments, no dynamics.\n"
            "- A held note and the same pitch struck again on the next 16th look the same on the grid, so "
            "repeated notes merge (the paper's representation has the same limit).\n"
            "- It knows nothing of bars or beats beyond what the notes around a cell show: cadences fall where "
            "the given melody puts them, and pieces from scratch have no form beyond a few bars.\n"
            "- Melodies are placed by whole octaves into the soprano's range (60..81), then moved back, so the "
            "harmony of a very high or low tune sits in the same octave as the tune.\n"
            "- Rhythms finer than 16th notes, chords in one voice and more than four tracks are refused."),
    }
