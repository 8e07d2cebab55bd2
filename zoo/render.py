"""See, hear and read the music: piano-roll pictures, audio through FluidSynth, sheet music.

    plot_pianoroll(midi, "out.png")          matplotlib (Agg): one colour per track, pitch names, a legend
    render_audio(midi, "out.wav")            the FluidSynth command line + a General MIDI soundfont
    write_score(midi, "out.musicxml")        music21; .pdf/.png are engraved by LilyPond or MuseScore

External programs are found on PATH; when one is missing the error names the Debian package.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np

from zoo.errors import ZooError
from zoo.safeio import atomic_write

SOUNDFONTS = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/sounds/sf2/default-GM.sf2",
              "/usr/share/soundfonts/default.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")
PITCH_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
SCORE_SUFFIXES = (".musicxml", ".xml", ".mxl", ".pdf", ".png")
PLOT_SUFFIXES = (".png", ".svg", ".pdf")
# a 24-hour piece at 120 bpm has 172,800 beats; a 46-byte file with a 1 us tempo claims 10^7 (pretty_midi's
# get_beats would list them all, and one bar line each took minutes and 8 GB)
MAX_PLOT_BEATS = 200_000
# a piano roll longer than ROW_BEATS beats is drawn in rows of that length (at most MAX_ROWS rows, then longer ones):
# one 24-inch strip of 700 beats had notes a few pixels wide and text too small to read
ROW_BEATS = 64
MAX_ROWS = 16


class RenderError(ZooError):
    """A picture, audio file or score cannot be made (a missing program, soundfont or bad option)."""


def pitch_name(pitch: int) -> str:
    """MIDI number -> scientific pitch name (60 -> C4)."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _as_midi(midi):
    from zoo.midi import read_midi

    return read_midi(midi) if isinstance(midi, (str, os.PathLike)) else midi


# --- piano roll ------------------------------------------------------------------------------------

def plot_pianoroll(midi, path, time: str = "beats", title: str | None = None, dpi: int = 120,
                   prompt_end: float | None = None) -> Path:
    """Draw a piano roll PNG/SVG/PDF: time in beats or seconds, pitch names, one colour per track, a legend.

    prompt_end (seconds): the piece is a continuation whose prompt ends there; the prompt is shaded and a line
    marks where the new music starts. A long piece is drawn in several rows (ROW_BEATS beats each) rather than
    squeezed into one unreadable strip."""
    if time not in ("beats", "seconds"):
        raise RenderError(f"time must be 'beats' or 'seconds', got {time!r}")
    check_plot_target(path)
    midi = _as_midi(midi)
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


# --- audio -----------------------------------------------------------------------------------------

def find_soundfont(soundfont=None) -> Path:
    """The given soundfont, $ZOO_SOUNDFONT, or the first General MIDI soundfont Debian installs."""
    if soundfont:
        sf = Path(soundfont)
        if not sf.is_file():
            raise RenderError(f"soundfont {sf} does not exist; give an .sf2 file with --soundfont")
        return sf
    for cand in filter(None, [os.environ.get("ZOO_SOUNDFONT"), *SOUNDFONTS]):
        if Path(cand).is_file():
            return Path(cand)
    raise RenderError("no General MIDI soundfont found; install one (Debian/Ubuntu: sudo apt-get install "
                      "fluid-soundfont-gm) or pass --soundfont FILE.sf2")


def fluidsynth_path() -> str:
    """The fluidsynth program, or a RenderError that says how to install it."""
    exe = shutil.which("fluidsynth")
    if not exe:
        raise RenderError("FluidSynth is not installed, so no audio can be rendered; install it "
                          "(Debian/Ubuntu: sudo apt-get install fluidsynth fluid-soundfont-gm; macOS: brew install fluid-synth)")
    return exe


