"""Four-part chorale metrics on pitch grids (pieces, voices, steps; MIDI numbers, -1 = rest).

Voices are ordered top to bottom (soprano, alto, tenor, bass) and time is a 16th-note grid. Each
function is computed the same way on generated pieces and on real windows, so the two columns
of `zoo eval musegan-bach` compare like with like. The grid metrics (rest rates, tonal distance,
ranges) and the chorale table (CHORALE_METRICS) are both here; `all_metrics` joins them. The core's
zoo.metrics keeps the metrics of any MIDI.
"""

from __future__ import annotations

import itertools

import numpy as np

from zoo.metrics import MAJOR, scale_fit

from .grid import REST, grid_to_notes  # noqa: F401  (grid_to_notes: one definition, used here and by readers)

VOICE_LETTERS = ("S", "A", "T", "B")
# Common SATB ranges of chorale writing (inclusive MIDI numbers): S C4-A5, A F3-D5, T C3-A4, B C2-D4.
VOICE_RANGES = ((60, 81), (53, 74), (48, 69), (36, 62))


# --- helpers ---------------------------------------------------------------------------------------

def _letters(n: int) -> tuple[str, ...]:
    return VOICE_LETTERS if n == 4 else tuple(str(i + 1) for i in range(n))



def _notes(grids: np.ndarray):
    """Per piece and voice, the notes (pitch, start, end) with held pitches merged."""
    return [[grid_to_notes(row) for row in piece] for piece in grids]


# --- pitch-grid metrics (four-part writing) ---------------------------------------------------------

def rest_rate(grids: np.ndarray) -> list[float]:
    """Per voice: the share of time steps that are rests.

    Definition: mean over pieces and steps of [grid == REST], one value per voice. The voice-wise
    analogue of the empty-bar rate (EB) of Dong et al., "MuseGAN", AAAI 2018.
    """
    grids = np.asarray(grids)
    return [float(np.mean(grids[:, v] == REST)) for v in range(grids.shape[1])]


