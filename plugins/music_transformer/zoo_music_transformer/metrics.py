"""Continuation metrics: how a generated continuation of a prompt compares with the real one.

`zoo eval` takes the opening tokens of held-out test pieces as prompts, lets the model continue
each (without the stuck-note guard, so the guard cannot hide a fault) and measures the new part
beside the piece's real continuation of the same number of tokens. Every function takes note
arrays (start_s, end_s, pitch, velocity), the form tokens_to_notes() returns.
"""

from __future__ import annotations

import numpy as np

from zoo.metrics import scale_sets

LONG_NOTE_S = 4.0
IOI_BINS = np.array([0.0, 0.0625, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0, np.inf])   # seconds


def continuation(notes: np.ndarray, prompt_end: float) -> np.ndarray:
    """The notes that start at or after prompt_end (the new part of prompt + continuation)."""
    return notes[notes[:, 0] >= prompt_end] if len(notes) else notes


def long_note_rate(notes: np.ndarray, limit: float = LONG_NOTE_S) -> float:
    """Share of notes longer than `limit` seconds (4 s): stuck notes, which score-like music rarely has.

    A note that is never released lasts to the end of the piece, so this catches the "frozen voice"
    failure of performance-event models (Huang et al. 2018 discuss missing note-offs).
    """
    return float(np.mean(notes[:, 1] - notes[:, 0] > limit)) if len(notes) else float("nan")


def polyphony(notes: np.ndarray) -> float:
    """Mean number of notes sounding at once, time-weighted over the time when at least one sounds
    (after the polyphony measure of muspy, Dong et al., ISMIR 2020)."""
    if not len(notes):
        return float("nan")
    times = np.concatenate([notes[:, 0], notes[:, 1]])
    deltas = np.concatenate([np.ones(len(notes)), -np.ones(len(notes))])
    order = np.lexsort((deltas, times))                      # ends before starts at the same instant
    times, counts = times[order], np.cumsum(deltas[order])
    spans = np.diff(times)
    sounding = counts[:-1]
    busy = spans[sounding > 0].sum()
    return float((spans * sounding).sum() / busy) if busy > 0 else float("nan")


def notes_per_second(notes: np.ndarray) -> float:
    """Onsets per second from the first onset to the last note-off (note density, Yang & Lerch 2020)."""
    if not len(notes):
        return float("nan")
    span = notes[:, 1].max() - notes[:, 0].min()
    return float(len(notes) / span) if span > 0 else float("nan")


def key_of(notes: np.ndarray) -> frozenset:
    """The pitch-class set of the major or harmonic-minor scale that holds most of the notes' duration."""
    weights = np.zeros(12)
    np.add.at(weights, notes[:, 2].astype(int) % 12, notes[:, 1] - notes[:, 0])
    return max(scale_sets(), key=lambda s: weights[list(s)].sum())


def in_key_rate(notes: np.ndarray, key: frozenset) -> float:
    """Share of notes whose pitch class lies in `key` (the prompt's key, from key_of)."""
    if not len(notes):
        return float("nan")
    return float(np.mean([int(p) % 12 in key for p in notes[:, 2]]))


def pitch_class_histogram(notes: np.ndarray) -> np.ndarray:
    """Normalised histogram of the notes' pitch classes (12 bins; Yang & Lerch 2020, PCH)."""
    h = np.bincount(notes[:, 2].astype(int) % 12, minlength=12).astype(float)
    return h / h.sum() if h.sum() else h


def ioi_histogram(notes: np.ndarray) -> np.ndarray:
    """Normalised histogram of inter-onset intervals between distinct onsets, in IOI_BINS (seconds)."""
    onsets = np.unique(np.round(notes[:, 0], 3)) if len(notes) else np.zeros(0)
    h = np.histogram(np.diff(onsets), bins=IOI_BINS)[0].astype(float)
    return h / h.sum() if h.sum() else h


def total_variation(p: np.ndarray, q: np.ndarray) -> float:
    """Total-variation distance between two histograms: half the L1 distance, 0 (same) .. 1 (disjoint).
    An empty histogram counts as disjoint from anything."""
    if not p.sum() or not q.sum():
        return 1.0
    return float(0.5 * np.abs(p - q).sum())


def compare(generated: np.ndarray, real: np.ndarray, key: frozenset) -> dict[str, float]:
    """One prompt's generated continuation beside its real one: gen_cont_X / data_cont_X rows (`zoo eval` shows
    them as cont_X beside the general metrics of pieces generated from scratch) and the two distances."""
    out = {}
    for name, fn in (("long_notes", long_note_rate), ("polyphony", polyphony), ("notes_per_s", notes_per_second)):
        out[f"gen_cont_{name}"], out[f"data_cont_{name}"] = fn(generated), fn(real)
    out["gen_cont_in_key"], out["data_cont_in_key"] = in_key_rate(generated, key), in_key_rate(real, key)
    out["cont_pitch_class_tv"] = total_variation(pitch_class_histogram(generated), pitch_class_histogram(real))
    out["cont_ioi_tv"] = total_variation(ioi_histogram(generated), ioi_histogram(real))
    return out
