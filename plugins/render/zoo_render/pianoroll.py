"""Piano-roll pictures (PNG, SVG, PDF) with matplotlib's Agg backend: one colour per track, pitch names, a legend."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo.safeio import atomic_write
from zoo_render.common import RenderError, as_midi, pitch_name

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
# a 24-hour piece at 120 bpm has 172,800 beats; a 46-byte file with a 1 us tempo claims 10^7 (pretty_midi's
# get_beats would list them all, and one bar line each took minutes and 8 GB)
MAX_PLOT_BEATS = 200_000
# a piano roll longer than ROW_BEATS beats is drawn in rows of that length (at most MAX_ROWS rows, then longer ones):
# one 24-inch strip of 700 beats had notes a few pixels wide and text too small to read
ROW_BEATS = 64
MAX_ROWS = 16


def plot_pianoroll(midi, path, time: str = "beats", title: str | None = None, dpi: int = 120,
                   prompt_end: float | None = None) -> Path:
    """Draw a piano roll PNG/SVG/PDF: time in beats or seconds, pitch names, one colour per track, a legend.

    prompt_end (seconds): the piece is a continuation whose prompt ends there; the prompt is shaded and a line
    marks where the new music starts. A long piece is drawn in several rows (ROW_BEATS beats each) rather than
    squeezed into one unreadable strip."""
    if time not in ("beats", "seconds"):
        raise RenderError(f"time must be 'beats' or 'seconds', got {time!r}")
    check_plot_target(path)
    midi = as_midi(midi)
    import matplotlib

    matplotlib.use("Agg", force=True)   # no display needed, and never a GUI window
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch

    tracks = list(midi.instruments)   # silent ones too: each voice keeps its colour and its legend entry
    if time == "beats":
        n_beats = count_beats(midi)
        if n_beats > MAX_PLOT_BEATS:
            raise RenderError(f"the piece spans {n_beats:,.0f} beats (a very fast tempo?), more than {MAX_PLOT_BEATS:,} "
                              f"can be drawn; plot it with --time seconds")
        beats = np.asarray(midi.get_beats(), dtype=float)
        step = beats[1] - beats[0] if len(beats) > 1 else 0.5
        beats = np.append(beats, np.arange(1, 3) * step + (beats[-1] if len(beats) else 0.0))

        def conv(t):   # seconds -> beats through the tempo map (piecewise linear between beats)
            return np.interp(t, beats, np.arange(len(beats)), right=None)
    else:
        def conv(t):
            return np.asarray(t, dtype=float)
    pitches = [n.pitch for i in tracks for n in i.notes]
    lo, hi = (min(pitches), max(pitches)) if pitches else (60, 72)
    span_end = max(float(conv(midi.get_end_time())) if pitches else 1.0, 1e-3)
    # rows of ROW_BEATS beats (half a beat per second of time: 120 bpm), at most MAX_ROWS, the last ones longer
    per_row = ROW_BEATS if time == "beats" else ROW_BEATS / 2
    n_rows = max(1, min(MAX_ROWS, int(np.ceil(span_end / per_row - 1e-9))))
    row_len = span_end if n_rows == 1 else max(per_row, span_end / n_rows)
    width = max(6.0, min(24.0, 2 + row_len * 0.35))
    row_height = max(3.0, min(12.0 if n_rows == 1 else 4.0, 1.5 + (hi - lo) * 0.12))
    fig, axes = plt.subplots(n_rows, 1, figsize=(width, row_height * n_rows + (0.5 if n_rows > 1 else 0)),
                             squeeze=False)
    axes = axes[:, 0]
    colors = plt.get_cmap("tab10").colors
    mark = None if prompt_end is None else float(conv(prompt_end))
    handles = []
    for k, inst in enumerate(tracks):
        color = colors[k % len(colors)]
        label = inst.name.strip() or ("drums" if inst.is_drum else f"track {k + 1}")
        count = f"{len(inst.notes)} note{'' if len(inst.notes) == 1 else 's'}"
        handles.append(Patch(facecolor=color, edgecolor="black", label=f"{label} ({count})"))
        if not inst.notes:
            continue
        starts = conv(np.array([n.start for n in inst.notes], dtype=float))
        ends = np.maximum(conv(np.array([n.end for n in inst.notes], dtype=float)), starts + 1e-3)
        pitch = np.array([n.pitch for n in inst.notes], dtype=float)
        for r, ax in enumerate(axes):   # one collection per track and row: fast for tens of thousands of notes
            a, b = r * row_len, (r + 1) * row_len
            keep = (starts < b) & (ends > a)
            if not keep.any():
                continue
            s, e, p = starts[keep], ends[keep], pitch[keep]
            verts = np.stack([np.stack([s, p - 0.4], 1), np.stack([s, p + 0.4], 1),
                              np.stack([e, p + 0.4], 1), np.stack([e, p - 0.4], 1)], 1)
            ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="black", linewidths=0.3, alpha=0.85))
    if mark is not None:
        handles.append(Patch(facecolor="0.75", edgecolor="none", label="prompt (shaded)"))
        handles.append(Patch(facecolor="crimson", edgecolor="none", label="continuation starts"))
    # pitch names on the axis: every semitone for small ranges, every C (and G) otherwise
    every = 1 if hi - lo <= 24 else None
    ticks = [p for p in range(lo - 1, hi + 2) if every or p % 12 in (0, 7)]
    bar = 4
    ts = midi.time_signature_changes
    if time == "beats" and ts:
        bar = ts[0].numerator * 4 / ts[0].denominator
    for r, ax in enumerate(axes):
        a, b = r * row_len, min((r + 1) * row_len, span_end)
        ax.set_xlim(a, a + row_len)   # every row on one time scale: a short last row ends early, not stretched
        ax.set_ylim(lo - 1.5, hi + 1.5)
        ax.set_yticks(ticks)
        ax.set_yticklabels([pitch_name(p) for p in ticks], fontsize=7 if every else 8)
        for p in range(lo - 1, hi + 2):   # shade the black keys, like a piano-roll editor
            if p % 12 in (1, 3, 6, 8, 10):
                ax.axhspan(p - 0.5, p + 0.5, color="0.93", zorder=0)
        if time == "beats":   # bar lines, one artist per row
            ax.vlines(np.arange(0, span_end + bar, bar), lo - 1.5, hi + 1.5, color="0.6", linewidth=0.6, zorder=0)
        if mark is not None and mark > a:
            ax.axvspan(a, min(mark, b), color="0.75", alpha=0.35, zorder=0.5, linewidth=0)
            if mark <= b:
                ax.axvline(mark, color="crimson", linewidth=2.0, zorder=3)
        ax.set_ylabel("pitch")
    axes[-1].set_xlabel("time (beats)" if time == "beats" else "time (seconds)")
    if title:
        axes[0].set_title(title, fontsize=12 if n_rows == 1 else 14)
    if handles:
        axes[0].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8 if n_rows == 1 else 10,
                       frameon=False)  # beside, never over notes
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_write(path, RenderError) as tmp:   # a full disk never leaves a truncated picture
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lower()[1:])
    finally:
        plt.close(fig)
    return path


def check_plot_target(path) -> None:
    """A picture format matplotlib writes, at a path that can take a file; before any drawing."""
    from zoo.safeio import output_target

    path = Path(path)
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise RenderError(f"{path}: a piano roll is written as {', '.join(PLOT_SUFFIXES)}; use one of those suffixes")
    output_target(path, RenderError)


def count_beats(midi) -> float:
    """Beats in a piece from its tempo map, without listing them (pretty_midi's get_beats would)."""
    times, tempi = midi.get_tempo_changes()   # tempi in quarter notes per minute
    end = midi.get_end_time()
    bounds = np.append(times, max(end, times[-1] if len(times) else 0.0))
    return float(np.sum(np.diff(bounds) * np.asarray(tempi, dtype=float) / 60.0)) if len(tempi) else end * 2
