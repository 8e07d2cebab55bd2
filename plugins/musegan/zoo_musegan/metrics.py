"""Musical metrics for four-voice pitch grids (pieces, voices, time steps; MIDI number or -1 for a rest).

All are plain numpy and are computed the same way for generated pieces and for held-out data,
so the two columns of the model card's table are comparable.
"""

from __future__ import annotations

import itertools

import numpy as np

from .tokenizer import REST, grid_to_notes

VOICE_LETTERS = ("S", "A", "T", "B")
# Common SATB ranges of chorale writing (inclusive MIDI numbers): S C4-A5, A F3-D5, T C3-A4, B C2-D4.
VOICE_RANGES = ((60, 81), (53, 74), (48, 69), (36, 62))
MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


def _letters(n: int) -> tuple[str, ...]:
    return VOICE_LETTERS if n == 4 else tuple(str(i + 1) for i in range(n))


def rest_rate(grids: np.ndarray) -> list[float]:
    """Per voice: the share of time steps that are rests."""
    return [float(np.mean(grids[:, v] == REST)) for v in range(grids.shape[1])]


def used_pitch_classes(grids: np.ndarray, steps_per_bar: int = 16) -> float:
    """UPC: distinct pitch classes sounding in a bar (all voices together), averaged over bars."""
    n, _, t = grids.shape
    counts = []
    for i in range(n):
        for b in range(t // steps_per_bar):
            bar = grids[i, :, b * steps_per_bar:(b + 1) * steps_per_bar]
            counts.append(len(np.unique(bar[bar != REST] % 12)))
    return float(np.mean(counts)) if counts else 0.0


def _notes(grids: np.ndarray):
    """Per piece and voice, the notes (pitch, start, end) with held pitches merged."""
    return [[grid_to_notes(row) for row in piece] for piece in grids]


def scale_sets() -> list[frozenset]:
    """The pitch-class sets of the 12 major and 12 harmonic-minor keys."""
    return [frozenset((tonic + d) % 12 for d in mode) for mode in (MAJOR, HARMONIC_MINOR) for tonic in range(12)]


def in_scale_rate(grids: np.ndarray) -> float:
    """Share of notes in the scale of the best-fitting major or (harmonic) minor key, per piece, averaged."""
    scales = [np.array([pc in s for pc in range(12)]) for s in scale_sets()]
    rates = []
    for piece in _notes(grids):
        pcs = np.array([p % 12 for voice in piece for p, _, _ in voice], dtype=int)
        if pcs.size:
            hist = np.bincount(pcs, minlength=12)
            rates.append(max(hist[s].sum() for s in scales) / pcs.size)
    return float(np.mean(rates)) if rates else 0.0


def mean_note_length(grids: np.ndarray) -> float:
    """Mean length of a note in time steps (repeated pitches count as one held note)."""
    lengths = [e - s for piece in _notes(grids) for voice in piece for _, s, e in voice]
    return float(np.mean(lengths)) if lengths else 0.0


def tonal_matrix(r1: float = 1.0, r2: float = 1.0, r3: float = 0.5) -> np.ndarray:
    """Harte, Sandler & Gasser (2006): the 6x12 map from chroma to the tonal centroid (fifths, minor and major thirds)."""
    k = np.arange(12)
    return np.stack([r1 * np.sin(k * 7 * np.pi / 6), r1 * np.cos(k * 7 * np.pi / 6),
                     r2 * np.sin(k * 3 * np.pi / 2), r2 * np.cos(k * 3 * np.pi / 2),
                     r3 * np.sin(k * 2 * np.pi / 3), r3 * np.cos(k * 2 * np.pi / 3)])


def tonal_distance(grids: np.ndarray, steps_per_bar: int = 16) -> dict[tuple[int, int], float]:
    """Per voice pair: the distance of the bars' tonal centroids, averaged over bars where both voices sound."""
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
    """Per voice: the share of its notes inside the voice's range."""
    out = []
    for v, (lo, hi) in enumerate(ranges[: grids.shape[1]]):
        pitches = np.array([p for piece in _notes(grids[:, v:v + 1]) for p, _, _ in piece[0]])
        out.append(float(np.mean((pitches >= lo) & (pitches <= hi))) if pitches.size else float("nan"))
    return out


def voice_crossing_rate(grids: np.ndarray) -> float:
    """Share of (step, adjacent voice pair) where both sound and the upper voice is below the lower one."""
    upper, lower = grids[:, :-1], grids[:, 1:]
    both = (upper != REST) & (lower != REST)
    total = both.sum()
    return float(((upper < lower) & both).sum() / total) if total else 0.0


def all_metrics(grids: np.ndarray, steps_per_bar: int = 16) -> dict[str, float]:
    """Every metric, as a flat dict of floats (named per voice S/A/T/B and per voice pair)."""
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
