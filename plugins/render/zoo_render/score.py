"""Sheet music with music21: MusicXML, engraved to PDF or PNG by LilyPond or MuseScore."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from zoo.safeio import atomic_write
from zoo_render.common import RenderError, as_midi

SCORE_SUFFIXES = (".musicxml", ".xml", ".mxl", ".pdf", ".png")


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

    midi = as_midi(midi)
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
