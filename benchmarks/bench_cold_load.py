"""3. Cold load to first output, in a fresh Python process each time (imports included).

ours:  zoo.load(NAME) (safetensors straight onto the device, sha256 manifest checked) + generate(num=1)
       + write the MIDI.
peer:  torch.load of a pickled state dict of the same generator + the book's music21 MIDI conversion
       (notes_to_midi of the book's MuseGAN notebook, transcribed below).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

OURS = textwrap.dedent("""
    import sys
    import zoo
    model = zoo.load(sys.argv[1], device=sys.argv[2])
    model.generate(num=1, seed=0)[0].write(sys.argv[3])
""")

# The book's conversion (Foster, Generative Deep Learning 2nd ed., MuseGAN notebook: notes_to_midi), with
# its reshape kept as it was; the pieces are cut from the roll by argmax, as the book's binarise_output did.
PEER = textwrap.dedent("""
    import sys, json
    import numpy as np
    import torch
    from music21 import duration, note, stream, tempo
    from zoo_musegan.model import MuseGANConfig, MuseGenerator
    cfg = json.load(open(sys.argv[4]))
    config = MuseGANConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in cfg.items()})
    gen = MuseGenerator(config)
    gen.load_state_dict(torch.load(sys.argv[1], map_location=sys.argv[2]))
    gen = gen.to(sys.argv[2]).eval()
    g = torch.Generator().manual_seed(0)
    z = config.z_dim
    noise = [torch.randn(s, generator=g).to(sys.argv[2]) for s in
             [(1, z), (1, z), (1, config.n_tracks, z), (1, config.n_tracks, z)]]
    with torch.no_grad():
        output = gen(*noise).cpu().numpy()
    n_bars, n_tracks, n_steps_per_bar = config.n_bars, config.n_tracks, config.steps_per_bar
    max_pitches = np.argmax(output, axis=-1)
    midi_note_score = max_pitches[0].reshape([n_bars * n_steps_per_bar, n_tracks])
    parts = stream.Score()
    parts.append(tempo.MetronomeMark(number=66))
    for i in range(n_tracks):
        last_x = int(midi_note_score[:, i][0])
        s = stream.Part()
        dur = 0
        for idx, x in enumerate(midi_note_score[:, i]):
            x = int(x)
            if (x != last_x or idx % 4 == 0) and idx > 0:
                n = note.Note(last_x)
                n.duration = duration.Duration(dur)
                s.append(n)
                dur = 0
            last_x = x
            dur = dur + 0.25
        n = note.Note(last_x)
        n.duration = duration.Duration(dur)
        s.append(n)
        parts.append(s)
    parts.write("midi", fp=sys.argv[3])
""")


def _wall(cmd, env) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-800:]}")
    return dt


def run(bench, device: str = "cpu", name: str = "musegan-bach"):
    import json

    import torch

    import zoo

    notes = []
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        tmp = Path(tmp)
        info = zoo.info(name) if name in zoo.list_models() else {"local_path": None}
        if info.get("local_path"):
            model = zoo.load(name, device="cpu")
            target = name
            notes.append(f"model: the shipped pretrained `{name}` (inside its plugin's package)")
        else:
            torch.manual_seed(0)
            model = zoo.create("musegan")
            target = str(model.save_pretrained(tmp / "model"))
            notes.append(f"model: a freshly initialised musegan saved with save_pretrained (the `{name}` weights "
                         f"were not in this checkout when the benchmark ran)")
        pickled = tmp / "generator.pt"
        torch.save(model.generator.state_dict(), pickled)   # the book's way of shipping weights
        from dataclasses import asdict

        (tmp / "config.json").write_text(json.dumps(asdict(model.config)))
        for script, text in (("ours.py", OURS), ("peer.py", PEER)):
            (tmp / script).write_text(text)
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        py = sys.executable
        t_ours = bench.median(lambda: _wall([py, str(tmp / "ours.py"), target, device, str(tmp / "a.mid")], env),
                              "cold ours", timed=False)
        t_peer = bench.median(lambda: _wall([py, str(tmp / "peer.py"), str(pickled), device, str(tmp / "b.mid"),
                                             str(tmp / "config.json")], env), "cold peer", timed=False)
    rows = [{"impl": "ours: zoo.load + generate + write", "s": t_ours, "ratio": 1.0},
            {"impl": "book: torch.load pickle + music21 conversion", "s": t_peer, "ratio": t_peer / t_ours}]
    notes.append("wall time of a whole fresh process (interpreter start and imports included), device " + device)
    return {"rows": rows, "notes": notes}
