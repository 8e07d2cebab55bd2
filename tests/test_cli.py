"""The `zoo` command as a subprocess: output, exit codes, one-line errors, atomic output."""

from __future__ import annotations

from pathlib import Path

import pretty_midi
import pytest

from zoo.errors import ConfigError
from zoo.testing import cli_in_process, one_error_line


@pytest.fixture
def saved(tiny_model, tmp_path):
    return tiny_model.save_pretrained(tmp_path / "model")


def _one_line_error(done):
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), done.stderr
    assert "Traceback" not in done.stderr
    return lines[0]


def test_list_info_plugins(tiny, zoo_cli):
    done = zoo_cli("list")
    assert done.returncode == 0 and "tiny-scales" in done.stdout and "tiny-lm" in done.stdout
    assert "tiny-scales" not in zoo_cli("list", "musegan*").stdout
    assert '"arch": "tiny-lm"' in zoo_cli("info", "tiny-scales", "--json").stdout
    plugins = zoo_cli("plugins").stdout
    assert "zoo-tiny 0.1.0" in plugins and "architecture:tiny-lm" in plugins and "register_trainers" in plugins


def test_generate_writes_real_midi_deterministically(tiny, zoo_cli, saved, tmp_path):
    a, b = tmp_path / "a.mid", tmp_path / "b.mid"
    for out in (a, b):
        done = zoo_cli("generate", saved, "-o", out, "--seed", 7, "--length", 16)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(out)
    assert a.read_bytes() == b.read_bytes()
    midi = pretty_midi.PrettyMIDI(str(a))
    assert len(midi.instruments[0].notes) > 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".mid") == ["a.mid", "b.mid"]  # no temp files


def test_a_third_party_generate_option_works_end_to_end(tiny, zoo_cli, saved, tmp_path):
    """zoo-tiny declares --start-pitch, an option no shipped plugin has and the core never names: the CLI makes
    it a flag (in either spelling), checks the range the plugin declares, and `zoo info` lists it."""
    import json

    for args in (["--start-pitch", "72"], ["--start-pitch=72"]):
        out = tmp_path / "high.mid"
        done = zoo_cli("generate", saved, "-o", out, "--seed", 1, "--length", 4, *args)
        assert done.returncode == 0, done.stderr
        assert pretty_midi.PrettyMIDI(str(out)).instruments[0].notes[0].pitch == 72
    line = _one_line_error(zoo_cli("generate", saved, "-o", tmp_path / "x.mid", "--start-pitch", 128))
    assert "--start-pitch must be a whole number from 0 to 127, got 128" in line   # the flag the user typed
    info = json.loads(zoo_cli("info", "tiny-lm", "--json").stdout)
    option = next(o for o in info["generate_options"] if o["name"] == "start_pitch")
    assert (option["default"], option["flag"], option["type"], option["max"]) == (60, "--start-pitch", "int", 127)


def test_generate_num_writes_one_file_per_piece(tiny, zoo_cli, saved, tmp_path):
    done = zoo_cli("generate", saved, "-o", tmp_path / "x.mid", "--num", 3, "--seed", 1)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("x-*.mid")) == ["x-1.mid", "x-2.mid", "x-3.mid"]


@pytest.mark.parametrize("args, message", [
    (("generate", "no-such-model", "-o", "x.mid"), "unknown model 'no-such-model'"),
    (("generate", "tiny-scales", "-o", "x.mid"), "weights of 'tiny-scales' are not in"),
    (("info", "nope"), "unknown model or architecture 'nope'"),
    (("train", "tiny-lm", "--out", "{tmp}/r", "--set", "colour=red"), "unknown key(s) colour; valid model keys"),
    (("train", "tiny-lm", "--out", "{tmp}/r", "--set", "steps=-1"), "steps must be at least 1"),
    (("train", "tiny-lm", "--out", "{tmp}/r", "--set", "novalue"), "--set needs key=value"),
    (("generate", "{saved}", "-o", "x.mid", "--device", "cuda:7"), "CUDA is not available"),
    (("generate", "{saved}", "-o", "x.mid", "--top-k", "5"), "tiny-lm does not take --top-k"),
    (("generate", "{saved}", "-o", "x.mid", "--num", "0"), "--num must be a whole number from 1 to"),
    (("generate", "--bogus"), "the following arguments are required"),
])
def test_user_errors_exit_2_with_one_line(tiny, zoo_cli, saved, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, saved=saved) for a in args]
    line = _one_line_error(zoo_cli(*args, cwd=tmp_path))
    assert message in line
    assert not (tmp_path / "x.mid").exists()