def used_pitch_classes(grids: np.ndarray, steps_per_bar: int = 16) -> float:
    """UPC: the number of distinct pitch classes sounding in a bar (all voices together), averaged over bars.

    Source: Dong et al., "MuseGAN: Multi-track sequential GANs for symbolic music generation", AAAI 2018
    ("used pitch classes per bar"). Only whole bars count; an all-rest bar counts 0.
    """
    grids = np.asarray(grids)
    n, _, t = grids.shape
    counts = []
    for i in range(n):
        for b in range(t // steps_per_bar):
            bar = grids[i, :, b * steps_per_bar:(b + 1) * steps_per_bar]
            counts.append(len(np.unique(bar[bar != REST] % 12)))
    return float(np.mean(counts)) if counts else 0.0


def in_scale_rate(grids: np.ndarray) -> float:
    """Share of notes in the scale of the best-fitting major or harmonic-minor key, per piece, averaged over pieces.

    Definition: for each piece, count notes (held pitches merged) per pitch class, take the maximum over the
    24 scales of the share inside the scale. A per-piece variant of the "tonal/in-scale" ratio of
    Dong et al., "MuseGAN", AAAI 2018, and the key-consistency measures of Yang & Lerch, "On the evaluation
    of generative models in music", Neural Computing and Applications 2020.
    """
    rates = []
    for piece in _notes(np.asarray(grids)):
        pcs = [p % 12 for voice in piece for p, _, _ in voice]
        if pcs:
            rates.append(scale_fit(pcs))
    return float(np.mean(rates)) if rates else 0.0


def mean_note_length(grids: np.ndarray) -> float:
    """Mean length of a note in time steps (a pitch repeated on consecutive steps counts as one held note).

    Source: the note-length statistics of Yang & Lerch 2020 ("average note length", NL).
    """
    lengths = [e - s for piece in _notes(np.asarray(grids)) for voice in piece for _, s, e in voice]
    return float(np.mean(lengths)) if lengths else 0.0


def tonal_matrix(r1: float = 1.0, r2: float = 1.0, r3: float = 0.5) -> np.ndarray:
    """The 6x12 map from a chroma vector to the tonal centroid (circle of fifths, minor thirds, major thirds).

    Source: Harte, Sandler & Gasser, "Detecting harmonic change in musical audio", ACM MM workshop 2006.
    """
    k = np.arange(12)
    return np.stack([r1 * np.sin(k * 7 * np.pi / 6), r1 * np.cos(k * 7 * np.pi / 6),
                     r2 * np.sin(k * 3 * np.pi / 2), r2 * np.cos(k * 3 * np.pi / 2),
                     r3 * np.sin(k * 2 * np.pi / 3), r3 * np.cos(k * 2 * np.pi / 3)])


def tonal_distance(grids: np.ndarray, steps_per_bar: int = 16) -> dict[tuple[int, int], float]:
    """TD per voice pair: Euclidean distance of the two voices' tonal centroids per bar, averaged over bars where both sound.

    A bar's centroid is tonal_matrix() applied to the voice's step-weighted chroma, normalised to sum 1.
    Source: Dong et al., "MuseGAN", AAAI 2018 (inter-track tonal distance), after Harte et al. 2006.
    Lower means the voices agree harmonically.
    """
    grids = np.asarray(grids)
    tm = tonal_matrix()
    n, voices, t = grids.shape
    bars = t // steps_per_bar
    centroids = np.full((n, voices, bars, 6), np.nan)
    for i in range(n):
        for v in range(voices):
            for b in range(bars):
                seg = grids[i, v, b * steps_per_bar:(b + 1) * steps_per_bar]
                seg = seg[seg != REST]
                if seg.size:
                    chroma = np.bincount(seg % 12, minlength=12).astype(float)
                    centroids[i, v, b] = tm @ (chroma / chroma.sum())
    out = {}
    for a, b in itertools.combinations(range(voices), 2):
        d = np.linalg.norm(centroids[:, a] - centroids[:, b], axis=-1)
        d = d[np.isfinite(d)]
        out[(a, b)] = float(d.mean()) if d.size else float("nan")
    return out


def in_range_rate(grids: np.ndarray, ranges=VOICE_RANGES) -> list[float]:
    """Per voice: the share of its notes (held pitches merged) inside the voice's range (default: SATB chorale ranges).

    Source: the voice-range rules of chorale harmonisation textbooks, e.g. Piston, "Harmony" (ranges in VOICE_RANGES).
    """
    grids = np.asarray(grids)
    out = []
    for v, (lo, hi) in enumerate(ranges[: grids.shape[1]]):
        pitches = np.array([p for piece in _notes(grids[:, v:v + 1]) for p, _, _ in piece[0]])
        out.append(float(np.mean((pitches >= lo) & (pitches <= hi))) if pitches.size else float("nan"))
    return out


def voice_crossing_rate(grids: np.ndarray) -> float:
    """Share of (step, adjacent voice pair) where both voices sound and the upper voice is below the lower one.

    Voices are ordered top to bottom (S, A, T, B). Source: the voice-crossing rule of part writing
    (e.g. Piston, "Harmony"); as a rate, used for Bach chorale models by Hadjeres et al., "DeepBach", ICML 2017.
    """
    grids = np.asarray(grids)
    upper, lower = grids[:, :-1], grids[:, 1:]
    both = (upper != REST) & (lower != REST)
    total = both.sum()
    return float(((upper < lower) & both).sum() / total) if total else 0.0


def grid_metrics(grids: np.ndarray, steps_per_bar: int = 16) -> dict[str, float]:
    """Every pitch-grid metric as a flat dict of floats (named per voice S/A/T/B and per voice pair)."""
    grids = np.asarray(grids)
    letters = _letters(grids.shape[1])
    out = {f"rest_rate_{l}": r for l, r in zip(letters, rest_rate(grids))}
    out["upc_per_bar"] = used_pitch_classes(grids, steps_per_bar)
    out["in_scale"] = in_scale_rate(grids)
    out["note_length"] = mean_note_length(grids)
    td = tonal_distance(grids, steps_per_bar)
    finite = [v for v in td.values() if np.isfinite(v)]
    out["tonal_distance"] = float(np.mean(finite)) if finite else float("nan")
    out.update({f"tonal_distance_{letters[a]}{letters[b]}": v for (a, b), v in td.items()})
    out.update({f"in_range_{l}": r for l, r in zip(letters, in_range_rate(grids))})
    out["voice_crossing"] = voice_crossing_rate(grids)
    return out


# --- MIDI -> pitch grid (tests and data) ----------------------------------------------------------------------------

def midi_to_grid(midi, steps_per_beat: int = 4) -> np.ndarray:
    """A PrettyMIDI -> pitch grid (instruments, steps) on a grid of `steps_per_beat` steps per beat (tempo-aware).

    One row per pitched instrument; where an instrument plays a chord the top note wins.
    """
    ticks_per_step = midi.resolution / steps_per_beat
    insts = [i for i in midi.instruments if not i.is_drum]
    spans = [[(n.pitch, round(midi.time_to_tick(n.start) / ticks_per_step),
               round(midi.time_to_tick(n.end) / ticks_per_step)) for n in i.notes] for i in insts]
    length = max((e for s in spans for _, _, e in s), default=0)
    grid = np.full((len(insts), length), REST, dtype=np.int16)
    for v, notes in enumerate(spans):
        for pitch, start, end in notes:
            seg = grid[v, start:max(end, start + 1)]
            np.maximum(seg, pitch, out=seg)
    return grid



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


def parallels_per_100(grids: np.ndarray) -> float:
    """Parallel fifths and octaves (unisons included) per 100 16ths: from one 16th to the next, two voices
    that both sound, both move in the same direction, and stand a perfect fifth or an octave apart (as
    pitch classes, compound intervals included) before and after.

    Source: the rule against consecutive fifths and octaves of part writing (Piston, "Harmony"); counted
    as in chorale-model evaluations such as DeepBach (Hadjeres et al. 2017).
    """
    g = np.asarray(grids).astype(np.int64)
    if g.ndim != 3 or g.shape[2] < 2:
        return 0.0
    before, after = g[:, :, :-1], g[:, :, 1:]
    count = 0
    for i, j in itertools.combinations(range(g.shape[1]), 2):
        sounding = (before[:, i] != REST) & (before[:, j] != REST) & (after[:, i] != REST) & (after[:, j] != REST)
        move_i, move_j = after[:, i] - before[:, i], after[:, j] - before[:, j]
        same_way = (np.sign(move_i) == np.sign(move_j)) & (move_i != 0)
        was, now = (before[:, i] - before[:, j]) % 12, (after[:, i] - after[:, j]) % 12
        perfect = ((was == 0) | (was == 7)) & (now == was)
        count += int((sounding & same_way & perfect).sum())
    return 100.0 * count / (g.shape[0] * g.shape[2])


def voices_sounding_rate(grids: np.ndarray, share: float = 0.75) -> float:
    """Share of pieces in which every voice sounds for at least `share` of the piece's 16ths."""
    g = np.asarray(grids)
    if not len(g):
        return 0.0
    return float(np.mean(((g != REST).mean(axis=2) >= share).all(axis=1)))


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
    "parallels_per_100": parallels_per_100,
    "all_voices_sounding": voices_sounding_rate,
}


# distance_to_data weighs these (musegan-bach's release rule, fixed before its training; later rows are not in it)
DISTANCE_METRICS = ("in_scale", "chord_rate", "voice_crossing", "stepwise", "note_length", "leaps_over_octave",
                    "near_duplicates", "satb_order")


def chorale_metrics(grids: np.ndarray) -> dict[str, float]:
    """The chorale table (CHORALE_METRICS) for a set of pieces."""
    return {name: float(fn(grids)) for name, fn in CHORALE_METRICS.items()}


def distance_to_data(gen: dict, data: dict) -> float:
    """One number to pick checkpoints by: the mean over the chorale table of |gen - data| / max(|data|, 0.05).

    Every metric weighs the same and none is tuned; 0 means the generated pieces match the data on all.
    """
    keys = [k for k in DISTANCE_METRICS if k in gen and k in data]
    return float(np.mean([abs(gen[k] - data[k]) / max(abs(data[k]), 0.05) for k in keys]))


def all_metrics(grids: np.ndarray, steps_per_bar: int = 16) -> dict[str, float]:
    """The chorale table plus the core's grid metrics (rest rates, tonal distance, ranges, ...)."""
    out = grid_metrics(grids, steps_per_bar)
    out.update(chorale_metrics(grids))
    return out
