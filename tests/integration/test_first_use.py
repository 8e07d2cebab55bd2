"""What a new user meets first: progress on a terminal, continuation plots, score titles, errors that say
what to do, `zoo info`, and model cards that publish no local path. Each test runs the command as a user would."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest

import zoo_render as render

ROOT = Path(__file__).resolve().parents[2]
ZOO = str(Path(sys.executable).with_name("zoo"))
MUSEGAN_BACH = ROOT / "plugins" / "musegan" / "zoo_musegan" / "weights" / "musegan-bach"
PROMPT = ROOT / "plugins" / "music_transformer" / "zoo_music_transformer" / "weights" / "music-transformer-classical" / "prompt.mid"
QUIET = {"OMP_NUM_THREADS": "1", "ZOO_THREADS": "1"}
CRIMSON = (220, 20, 60)   # the line where a continuation starts


def on_terminal(cmd, env=None, cwd=None, timeout=300) -> str:
    """Run cmd with stdout and stderr on a pseudo-terminal (what a user at a shell sees); its output."""
    import fcntl
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))   # 24 rows, 100 columns
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower, cwd=cwd,
                            env={**os.environ, **QUIET, **(env or {})})
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:   # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=timeout) == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


def in_a_pipe(cmd, env=None, cwd=None, timeout=300):
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout,
                          env={**os.environ, **QUIET, **(env or {})})
    assert done.returncode == 0, done.stderr
    return done


def one_line_error(cmd, cwd=None) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=120, env={**os.environ, **QUIET})
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and lines and lines[-1].startswith("zoo: error:"), done.stderr
    return lines[-1]


def crimson_pixels(path) -> int:
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB")).astype(int)
    return int((np.abs(a - CRIMSON).sum(-1) < 40).sum())


# --- progress: a bar on a terminal, nothing in a pipe ----------------------------------------------------------

def test_generate_shows_token_progress_on_a_terminal_and_nothing_in_a_pipe(tmp_path):
    cmd = [ZOO, "generate", "music-transformer-classical", "--length", "48", "--seed", "0", "--device", "cpu",
           "-o", str(tmp_path / "x.mid")]
    shown = on_terminal(cmd)
    assert "tokens" in shown and "48/48" in shown, shown
    piped = in_a_pipe(cmd)
    assert "tokens" not in piped.stderr and "\r" not in piped.stderr, piped.stderr
    assert piped.stdout.strip() == str(tmp_path / "x.mid")


def test_the_first_chorale_parse_shows_progress_on_a_terminal_only(tmp_path):
    # `zoo eval musegan-bach` parses ~400 chorales once; three show the same bar in a few seconds
    script = ("import zoo_chorales.data as d; names = d.chorale_names()[:3]; d.chorale_names = lambda: names; "
              "d.load_chorales()")
    env = {"ZOO_CACHE_DIR": str(tmp_path / "cache")}
    shown = on_terminal([sys.executable, "-c", script], env=env)
    assert "parsing the Bach chorales" in shown and "3/3" in shown, shown
    assert list((tmp_path / "cache").rglob("*.npz")), "parsed once, then cached"
    shutil.rmtree(tmp_path / "cache")
    piped = in_a_pipe([sys.executable, "-c", script], env=env)
    assert piped.stderr == "" and piped.stdout == ""


# --- plots of continuations and of long pieces -----------------------------------------------------------------

def test_plot_of_a_continuation_marks_where_the_prompt_ends(tmp_path):
    in_a_pipe([ZOO, "generate", "music-transformer-classical", "--prompt", PROMPT, "--length", "64", "--seed", "0",
               "--device", "cpu", "-o", tmp_path / "cont.mid", "--plot", tmp_path / "cont.png"])
    assert crimson_pixels(tmp_path / "cont.png") > 50
    # zoo plot of the same file: marked with --prompt, unmarked without
    in_a_pipe([ZOO, "plot", tmp_path / "cont.mid", "--prompt", PROMPT, "-o", tmp_path / "again.png"])
    in_a_pipe([ZOO, "plot", tmp_path / "cont.mid", "-o", tmp_path / "plain.png"])
    assert crimson_pixels(tmp_path / "again.png") > 50 and crimson_pixels(tmp_path / "plain.png") == 0
    # --continuation-only holds no prompt, so nothing is marked
    in_a_pipe([ZOO, "generate", "music-transformer-classical", "--prompt", PROMPT, "--length", "16", "--seed", "0",
               "--device", "cpu", "--continuation-only", "-o", tmp_path / "new.mid", "--plot", tmp_path / "new.png"])
    assert crimson_pixels(tmp_path / "new.png") == 0


def test_a_700_beat_roll_is_drawn_in_readable_rows(tmp_path):
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)   # 350 s at 120 bpm: 700 beats
    piano = pretty_midi.Instrument(0, name="Piano")
    piano.notes = [pretty_midi.Note(80, 48 + (k * 7) % 36, k * 0.5, k * 0.5 + 0.4) for k in range(700)]
    midi.instruments.append(piano)
    midi.write(str(tmp_path / "long.mid"))
    in_a_pipe([ZOO, "plot", tmp_path / "long.mid", "-o", tmp_path / "long.png"])
    from PIL import Image

    with Image.open(tmp_path / "long.png") as im:
        width, height = im.size
    # one strip was 2,880 x 1,000 px (a beat 4 px wide); rows of 64 beats keep a beat ~40 px wide
    assert width <= 2880 and height >= 11 * 300, (width, height)


# --- score titles ------------------------------------------------------------------------------------------------

def test_bare_titles_are_quoted_for_lilypond():
    ly = '\\header {\n    title =  c\n    composer =  musezoo\n    subtitle =  "a b"\n    }\nx = s\n'
    out = render.quote_ly_header(ly)
    assert 'title =  "c"' in out and 'composer =  "musezoo"' in out and 'subtitle =  "a b"' in out
    assert out.endswith("x = s\n")   # music outside the header is left alone


@pytest.mark.skipif(render.engraver() is None or render.engraver()[0] != "lilypond",
                    reason="needs LilyPond (apt-get install lilypond)")
def test_a_score_named_c_keeps_its_title_and_a_margin(tmp_path):
    from PIL import Image

    in_a_pipe([ZOO, "generate", "musegan-bach", "--seed", "0", "--device", "cpu", "-o", tmp_path / "c.mid",
               "--score", tmp_path / "c.png"], cwd=tmp_path)
    with Image.open(tmp_path / "c.png") as im:
        ink = np.asarray(im.convert("L")) < 200
    rows = np.flatnonzero(ink.any(1))
    assert rows[0] >= 10 and not ink[:, :10].any(), "nothing touches the picture's edge"
    top = ink[rows[0]:rows[0] + 20]
    middle = top[:, int(ink.shape[1] * 0.4):int(ink.shape[1] * 0.6)]
    assert middle.any(), "the centred title 'c' is the first line (without it: tempo left, composer right)"


# --- errors that say what to do ---------------------------------------------------------------------------------

def test_run_and_checkpoint_folders_point_to_the_model(tmp_path):
    run = tmp_path / "runs" / "mt"
    (run / "checkpoints" / "step-000100").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "checkpoints" / "step-000100" / "trainer_state.json").write_text("{}")
    line = one_line_error([ZOO, "generate", "runs/mt", "-o", "x.mid"], cwd=tmp_path)
    assert "training run folder" in line and "--resume" in line
    shutil.copytree(MUSEGAN_BACH, run / "final")
    line = one_line_error([ZOO, "generate", "runs/mt", "-o", "x.mid"], cwd=tmp_path)
    assert "training run folder" in line and "zoo generate runs/mt/final" in line
    line = one_line_error([ZOO, "generate", "runs/mt/checkpoints/step-000100", "-o", "x.mid"], cwd=tmp_path)
    assert "is a training checkpoint" in line and "--resume" in line and "runs/mt/final" in line


def test_missing_folders_prompts_and_misspelt_names(tmp_path):
    done = subprocess.run([ZOO, "eval", "runs/nope"], capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, **QUIET})
    # the error alone: no "evaluating on the plugin's embedded test split" before it
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert "no such folder: 'runs/nope'" in done.stderr and "unknown model" not in done.stderr
    (tmp_path / "songs").mkdir()
    line = one_line_error([ZOO, "generate", "music-transformer-classical", "--prompt", "songs/", "-o", "x.mid"],
                          cwd=tmp_path)
    assert "is a folder, not a MIDI file" in line
    line = one_line_error([ZOO, "info", "musegan-bahc"])
    assert "did you mean musegan-bach" in line


# --- zoo info -------------------------------------------------------------------------------------------------

def test_info_shows_size_metrics_options_data_licence_and_place():
    bach = json.loads(in_a_pipe([ZOO, "info", "musegan-bach", "--json"]).stdout)
    assert bach["parameters"] > 100_000 and bach["size_bytes"] > bach["parameters"]
    assert bach["file_sizes"]["model.safetensors"] == (Path(bach["local_path"]) / "model.safetensors").stat().st_size
    table = next(iter(bach["metrics"].values()))
    assert set(table["voice_crossing"]) == {"generated", "test data"}
    assert bach["generate_options"] == [] and bach["license"] and bach["data"]
    mt = json.loads(in_a_pipe([ZOO, "info", "music-transformer-classical", "--json"]).stdout)
    options = {o["name"]: o for o in mt["generate_options"]}
    assert options["length"]["default"] == 1024 and "temperature" in options
    assert any("test_nll" in rows for rows in mt["metrics"].values())                 # the card's NLL
    assert any("cont_long_notes" in rows for rows in mt["metrics"].values())               # and its continuation table


# --- a trained model's card names the data folder, never its local path --------------------------------------

def test_a_trained_card_publishes_no_local_path(tmp_path):
    music21 = Path(__import__("music21").__file__).parent
    data = tmp_path / "home" / "me" / "my-midi"
    data.mkdir(parents=True)
    for src in sorted((music21 / "midi" / "testPrimitive").glob("*.mid"))[:6]:
        shutil.copy(src, data / src.name)
    in_a_pipe([ZOO, "train", "music-transformer", "--data", data, "--out", tmp_path / "run", "--steps", "2",
               "--device", "cpu", "--set", "n_layer=1", "--set", "n_embd=16", "--set", "n_head=1",
               "--set", "block_size=32", "--batch-size", "2"], env={"ZOO_CACHE_DIR": str(tmp_path / "cache")})
    final = tmp_path / "run" / "final"
    assert "my-midi" in (final / "README.md").read_text()
    for path in final.iterdir():   # what zoo push uploads (plus the card it rewrites from README.md)
        assert str(tmp_path).encode() not in path.read_bytes(), path.name
    assert json.loads((tmp_path / "run" / "run.json").read_text())["data"] == str(data)   # stays on this machine


def test_info_table_reads_as_a_page_and_counts_what_num_parameters_counts():
    """(`zoo info` printed ~100 rows of JSON, and 620,102 parameters where num_parameters() said 704,105.)"""
    import zoo

    table = in_a_pipe([ZOO, "info", "musegan-bach"]).stdout
    assert not table.lstrip().startswith("{") and "valid_gen_" not in table and "valid_data_" not in table
    assert len(table.splitlines()) < 60
    model = zoo.load("musegan-bach", device="cpu")
    line = next(line for line in table.splitlines() if line.strip().startswith("parameters"))
    assert f"{model.num_parameters():,} in all state files" in line and "(what generate uses)" in line
    assert zoo.info("musegan-bach")["parameters"] == model.num_parameters()
    assert sum(zoo.info("musegan-bach")["parameters_by_file"].values()) == model.num_parameters()


def bar_notes(seconds: float, pitch: int = 60, period: float = 1.0, length: float = 0.5):
    """A one-track piece at 120 bpm: a note of `length` s every `period` s for `seconds`."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(0, name="Piano")
    piano.notes = [pretty_midi.Note(80, pitch, k * period, k * period + length) for k in range(int(seconds / period))]
    midi.instruments.append(piano)
    return midi


