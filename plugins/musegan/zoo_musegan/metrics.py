"""Four-part chorale metrics on pitch grids (pieces, voices, steps; MIDI numbers, -1 = rest).

Voices are ordered top to bottom (soprano, alto, tenor, bass) and time is a 16th-note grid. Each
function is computed the same way on generated pieces and on real windows, so the two columns
of `zoo eval musegan-bach` compare like with like. General grid metrics (rest rates, tonal
distance, ranges) come from the core's zoo.metrics; `all_metrics` joins both.
"""

from __future__ import annotations

import numpy as np

from zoo.metrics import (  # noqa: F401  (re-exported: the plugin's tests and card use these names)
    MAJOR, REST, VOICE_LETTERS, VOICE_RANGES, grid_metrics, grid_to_notes, in_range_rate, mean_note_length,
    rest_rate, tonal_distance, used_pitch_classes,
)

MAJOR_SETS = [frozenset((t + d) % 12 for d in MAJOR) for t in range(12)]   # natural minor = relative major's set
TRIADS = {frozenset({r % 12, (r + third) % 12, (r + 7) % 12}) for r in range(12) for third in (3, 4)}
DOMINANT_SEVENTHS = {frozenset({r % 12, (r + 4) % 12, (r + 7) % 12, (r + 10) % 12}) for r in range(12)}
NEAR_DUPLICATE = 0.6      # normalised Hamming distance under which two pieces count as near-duplicates


def in_scale(grids: np.ndarray) -> float:
    """Duration-weighted share of sounding voice-steps inside the best-fitting major / natural-minor scale.

    Per piece: count sounding (voice, 16th) cells per pitch class; take the maximum over the 12 major
    scales (a natural-minor scale has the pitch classes of its relative major) of the share inside
    the scale; average over pieces. Source: the "in-scale" / tonalness ratios of Dong et al., "MuseGAN",
    AAAI 2018, and Yang & Lerch, "On the evaluation of generative models in music", 2020.
    """
    rates = []
    for piece in np.asarray(grids):
        sounding = piece[piece != REST]
        if sounding.size:
            counts = np.bincount(sounding % 12, minlength=12)
            rates.append(max(counts[list(s)].sum() for s in MAJOR_SETS) / sounding.size)
    return float(np.mean(rates)) if rates else 0.0


def chord_rate(grids: np.ndarray) -> float:
    """Share of sonorities (16ths where 3 or more voices sound) whose pitch-class set is a complete major or
    minor triad (any doubling or inversion) or a complete dominant seventh.

    Source: the chord-vocabulary measures of chorale harmonisation studies, e.g. Hadjeres et al.,
    "DeepBach", ICML 2017, and Huang et al., "Counterpoint by Convolution" (Coconet), ISMIR 2017.
    """
    good = total = 0
    for piece in np.asarray(grids):
        for column in piece.T:
            notes = column[column != REST]
            if notes.size >= 3:
                total += 1
                pcs = frozenset(int(p) % 12 for p in notes)
                good += pcs in TRIADS or pcs in DOMINANT_SEVENTHS
    return good / total if total else 0.0


def crossing_rate(grids: np.ndarray) -> float:
    """Share of (16th, adjacent voice pair) cells, among those where both voices of the pair sound, in which
    the upper voice is below the lower one (S below A, A below T or T below B).

    Source: the voice-crossing rule of part writing (Piston, "Harmony"); as a rate, DeepBach (above).
    """
    g = np.asarray(grids)
    upper, lower = g[:, :-1], g[:, 1:]
    both = (upper != REST) & (lower != REST)
    return float(((upper < lower) & both).sum() / both.sum()) if both.sum() else 0.0


def _intervals(grids: np.ndarray) -> np.ndarray:
    """Absolute melodic intervals in semitones between consecutive notes of each voice (held notes merged,
    rests skipped)."""
    out = []
    for piece in np.asarray(grids):
        for row in piece:
            pitches = [p for p, _, _ in grid_to_notes(row)]
            out.extend(abs(b - a) for a, b in zip(pitches, pitches[1:]))
    return np.asarray(out)


def stepwise_rate(grids: np.ndarray) -> float:
    """Share of melodic motions (consecutive notes of one voice) of at most 2 semitones (a repeat or a step).

    Source: conjunct-motion statistics of chorale voice leading (Huron, "Tone and Voice", Music
    Perception 2001: stepwise motion dominates melodic voices).
    """
    iv = _intervals(grids)
    return float(np.mean(iv <= 2)) if iv.size else 0.0


