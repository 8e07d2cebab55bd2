"""4. Tokenizing a MIDI folder, files/s and tokens/s: our `performance` tokenizer vs miditok's MIDILike.

Both read every file with symusic (ours: PerformanceTokenizer.encode(path), which loads through symusic
when it is installed; miditok: MIDILike()(symusic.Score(path))). The folder: every MIDI file shipped in
the music21 package plus Bach chorales from the music21 corpus written out as MIDI once (cached).
"""

from __future__ import annotations

import os
from pathlib import Path


def midi_folder(n_chorales: int = 40) -> list[Path]:
    """The benchmark's MIDI files (the chorale conversion is cached under the user cache folder)."""
    import music21

    root = Path(os.environ.get("ZOO_CACHE_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "musezoo")
    folder = root / "bench-midi"
    folder.mkdir(parents=True, exist_ok=True)
    files = sorted(Path(music21.__file__).parent.rglob("*.mid"))
    chorales = sorted(folder.glob("bwv*.mid"))
    if len(chorales) < n_chorales:
        from music21 import corpus

        for path in corpus.getComposer("bach")[: n_chorales * 2]:
            out = folder / f"{Path(path).stem}.mid"
            if out.exists() or not Path(path).name.startswith("bwv"):
                continue
            try:
                corpus.parse(path).write("midi", fp=str(out))
            except Exception:
                continue
            chorales = sorted(folder.glob("bwv*.mid"))
            if len(chorales) >= n_chorales:
                break
    return files + chorales[:n_chorales]


def run(bench):
    from zoo_music_transformer.tokenizer import PerformanceTokenizer

    files = midi_folder()
    ours_tok = PerformanceTokenizer()
    counts = {}

    def ours():
        counts["ours"] = sum(len(ours_tok.encode(f)) for f in files)

    rows, notes = [], [f"{len(files)} MIDI files"]
    t_ours = bench.median(ours, "tok ours")
    rows.append({"impl": "ours: performance (symusic loading)", "s": t_ours, "files_s": len(files) / t_ours,
                 "tok_s": counts["ours"] / t_ours, "tokens": counts["ours"]})
    try:
        import symusic
        from miditok import MIDILike, TokenizerConfig
    except ImportError as exc:
        notes.append(f"miditok skipped: {exc} (pip install -e '.[bench]')")
    else:
        mt = MIDILike(TokenizerConfig(use_velocities=True, num_velocities=32))

        def peer():
            total = 0
            for f in files:
                seqs = mt.encode(symusic.Score(str(f)))
                total += sum(len(s.ids) for s in (seqs if isinstance(seqs, list) else [seqs]))
            counts["peer"] = total

        t_peer = bench.median(peer, "tok miditok")
        rows.append({"impl": "miditok MIDILike (symusic loading)", "s": t_peer, "files_s": len(files) / t_peer,
                     "tok_s": counts["peer"] / t_peer, "tokens": counts["peer"]})
    for r in rows:
        r["ratio"] = r["s"] / t_ours   # how many times longer than ours the folder takes
    return {"rows": rows, "notes": notes}