def note_runs(path) -> list[list[int]]:
    """Widths in pixels of the notes drawn in each row of a piano roll (tab10 blue at alpha 0.85 on white)."""
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB")).astype(int)
    blue = np.abs(a - (64, 139, 191)).sum(-1) < 30
    rows, band = [], None
    for y in range(blue.shape[0]):
        if not blue[y].any():
            band = None
            continue
        if band is None:
            band = []
            rows.append(band)
        edges = np.flatnonzero(np.diff(np.r_[0, blue[y].astype(int), 0]))
        band.extend((edges[1::2] - edges[::2]).tolist())
    return [r for r in rows if len(r) > 10]


def test_the_last_row_of_a_long_roll_keeps_the_time_scale_of_the_others(tmp_path):
    """(A last row of 9 beats was stretched to the width of 64: its notes looked 7x longer.)"""
    bar_notes(68).write(str(tmp_path / "long.mid"))    # 136 beats: rows of 64, 64 and 8
    in_a_pipe([ZOO, "plot", tmp_path / "long.mid", "-o", tmp_path / "long.png"])
    rows = note_runs(tmp_path / "long.png")
    assert len(rows) == 3, [len(r) for r in rows]
    first, last = np.median(rows[0]), np.median(rows[-1])
    assert abs(last - first) <= 0.15 * first, (first, last)


