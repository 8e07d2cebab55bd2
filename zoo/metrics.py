"""Musical metrics of any MIDI (PrettyMIDI, plain numpy), one definition each with its source, that `zoo eval`
measures generated and held-out pieces with alike; a plugin adds its own (Model.music_metrics)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


# --- helpers ---------------------------------------------------------------------------------------

def _nanmean(values) -> float:
    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def scale_sets() -> list[frozenset]:
    """The pitch-class sets of the 12 major and 12 harmonic-minor keys."""
    return [frozenset((tonic + d) % 12 for d in mode) for mode in (MAJOR, HARMONIC_MINOR) for tonic in range(12)]


def scale_fit(pitch_classes, weights=None) -> float:
    """Share of the (weighted) pitch classes inside the best-fitting major or harmonic-minor scale; nan if none."""
    pcs = np.asarray(pitch_classes, dtype=int) % 12
    if pcs.size == 0:
        return float("nan")
    hist = np.bincount(pcs, weights=weights, minlength=12).astype(float)
    masks = [np.array([pc in s for pc in range(12)]) for s in scale_sets()]
    return float(max(hist[m].sum() for m in masks) / hist.sum())


# --- MIDI metrics (any model) ----------------------------------------------------------------------

def _note_array(midi) -> np.ndarray:
    """(start_s, end_s, pitch) of every pitched note of a PrettyMIDI, sorted by start."""
    rows = [(n.start, n.end, n.pitch) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    return np.asarray(sorted(rows), dtype=float).reshape(-1, 3)


def pitch_class_entropy(midi) -> float:
    """Entropy in bits of the duration-weighted pitch-class histogram (0: one pitch class, 3.58: all equal).
    Source: Wu & Yang, "The Jazz Transformer on the front line", ISMIR 2020 (H), here over the whole piece."""
    notes = _note_array(midi)
    if not len(notes):
        return float("nan")
    hist = np.bincount(notes[:, 2].astype(int) % 12, weights=notes[:, 1] - notes[:, 0], minlength=12)
    if hist.sum() <= 0:
        return float("nan")
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def pitch_range(midi) -> float:
    """Highest minus lowest MIDI pitch in semitones (PR). Source: Yang & Lerch 2020."""
    notes = _note_array(midi)
    return float(notes[:, 2].max() - notes[:, 2].min()) if len(notes) else float("nan")


def used_pitches(midi) -> float:
    """The number of distinct MIDI pitches used in the piece (PC). Source: Yang & Lerch 2020."""
    notes = _note_array(midi)
    return float(len(np.unique(notes[:, 2]))) if len(notes) else float("nan")


def midi_in_scale_rate(midi) -> float:
    """Share of notes (counted once each) in the best-fitting major or harmonic-minor scale; see in_scale_rate."""
    notes = _note_array(midi)
    return scale_fit(notes[:, 2].astype(int)) if len(notes) else float("nan")


def note_density(midi) -> float:
    """Notes per second, from the first onset to the last note-off. Source: Yang & Lerch 2020 (note count per time)."""
    notes = _note_array(midi)
    if not len(notes):
        return float("nan")
    span = notes[:, 1].max() - notes[:, 0].min()
    return float(len(notes) / span) if span > 0 else float("nan")


def mean_ioi(midi) -> float:
    """Mean inter-onset interval in seconds between successive distinct onset times (IOI). Source: Yang & Lerch 2020."""
    notes = _note_array(midi)
    onsets = np.unique(np.round(notes[:, 0], 6)) if len(notes) else np.zeros(0)
    return float(np.diff(onsets).mean()) if len(onsets) > 1 else float("nan")


def mean_duration(midi) -> float:
    """Mean note duration in seconds. Source: Yang & Lerch 2020 (note length)."""
    notes = _note_array(midi)
    return float((notes[:, 1] - notes[:, 0]).mean()) if len(notes) else float("nan")


def polyphony(midi) -> float:
    """Mean number of notes sounding at once over the time when any sounds (1.0: monophonic; four parts: about 4).
    After the polyphony measures of Dong et al. 2018 and of muspy (Dong et al., ISMIR 2020)."""
    notes = _note_array(midi)
    if not len(notes):
        return float("nan")
    events = np.concatenate([np.stack([notes[:, 0], np.ones(len(notes))], 1),
                             np.stack([notes[:, 1], -np.ones(len(notes))], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]   # ends before starts at the same time
    counts, gaps = np.cumsum(events[:-1, 1]), np.diff(events[:, 0])   # notes sounding between successive events
    area, busy = (counts * gaps)[counts > 0].sum(), gaps[counts > 0].sum()
    return float(area / busy) if busy > 0 else float("nan")


def empty_beat_rate(midi) -> float:
    """Share of beats (from the MIDI's tempo map, up to the last note-off) in which no note sounds: the beat-level
    analogue of the empty-bar rate (EB) of Dong et al., AAAI 2018."""
    notes = _note_array(midi)
    if not len(notes):
        return float("nan")
    beats = np.asarray(midi.get_beats(), dtype=float)
    end = notes[:, 1].max()
    beats = beats[beats < end]
    if not len(beats):
        return float("nan")
    bounds = np.append(beats, max(end, beats[-1] + 1e-9))
    empty = sum(1 for a, b in zip(bounds[:-1], bounds[1:]) if not ((notes[:, 0] < b) & (notes[:, 1] > a)).any())
    return float(empty / len(beats))


MIDI_METRICS = {"pitch_class_entropy": pitch_class_entropy, "pitch_range": pitch_range, "used_pitches": used_pitches,
                "in_scale": midi_in_scale_rate, "polyphony": polyphony, "note_density": note_density,
                "mean_ioi": mean_ioi, "mean_duration": mean_duration, "empty_beat_rate": empty_beat_rate}


def midi_metrics(midis) -> dict[str, float]:
    """Every MIDI metric, each averaged over the pieces (pieces where it is undefined are left out)."""
    if not isinstance(midis, (list, tuple)):
        midis = [midis]
    return {name: _nanmean(fn(m) for m in midis) for name, fn in MIDI_METRICS.items()}


def nll_to_bits(nll_nats: float) -> float:
    """Negative log-likelihood per token from nats to bits (divide by ln 2)."""
    return nll_nats / math.log(2)


# --- what a Trainer.evaluate() returns --------------------------------------------------------------

_GEN, _DATA = "gen_", "data_"   # the flat form's names of a pair's two sides (Metrics.items / from_flat only)


@dataclass(frozen=True)
class Metrics(Mapping):
    """A plugin's numbers on a data split, each with its kind, so that no key name carries a meaning. As a mapping
    it is the flat form training logs and `select_by` read (a pair X as gen_X and data_X); from_flat reads it back."""

    # metric -> (generated, data), the same measure of generated pieces and of the split's: a row of zoo eval's
    # table and of the model card's "generated vs test data" table
    paired: dict[str, tuple[float, float]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)   # every other number (a perplexity, a critic's distance)
    nll: float | None = None   # mean negative log-likelihood per token (or frame) in nats; zoo eval adds it in bits

    def __or__(self, other: "Metrics") -> "Metrics":
        """Both sets of numbers (other's win on a clash)."""
        return Metrics({**self.paired, **other.paired}, {**self.scores, **other.scores},
                       other.nll if other.nll is not None else self.nll)

    def _flat(self) -> dict[str, float]:
        out = {} if self.nll is None else {"nll": self.nll}
        for name, (generated, data) in self.paired.items():
            out[_GEN + name], out[_DATA + name] = generated, data
        out.update(self.scores)
        return out

    def __getitem__(self, key: str) -> float:
        return self._flat()[key]

    def __iter__(self):
        return iter(self._flat())

    def __len__(self) -> int:
        return len(self._flat())

    @classmethod
    def from_flat(cls, flat: Mapping) -> "Metrics":
        """Read back the flat form (a run's logged test metrics): gen_X with data_X a pair, nll the NLL."""
        flat = dict(flat)
        nll = flat.pop("nll", None)
        names = [k[len(_GEN):] for k in flat if k.startswith(_GEN) and _DATA + k[len(_GEN):] in flat]
        paired = {n: (flat.pop(_GEN + n), flat.pop(_DATA + n)) for n in names}
        return cls(paired, flat, nll)