def test_convert_via_cli(tiny, zoo_cli, tiny_model, tmp_path):
    import torch

    torch.save(tiny_model.state_dict(), tmp_path / "old.pt")
    done = zoo_cli("convert", tmp_path / "old.pt", "--arch", "tiny-lm", "--out", tmp_path / "new")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "new" / "model.safetensors").is_file()
    line = _one_line_error(zoo_cli("generate", tmp_path, "-o", tmp_path / "y.mid"))
    assert "old.pt: pickle weights are refused" in line


def test_non_finite_numbers_and_deeply_nested_config_are_one_line(tiny, zoo_cli, tmp_path):
    line = _one_line_error(zoo_cli("train", "tiny-lm", "--out", tmp_path / "r", "--set", "lr=inf"))
    assert "lr' must be a finite number" in line
    (tmp_path / "deep.json").write_text("[" * 100000 + "]" * 100000)
    line = _one_line_error(zoo_cli("train", "tiny-lm", "--out", tmp_path / "r", "--config", tmp_path / "deep.json"))
    assert "not valid JSON" in line and "deep.json" in line
    assert not (tmp_path / "r").exists()


def test_under_torchrun_a_user_error_is_printed_once(tiny, tmp_path, capsys, monkeypatch):
    """Every rank meets the same bad option; only rank 0 says so (issue 26: one line per rank before)."""
    import subprocess
    import sys

    from tests.conftest import ZOO
    from zoo.cli import main

    bad = ["train", "tiny-lm", "--out", str(tmp_path / "run"), "--set", "grad_accum=0"]
    for rank, lines in (("1", 0), ("0", 1)):
        monkeypatch.setenv("RANK", rank)
        assert main(bad) == 2
        assert capsys.readouterr().err.count("zoo: error:") == lines
    monkeypatch.delenv("RANK")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port", "0",
                "--standalone", ZOO]
    done = subprocess.run([*torchrun, *bad], capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert done.stderr.count("zoo: error: grad_accum") == 1, done.stderr[-3000:]


def test_generate_name_help_lists_the_models_own_options(tiny, zoo_cli, saved):
    """(`zoo generate NAME --help` showed only the core's flags.) After NAME, the help adds the options its model
    declares, with their help, default and range; without NAME it says how to see them."""
    for command in ("generate", "eval"):
        done = zoo_cli(command, saved, "--help")
        assert done.returncode == 0, done.stderr
        shown = " ".join(done.stdout.split())   # argparse wraps lines to the terminal's width
        assert f"options of {saved} (architecture tiny-lm" in shown
        assert "--start-pitch N MIDI pitch the melody starts from (default 60); range 0..127" in shown
    plain = zoo_cli("generate", "--help")
    assert plain.returncode == 0 and "--start-pitch" not in plain.stdout and "zoo generate NAME --help" in plain.stdout
    line = _one_line_error(zoo_cli("generate", "no-such-model", "--help"))
    assert "unknown model 'no-such-model'" in line


def test_info_is_a_table_by_default_and_json_on_request(tiny, zoo_cli):
    import json

    table = zoo_cli("info", "tiny-lm").stdout
    assert table.startswith("tiny-lm  (architecture)\n") and "--start-pitch" in table
    assert "training defaults" in table   # what `zoo train --help` sends the user here for
    facts = json.loads(zoo_cli("info", "tiny-lm", "--json").stdout)
    assert facts["train_defaults"]["steps"] > 0 and "n_embd" in facts["config_defaults"]


@pytest.mark.parametrize("output, message", [
    ("x.wav", "-o x.wav: MIDI output needs a .mid or .midi name (for audio add --render OUT.wav)"),
    ("x", "-o x: MIDI output needs a .mid or .midi name"),
    ("nosuchdir/x.mid", "nosuchdir/x.mid: the folder nosuchdir does not exist; create it first (mkdir -p nosuchdir)"),
])
def test_output_must_be_a_midi_name_in_an_existing_folder(tiny, zoo_cli, saved, tmp_path, output, message):
    """(-o x.wav wrote MIDI data into x.wav; -o nosuchdir/x.mid made the folder.) Refused before generating,
    nothing written, no folder made: a typo in a folder name must not scatter files."""
    line = _one_line_error(zoo_cli("generate", saved, "-o", output, cwd=tmp_path))
    assert message in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    done = zoo_cli("generate", saved, "-o", "x.MIDI", "--seed", 1, cwd=tmp_path)   # any case of .mid/.midi
    assert done.returncode == 0 and (tmp_path / "x.MIDI").is_file(), done.stderr


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    return tiny_model.save_pretrained(tmp_path / "m")



# ---- item 12: one OSError mapping; numbers checked before a model is loaded ---------------------------

@pytest.mark.parametrize("args", [
    ["generate", "no-such-model", "-o", "x.mid", "--num", "1000000"],
    ["generate", "no-such-model", "-o", "x.mid", "--seed", str(2 ** 63)],
    ["generate", "no-such-model", "-o", "x.mid", "--seed", "-1"],
    ["eval", "no-such-model", "--num", "1000000000"],
    ["eval", "no-such-model", "--batch-size", "0"],
])
def test_numbers_out_of_range_are_refused_before_loading(args, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, err = cli_in_process(capsys, *args)
    one_error_line(code, err)
    assert "must be" in err and "no-such-model" not in err, err


@pytest.mark.parametrize("command", ["generate", "eval"])
@pytest.mark.parametrize("option", [["--length", "1000000000"], ["--length", "0"], ["--temperature", "1e-40"],
                                    ["--temperature", "1e300"], ["--start-pitch", "128"]])
def test_model_options_out_of_range_are_refused_before_the_weights_load(folder, capsys, tmp_path, monkeypatch,
                                                                       command, option):
    """A model's own options are checked against the ranges its plugin declares once NAME names an
    architecture (config.json), before any weight is read."""
    import zoo.loader

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(zoo.loader, "load_model", lambda *a, **k: pytest.fail("loaded the model"))
    args = [command, folder, "-o", "x.mid", *option] if command == "generate" else [command, folder, *option]
    code, err = cli_in_process(capsys, *args)
    one_error_line(code, err)
    assert f"{option[0]} must be" in err, err   # the flag the user typed, not generate()'s keyword


@pytest.mark.parametrize("device", ["xpu", "hip", "vulkan", "lazy", "hpu", "meta", "cpu:5", "cuda:x"])
def test_unsupported_devices_are_a_config_error(device):
    from zoo.device import resolve_device

    with pytest.raises(ConfigError, match="device"):
        resolve_device(device)


def test_os_errors_on_paths_are_one_line(tiny, folder, tmp_path, capsys):
    long = "x" * 300
    (tmp_path / "file").write_text("")
    for args in (["generate", folder, "-o", tmp_path / f"{long}.mid"],
                 ["generate", folder, "-o", tmp_path / "ok.mid", "--plot", tmp_path / "file" / "x.png"],
                 ["eval", folder, "--json", tmp_path / "file" / "x.json"],
                 ["generate", long, "-o", tmp_path / "x.mid"],
                 ["plot", tmp_path / f"{long}.mid", "-o", tmp_path / "x.png"]):
        code, err = cli_in_process(capsys, *args)
        one_error_line(code, err)
    assert not (tmp_path / "ok.mid").exists()   # the --plot path failed before generating
