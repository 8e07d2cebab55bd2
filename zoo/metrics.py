"""Musical metrics, one definition each, shared by every plugin and by `zoo eval`.

Two input forms (plain numpy; no torch):

- a *pitch grid*: int array (pieces, voices, steps) of MIDI numbers, -1 (`REST`) for a rest; one
  monophonic voice per row on a fixed step grid (16 steps per 4/4 bar by default). This is the
  form of four-part chorales (MuseGAN); `midi_to_grid` makes one from any MIDI file.
- a *PrettyMIDI*: any MIDI, polyphonic or not; `midi_metrics` computes the architecture-free set
  that `zoo eval` reports for every model, on generated pieces and on held-out data alike.

Each metric is computed the same way for generated and real music, so the two columns of an eval
table are comparable. Every function's docstring gives its definition and where it comes from.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

REST = -1
VOICE_LETTERS = ("S", "A", "T", "B")
# Common SATB ranges of chorale writing (inclusive MIDI numbers): S C4-A5, A F3-D5, T C3-A4, B C2-D4.
VOICE_RANGES = ((60, 81), (53, 74), (48, 69), (36, 62))
MAJOR = (0, 2, 4, 5, 7, 9, 11)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)


# --- helpers ---------------------------------------------------------------------------------------

def _letters(n: int) -> tuple[str, ...]:
    return VOICE_LETTERS if n == 4 else tuple(str(i + 1) for i in range(n))


def _nanmean(values) -> float:
    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(values)) if values else float("nan")


def grid_to_notes(row) -> list[tuple[int, int, int]]:
    """One voice's pitch grid -> notes (pitch, start_step, end_step); a pitch repeated on consecutive steps is one held note."""
    notes, start = [], 0
    row = np.asarray(row)
    for t in range(1, len(row) + 1):
        if t == len(row) or row[t] != row[start]:
            if row[start] != REST:
                notes.append((int(row[start]), start, t))
            start = t
    return notes


def _notes(grids: np.ndarray):
    """Per piece and voice, the notes (pitch, start, end) with held pitches merged."""
    return [[grid_to_notes(row) for row in piece] for piece in grids]


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


all_metrics = grid_metrics  # the name zoo_musegan.metrics used first


# --- MIDI metrics (any model) ----------------------------------------------------------------------

def _note_array(midi) -> np.ndarray:
    """(start_s, end_s, pitch) of every pitched note of a PrettyMIDI, sorted by start."""
    rows = [(n.start, n.end, n.pitch) for inst in midi.instruments if not inst.is_drum for n in inst.notes]
    arr = np.asarray(sorted(rows), dtype=float).reshape(-1, 3)
    return arr


def pitch_class_entropy(midi) -> float:
    """Entropy in bits of the duration-weighted pitch-class histogram of a piece (0 = one pitch class, log2 12 = 3.58 = all equal).

    Source: Wu & Yang, "The Jazz Transformer on the front line", ISMIR 2020 (pitch-class histogram entropy H),
    here over the whole piece.
    """
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
    """Mean number of notes sounding at once, time-weighted over the time when at least one note sounds.

    Definition: the integral of the number of sounding notes divided by the measure of the time with at least
    one note (1.0 = monophonic; a four-part chorale is about 4). After the polyphony measures of
    Dong et al. 2018 and of muspy (Dong et al., ISMIR 2020).
    """
    notes = _note_array(midi)
    if not len(notes):
        return float("nan")
    events = np.concatenate([np.stack([notes[:, 0], np.ones(len(notes))], 1),
                             np.stack([notes[:, 1], -np.ones(len(notes))], 1)])
    events = events[np.lexsort((events[:, 1], events[:, 0]))]   # ends before starts at the same time
    count, area, busy, last = 0, 0.0, 0.0, events[0, 0]
    for t, delta in events:
        if count > 0:
            area += count * (t - last)
            busy += t - last
        count += int(delta)
        last = t
    return float(area / busy) if busy > 0 else float("nan")


def empty_beat_rate(midi) -> float:
    """Share of beats (from the MIDI's tempo map, up to the last note-off) in which no note sounds.

    The beat-level analogue of the empty-bar rate (EB) of Dong et al., "MuseGAN", AAAI 2018.
    """
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


MIDI_METRICS = {
    "pitch_class_entropy": pitch_class_entropy,
    "pitch_range": pitch_range,
    "used_pitches": used_pitches,
    "in_scale": midi_in_scale_rate,
    "polyphony": polyphony,
    "note_density": note_density,
    "mean_ioi": mean_ioi,
    "mean_duration": mean_duration,
    "empty_beat_rate": empty_beat_rate,
}


def midi_metrics(midis) -> dict[str, float]:
    """Every MIDI metric, each averaged over the pieces (pieces where it is undefined are left out)."""
    if not isinstance(midis, (list, tuple)):
        midis = [midis]
    return {name: _nanmean(fn(m) for m in midis) for name, fn in MIDI_METRICS.items()}


# --- MIDI -> pitch grid ----------------------------------------------------------------------------

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


def nll_to_bits(nll_nats: float) -> float:
    """Negative log-likelihood per token from nats to bits (divide by ln 2)."""
    return nll_nats / math.log(2)