def render_audio(midi, path, soundfont=None, sample_rate: int = 44100, peak_db: float = -1.0) -> Path:
    """Render MIDI to a 16-bit stereo WAV with FluidSynth, then normalise its peak to `peak_db` dBFS.

    FluidSynth's default gain (0.2) is quiet; rendering at 0.5 and normalising the peak gives a loud,
    unclipped file whatever the number of voices. The file lasts the music plus the instruments' release.
    """
    exe = fluidsynth_path()
    sf = find_soundfont(soundfont)
    midi = _as_midi(midi)
    path = Path(path)
    if path.suffix.lower() != ".wav":
        raise RenderError(f"{path}: audio is written as WAV; use a .wav file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="zoo-render-") as tmp:
        mid, raw = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        midi.write(str(mid))
        cmd = [exe, "-ni", "-q", "-g", "0.5", "-r", str(sample_rate), "-T", "wav", "-F", str(raw), str(sf), str(mid)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not raw.is_file():
            raise RenderError(f"fluidsynth failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-400:]}")
        with wave.open(str(raw), "rb") as w:
            params = w.getparams()
            frames = w.readframes(params.nframes)
        if params.sampwidth != 2:
            with atomic_write(path, RenderError) as tmp_out:
                shutil.copyfile(raw, tmp_out)
            return path
        audio = np.frombuffer(frames, dtype="<i2").astype(np.float64)
        peak = np.abs(audio).max() if audio.size else 0.0
        if peak > 0:
            audio *= (10 ** (peak_db / 20) * 32767) / peak
        out = np.clip(np.round(audio), -32768, 32767).astype("<i2")
        with atomic_write(path, RenderError) as tmp_out:
            with wave.open(str(tmp_out), "wb") as w:
                w.setnchannels(params.nchannels)
                w.setsampwidth(2)
                w.setframerate(params.framerate)
                w.writeframes(out.tobytes())
    return path


def wav_stats(path) -> dict:
    """Duration (s), sample rate, channels and peak / RMS level (dBFS) of a 16-bit WAV."""
    with wave.open(str(path), "rb") as w:
        n, rate, ch = w.getnframes(), w.getframerate(), w.getnchannels()
        audio = np.frombuffer(w.readframes(n), dtype="<i2").astype(np.float64) / 32768
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    rms = float(np.sqrt(np.mean(audio ** 2))) if audio.size else 0.0

    def db(x):
        return 20 * np.log10(x) if x > 0 else float("-inf")

    return {"seconds": n / rate, "sample_rate": rate, "channels": ch, "peak_dbfs": db(peak), "rms_dbfs": db(rms)}


# --- sheet music -----------------------------------------------------------------------------------

def engraver() -> tuple[str, str] | None:
    """('lilypond', path) or ('musescore', path) for the first engraver on PATH, else None."""
    for kind, names in (("lilypond", ("lilypond",)), ("musescore", ("mscore3", "musescore3", "mscore", "musescore"))):
        for name in names:
            exe = shutil.which(name)
            if exe:
                return kind, exe
    return None


CLEFS = ("treble", "treble8vb", "bass")   # the clefs a staff layout (Model.score_layouts) may name


def _quarters(midi, seconds: float, grid: int = 4) -> float:
    """Seconds -> quarter notes through the tempo map, rounded to 1/grid of a quarter (16ths by default)."""
    return round(midi.time_to_tick(seconds) / midi.resolution * grid) / grid


def _part(midi, inst, end_q: float):
    """One instrument -> a music21 Part on a 16th grid: notes sharing an onset form a chord, a note still
    sounding at the next onset is cut there (a staff has one rhythm), gaps are rests."""
    from music21 import chord, note, stream

    part = stream.Part()
    onsets: dict[float, list] = {}
    for n in inst.notes:
        s, e = _quarters(midi, n.start), _quarters(midi, n.end)
        onsets.setdefault(s, []).append((n.pitch, max(e, s + 0.25)))
    times = sorted(onsets)
    pos = 0.0
    for k, t in enumerate(times):
        nxt = times[k + 1] if k + 1 < len(times) else float("inf")
        if t > pos:
            part.insert(pos, note.Rest(quarterLength=t - pos))
        pitches = sorted({p for p, _ in onsets[t]})
        dur = min(max(e for _, e in onsets[t]), nxt) - t
        el = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
        el.quarterLength = dur
        part.insert(t, el)
        pos = t + dur
    if pos < end_q:
        part.insert(pos, note.Rest(quarterLength=end_q - pos))
    return part


def _grand_staff(inst, split: int = 60, span: int = 19):
    """[inst], or its notes from `split` up and below it as two tracks when they span more than one staff holds."""
    import pretty_midi

    pitches = [n.pitch for n in inst.notes]
    if not pitches or max(pitches) - min(pitches) <= span or min(pitches) >= split or max(pitches) < split:
        return [inst]
    name = inst.name.strip() or "Piano"
    upper = pretty_midi.Instrument(inst.program, name=f"{name} (right hand)")
    lower = pretty_midi.Instrument(inst.program, name=f"{name} (left hand)")
    upper.notes = [n for n in inst.notes if n.pitch >= split]
    lower.notes = [n for n in inst.notes if n.pitch < split]
    return [upper, lower]


def _fit_layout(staves, n_tracks: int):
    """A model's staff layout when it places each of the piece's tracks exactly once, else None."""
    if not staves:
        return None
    for staff in staves:
        if len(staff) != 3 or staff[1] not in CLEFS:
            raise RenderError(f"a staff must be (name, clef, track indices) with a clef of {', '.join(CLEFS)}; "
                              f"got {staff!r}")
    placed = sorted(i for _, _, tracks in staves for i in tracks)
    return staves if placed == list(range(n_tracks)) else None


def to_score(midi, title: str | None = None, staves=None):
    """PrettyMIDI -> music21 Score a musician can read: the best-fitting key signature with notes spelled in
    the key, 16th-note grid, measures, ties across bar lines and merged note values.

    `staves` is a layout a model declares (Model.score_layouts): staves top to bottom, each (name, clef,
    track indices); the tracks of one staff become its voices, stems up for the upper. Without one, or when
    the piece's tracks do not fit it, each track gets a staff with a clef chosen by its pitches, and a
    wide-ranging track (a piano) a grand staff."""
    from music21 import clef, key, meter, metadata, stream, tempo

    midi = _as_midi(midi)
    tracks = [i for i in midi.instruments if not i.is_drum]
    ts = midi.time_signature_changes[0] if midi.time_signature_changes else None
    num, den = (ts.numerator, ts.denominator) if ts else (4, 4)
    bar_q = num * 4 / den
    last = max((_quarters(midi, n.end) for i in tracks for n in i.notes), default=bar_q)
    end_q = max(bar_q, -(-last // bar_q) * bar_q)   # whole bars
    score = stream.Score()
    layout = _fit_layout(staves, len(tracks))
    if layout is None:   # a wide-ranging track (a piano) goes on a grand staff: right hand from middle C up
        tracks = [half for inst in tracks for half in _grand_staff(inst)]
    parts = [_part(midi, inst, end_q) for inst in tracks]
    all_notes = stream.Stream()
    for p in parts:
        for n in p.notes:
            all_notes.append(n.__deepcopy__())
    try:
        k = all_notes.analyze("key") if len(all_notes.notes) else None
    except Exception:   # music21 finds no key in some degenerate inputs
        k = None
    if k is not None:   # spell the key's pitch classes as the key does (Bb, not A#, in F major)
        names = {q.pitchClass: q.name for q in k.pitches}
        for p in parts:
            for n in p.recurse().notes:
                for pitch in n.pitches:
                    want = names.get(pitch.pitchClass)
                    if want and pitch.name != want:
                        m = pitch.midi
                        pitch.name = want
                        pitch.octave = (pitch.octave if pitch.octave is not None else 4) + (m - pitch.midi) // 12
    for i, (inst, part) in enumerate(zip(tracks, parts)):
        if layout is not None:
            std, clef_name, _ = next(staff for staff in layout if i in staff[2])
            c = {"treble": clef.TrebleClef, "treble8vb": clef.Treble8vbClef, "bass": clef.BassClef}[clef_name]()
        else:
            std = None
            pitches = [p.midi for n in part.notes for p in n.pitches]
            low = inst.name.endswith("(left hand)") or (pitches and float(np.median(pitches)) < 57)
            c = clef.BassClef() if low else clef.TrebleClef()
        part.partName = inst.name.strip() or std or f"Track {i + 1}"
        part.insert(0, c)
        part.insert(0, meter.TimeSignature(f"{num}/{den}"))
        if k is not None:
            part.insert(0, key.KeySignature(k.sharps))
        if i == 0:
            part.insert(0, tempo.MetronomeMark(number=round(midi.get_tempo_changes()[1][0]) if len(midi.get_tempo_changes()[1]) else 120))
        score.insert(0, part)
    score = score.makeNotation()
    if layout is not None and any(len(tracks) > 1 for _, _, tracks in layout):
        score = _shared_staves(score, layout)
    score.metadata = metadata.Metadata()
    score.metadata.title = title or ""
    score.metadata.movementName = ""
    score.metadata.composer = "musezoo"
    return score


def _shared_staves(score, layout):
    """A score with a staff per track -> the layout's staves: the tracks of one staff become its voices,
    measure by measure, stems up for the first and down for the others."""
    from music21 import clef, stream

    parts = list(score.parts)
    out = stream.Score()
    for name, clef_name, tracks in layout:
        new_clef = {"treble": clef.TrebleClef, "treble8vb": clef.Treble8vbClef, "bass": clef.BassClef}[clef_name]
        staff = stream.Part()
        staff.partName = name
        sources = [parts[t].getElementsByClass("Measure") for t in tracks]
        for measures in zip(*sources):
            m_up = measures[0]
            m = stream.Measure(number=m_up.number)
            if m_up.number == 1 or m_up.offset == 0:
                m.insert(0, new_clef())
                for el in m_up.getElementsByClass(("KeySignature", "TimeSignature", "MetronomeMark")):
                    m.insert(0, el.__deepcopy__())
            for k, src in enumerate(measures):
                stem = "up" if k == 0 else "down"
                v = stream.Voice(id=str(k + 1))
                for el in src.notesAndRests:
                    offset, el = el.offset, el.__deepcopy__()   # a copy forgets its offset in the measure
                    if el.isNote or el.isChord:
                        el.stemDirection = stem
                    v.insert(offset, el)
                m.insert(0, v)
            staff.insert(m_up.offset, m)
        out.insert(0, staff)
    return out


def check_score_target(path) -> tuple[str, str] | None:
    """Raise RenderError unless `path` can be written here; returns the engraver it needs (or None for MusicXML)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SCORE_SUFFIXES:
        raise RenderError(f"{path}: sheet music is written as {', '.join(SCORE_SUFFIXES)}")
    from zoo.safeio import output_target

    output_target(path, RenderError)
    if suffix in (".pdf", ".png"):
        tool = engraver()
        if tool is None:
            raise RenderError(f"engraving {suffix[1:].upper()} needs LilyPond or MuseScore; install one "
                              f"(Debian/Ubuntu: sudo apt-get install lilypond, or musescore3), or write .musicxml")
        return tool
    return None


def write_score(midi, path, title: str | None = None, first_system: bool = False, staves=None) -> Path:
    """Sheet music: .musicxml/.xml/.mxl through music21; .pdf/.png engraved by LilyPond or MuseScore.

    first_system=True (PNG from LilyPond) crops the picture to the first system, for a README.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    tool = check_score_target(path)
    score = to_score(midi, title, staves=staves)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".musicxml", ".xml", ".mxl"):
        with atomic_write(path, RenderError) as tmp:
            score.write("mxl" if suffix == ".mxl" else "musicxml", fp=str(tmp))
        return path
    with tempfile.TemporaryDirectory(prefix="zoo-engrave-") as tmp:
        xml = Path(tmp) / "score.musicxml"
        score.write("musicxml", fp=str(xml))
        kind, exe = tool
        if kind == "lilypond":
            _lilypond(exe, xml, Path(tmp), suffix, first_system)
        else:
            env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
            out = Path(tmp) / f"score{suffix}"
            _run([exe, "-o", str(out), str(xml)], "MuseScore", env=env)
            pages = sorted(Path(tmp).glob(f"score*{suffix}"))   # PNG: score-1.png, score-2.png, ...
            if not pages:
                raise RenderError("MuseScore wrote no output")
            out = pages[0]
        result = Path(tmp) / f"score.out{suffix}"
        if not result.is_file():
            raise RenderError(f"the engraver wrote no {suffix} file")
        with atomic_write(path, RenderError) as tmp_out:   # never a truncated score under its final name
            shutil.copyfile(result, tmp_out)
    return path


def _run(cmd, what, env=None, cwd=None):
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise RenderError(f"{what} failed (exit {proc.returncode}): {(proc.stderr or proc.stdout).strip()[-500:]}")
    return proc


def quote_ly_header(text: str) -> str:
    """Quote the bare words musicxml2ly leaves unquoted in \\header (`title = c`): LilyPond reads a bare `c` or
    `s` as a note or a spacer, not as text, and the score came out untitled. Only letters-only values are
    bare (musicxml2ly quotes anything else), so quoting them changes nothing but their meaning."""
    import re

    def quote(block):
        return re.sub(r"^(\s*[A-Za-z-]+\s*=\s*)([A-Za-z]+)\s*$", r'\1"\2"', block.group(0), flags=re.MULTILINE)

    return re.sub(r"\\header\s*\{[^}]*\}", quote, text)


def _lilypond(exe, xml: Path, tmp: Path, suffix: str, first_system: bool) -> None:
    conv = shutil.which("musicxml2ly") or str(Path(exe).with_name("musicxml2ly"))
    ly = tmp / "score.ly"
    _run([conv, "--no-beaming", "-o", str(ly), str(xml)], "musicxml2ly", cwd=tmp)
    ly.write_text(quote_ly_header(ly.read_text(encoding="utf-8")), encoding="utf-8")
    out = tmp / "score.out"
    if suffix == ".pdf":
        _run([exe, "-s", "--pdf", "-o", str(out), str(ly)], "LilyPond", cwd=tmp)
        return
    args = [exe, "-s", "--png", "-dresolution=150"]
    if first_system:   # -dpreview engraves the title and the first system only
        args += ["-dpreview", "-dno-print-pages"]
    else:
        args += ["-dcrop", "-dno-print-pages"]   # one picture of the whole piece, cropped to the music
    _run(args + ["-o", str(out), str(ly)], "LilyPond", cwd=tmp)
    made = sorted(tmp.glob("score.out*.png"))
    pick = [p for p in made if ".preview" in p.name or ".cropped" in p.name] or made
    if not pick:
        raise RenderError("LilyPond wrote no PNG")
    _pad_png(pick[0], tmp / "score.out.png")


def _pad_png(src: Path, dest: Path, margin: int = 24) -> None:
    """Copy a cropped PNG with a white margin: LilyPond crops to the ink, so the title's ascenders and the
    composer line touched (and in some viewers lost) the picture's edge."""
    from PIL import Image, ImageOps

    with Image.open(src) as im:
        ImageOps.expand(im.convert("RGB"), border=margin, fill="white").save(dest)