def leap_rate(grids: np.ndarray) -> float:
    """Share of melodic motions larger than an octave (12 semitones), which chorale voices avoid (Huron 2001)."""
    iv = _intervals(grids)
    return float(np.mean(iv > 12)) if iv.size else 0.0


def satb_order_rate(grids: np.ndarray) -> float:
    """Share of pieces whose voices' mean pitches strictly fall from the top voice to the bottom one
    (S > A > T > B); a voice that is silent for the whole piece fails it."""
    ok = []
    for piece in np.asarray(grids):
        means = [row[row != REST].mean() if (row != REST).any() else np.nan for row in piece]
        ok.append(all(np.isfinite(means)) and all(a > b for a, b in zip(means, means[1:])))
    return float(np.mean(ok)) if ok else 0.0


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised Hamming distances between every piece of a (n, V, T) and every piece of b (m, V, T):
    the share of (voice, step) cells that differ (a rest is a value too). Returns (n, m)."""
    a = np.asarray(a).reshape(len(a), -1)
    b = np.asarray(b).reshape(len(b), -1)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), 64):  # chunks keep memory at 64 x m x cells
        out[i:i + 64] = (a[i:i + 64, None, :] != b[None, :, :]).mean(axis=-1)
    return out


def near_duplicate_rate(grids: np.ndarray, threshold: float = NEAR_DUPLICATE) -> float:
    """Share of pairs of distinct pieces closer than `threshold` in normalised Hamming distance (mode collapse).

    Source: the "number of statistically-different bins" idea of Richardson & Weiss, "On GANs and GMMs",
    NeurIPS 2018, in its simplest form: count near-identical pairs.
    """
    g = np.asarray(grids)
    if len(g) < 2:
        return 0.0
    d = hamming(g, g)
    upper = d[np.triu_indices(len(g), k=1)]
    return float(np.mean(upper < threshold))


def transpositions(grids: np.ndarray, shifts=range(-6, 7)) -> np.ndarray:
    """Every piece in every shift (shifts, n, V, T); rests stay rests."""
    g = np.asarray(grids).astype(np.int16)
    return np.stack([np.where(g != REST, g + s, REST) for s in shifts])


def nearest_distance(pieces: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Per piece, the normalised Hamming distance to the nearest reference window in any transposition
    (-6..+6 semitones): how close it comes to copying one."""
    best = np.full(len(pieces), np.inf)
    for shifted in transpositions(pieces):
        best = np.minimum(best, hamming(shifted, reference).min(axis=1))
    return best


def copy_check(generated: np.ndarray, held_out: np.ndarray, train: np.ndarray) -> dict[str, float]:
    """Generated pieces' distance to their nearest training window, beside held-out Bach's.

    A generator that copies training windows sits much closer to the training set than unseen
    real music does. Reports medians and the share of pieces nearer than 0.2 (80 % of cells equal).
    """
    gen, real = nearest_distance(generated, train), nearest_distance(held_out, train)
    return {"copy_median_generated": float(np.median(gen)), "copy_median_heldout": float(np.median(real)),
            "copy_share_below_0.2_generated": float(np.mean(gen < 0.2)),
            "copy_share_below_0.2_heldout": float(np.mean(real < 0.2))}


# The table of `zoo eval musegan-bach` and the model card, in this order.
CHORALE_METRICS = {
    "in_scale": in_scale,
    "chord_rate": chord_rate,
    "voice_crossing": crossing_rate,
    "stepwise": stepwise_rate,
    "note_length": mean_note_length,
    "leaps_over_octave": leap_rate,
    "near_duplicates": near_duplicate_rate,
    "satb_order": satb_order_rate,
}


def chorale_metrics(grids: np.ndarray) -> dict[str, float]:
    """The chorale table (CHORALE_METRICS) for a set of pieces."""
    return {name: float(fn(grids)) for name, fn in CHORALE_METRICS.items()}


def distance_to_data(gen: dict, data: dict) -> float:
    """One number to pick checkpoints by: the mean over the chorale table of |gen - data| / max(|data|, 0.05).

    Every metric weighs the same and none is tuned; 0 means the generated pieces match the data on all.
    """
    keys = [k for k in CHORALE_METRICS if k in gen and k in data]
    return float(np.mean([abs(gen[k] - data[k]) / max(abs(data[k]), 0.05) for k in keys]))


def all_metrics(grids: np.ndarray, steps_per_bar: int = 16) -> dict[str, float]:
    """The chorale table plus the core's grid metrics (rest rates, tonal distance, ranges, ...)."""
    out = grid_metrics(grids, steps_per_bar)
    out.update(chorale_metrics(grids))
    return out
