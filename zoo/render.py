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


class RenderError(ZooError):
    """A picture, audio file or score cannot be made (a missing program, soundfont or bad option)."""


def pitch_name(pitch: int) -> str:
    """MIDI number -> scientific pitch name (60 -> C4)."""
    return f"{PITCH_NAMES[pitch % 12]}{pitch // 12 - 1}"


def _as_midi(midi):
    from zoo.midi import read_midi

    return read_midi(midi) if isinstance(midi, (str, os.PathLike)) else midi


# --- piano roll ------------------------------------------------------------------------------------

def plot_pianoroll(midi, path, time: str = "beats", title: str | None = None, dpi: int = 120) -> Path:
    """Draw a piano roll PNG/SVG/PDF: time in beats or seconds, pitch names, one colour per track, a legend."""
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
    span_end = float(conv(midi.get_end_time())) if pitches else 1.0
    fig, ax = plt.subplots(figsize=(max(6.0, min(24.0, 2 + span_end * 0.35)), max(3.0, min(12.0, 1.5 + (hi - lo) * 0.12))))
    colors = plt.get_cmap("tab10").colors
    handles = []
    for k, inst in enumerate(tracks):
        color = colors[k % len(colors)]
        if inst.notes:   # one collection per track: fast for tens of thousands of notes
            starts = conv(np.array([n.start for n in inst.notes], dtype=float))
            ends = np.maximum(conv(np.array([n.end for n in inst.notes], dtype=float)), starts + 1e-3)
            pitch = np.array([n.pitch for n in inst.notes], dtype=float)
            verts = np.stack([np.stack([starts, pitch - 0.4], 1), np.stack([starts, pitch + 0.4], 1),
                              np.stack([ends, pitch + 0.4], 1), np.stack([ends, pitch - 0.4], 1)], 1)
            ax.add_collection(PolyCollection(verts, facecolors=color, edgecolors="black", linewidths=0.3,
                                             alpha=0.85))
        label = inst.name.strip() or ("drums" if inst.is_drum else f"track {k + 1}")
        count = f"{len(inst.notes)} note{'' if len(inst.notes) == 1 else 's'}"
        handles.append(Patch(facecolor=color, edgecolor="black", label=f"{label} ({count})"))
    ax.set_xlim(0, max(span_end, 1e-3))
    ax.set_ylim(lo - 1.5, hi + 1.5)
    # pitch names on the axis: every semitone for small ranges, every C (and G) otherwise
    every = 1 if hi - lo <= 24 else None
    ticks = [p for p in range(lo - 1, hi + 2) if every or p % 12 in (0, 7)]
    ax.set_yticks(ticks)
    ax.set_yticklabels([pitch_name(p) for p in ticks], fontsize=7 if every else 8)
    for p in range(lo - 1, hi + 2):   # shade the black keys, like a piano-roll editor
        if p % 12 in (1, 3, 6, 8, 10):
            ax.axhspan(p - 0.5, p + 0.5, color="0.93", zorder=0)
    if time == "beats":
        bar = 4
        ts = midi.time_signature_changes
        if ts:
            bar = ts[0].numerator * 4 / ts[0].denominator
        ax.vlines(np.arange(0, span_end + bar, bar), lo - 1.5, hi + 1.5, color="0.6", linewidth=0.6, zorder=0)  # one artist
    ax.set_xlabel("time (beats)" if time == "beats" else "time (seconds)")
    ax.set_ylabel("pitch")
    if title:
        ax.set_title(title)
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)  # beside, never over notes
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


# clefs and staff names for four voices, top to bottom
_SATB = (("Soprano", "treble"), ("Alto", "treble"), ("Tenor", "treble8vb"), ("Bass", "bass"))


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


def to_score(midi, title: str | None = None, staves: int = 4):
    """PrettyMIDI -> music21 Score a musician can read: a staff per track (four tracks: SATB with soprano,
    alto, tenor (treble 8vb) and bass clefs, or with staves=2 soprano and alto on a treble staff, tenor and
    bass on a bass staff, stems up for the upper voice), the best-fitting key signature with notes spelled in
    the key, 16th-note grid, measures, ties across bar lines and merged note values."""
    if staves not in (2, 4):
        raise RenderError(f"staves must be 2 or 4, got {staves}")
    from music21 import clef, key, meter, metadata, stream, tempo

    midi = _as_midi(midi)
    tracks = [i for i in midi.instruments if not i.is_drum]
    ts = midi.time_signature_changes[0] if midi.time_signature_changes else None
    num, den = (ts.numerator, ts.denominator) if ts else (4, 4)
    bar_q = num * 4 / den
    last = max((_quarters(midi, n.end) for i in tracks for n in i.notes), default=bar_q)
    end_q = max(bar_q, -(-last // bar_q) * bar_q)   # whole bars
    score = stream.Score()
    satb = len(tracks) == 4
    if not satb:   # a wide-ranging track (a piano) goes on a grand staff: right hand from middle C up
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
        if satb:
            std, clef_name = _SATB[i]
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
    if satb and staves == 2:
        score = _two_staves(score)
    score.metadata = metadata.Metadata()
    score.metadata.title = title or ""
    score.metadata.movementName = ""
    score.metadata.composer = "musezoo"
    return score


def _two_staves(score):
    """An SATB score on four staves -> two: S+A on a treble staff, T+B on a bass staff, as voices per measure."""
    from music21 import clef, stream

    parts = list(score.parts)
    out = stream.Score()
    for (upper, lower), name, new_clef in (((parts[0], parts[1]), "S A", clef.TrebleClef),
                                           ((parts[2], parts[3]), "T B", clef.BassClef)):
        staff = stream.Part()
        staff.partName = name
        for m_up, m_low in zip(upper.getElementsByClass("Measure"), lower.getElementsByClass("Measure")):
            m = stream.Measure(number=m_up.number)
            if m_up.number == 1 or m_up.offset == 0:
                m.insert(0, new_clef())
                for el in m_up.getElementsByClass(("KeySignature", "TimeSignature", "MetronomeMark")):
                    m.insert(0, el.__deepcopy__())
            for k, (src, stem) in enumerate(((m_up, "up"), (m_low, "down"))):
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


def write_score(midi, path, title: str | None = None, first_system: bool = False, staves: int = 4) -> Path:
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


def _lilypond(exe, xml: Path, tmp: Path, suffix: str, first_system: bool) -> None:
    conv = shutil.which("musicxml2ly") or str(Path(exe).with_name("musicxml2ly"))
    ly = tmp / "score.ly"
    _run([conv, "--no-beaming", "-o", str(ly), str(xml)], "musicxml2ly", cwd=tmp)
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
    shutil.copyfile(pick[0], tmp / "score.out.png")