def test_the_continuation_mark_is_where_the_prompts_last_note_ends(tmp_path):
    """(The line was drawn at the prompt file's end time, pedal and meta events included: 4.2 s late on a POP909
    prompt.) A prompt whose pedal is released 6 s after its last note marks the same place as one without."""
    piece = bar_notes(16)
    piece.write(str(tmp_path / "cont.mid"))
    plain = bar_notes(4)
    plain.write(str(tmp_path / "plain.mid"))
    pedalled = bar_notes(4)
    pedalled.instruments[0].control_changes = [pretty_midi.ControlChange(64, 127, 3.0),
                                               pretty_midi.ControlChange(64, 0, 10.0)]
    pedalled.write(str(tmp_path / "pedal.mid"))
    assert pretty_midi.PrettyMIDI(str(tmp_path / "pedal.mid")).get_end_time() == pytest.approx(10.0)

    def mark_columns(prompt):
        in_a_pipe([ZOO, "plot", tmp_path / "cont.mid", "--prompt", prompt, "-o", tmp_path / "roll.png"])
        from PIL import Image

        with Image.open(tmp_path / "roll.png") as im:
            a = np.asarray(im.convert("RGB")).astype(int)
        return set(np.flatnonzero((np.abs(a - CRIMSON).sum(-1) < 40).sum(0) > 20).tolist())

    assert mark_columns(tmp_path / "pedal.mid") == mark_columns(tmp_path / "plain.mid") != set()
