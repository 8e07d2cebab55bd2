"""Hostile input, second round (issue 19): crafted data files, configs that allocate, special files as
inputs and outputs, resume tampering, numbers out of range. See docs/reliability.md for the tables."""

from __future__ import annotations

import errno
import json
import os
import stat
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from zoo.checkpoint import verify, write_manifest
from zoo.cli import main
from zoo.errors import CheckpointError, ConfigError, DataError, ZooError


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    return tiny_model.save_pretrained(tmp_path / "m")


def _cli(capsys, *args) -> tuple[int, str]:
    """zoo.cli.main in this process: (exit code, stderr)."""
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def _one_line_error(code, err):
    assert code == 2, err
    assert err.startswith("zoo: error: ") and err.count("\n") == 1 and "Traceback" not in err, err


# ---- item 1, 3: crafted and oversized .npz for MuseGAN ----------------------------------------------

def _npz(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(f"{name}.npy", data)
    return path


def _npy_header(shape, descr) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def test_npz_forging_an_object_pointer_is_refused_without_a_crash(tmp_path):
    """The issue's bytes: ndarray((1,), dtype=object, buffer=b"AAAAAAAA") made numpy read 8 bytes as a pointer
    (SIGSEGV). The decoder never calls ndarray and never unpickles."""
    from zoo_chorales.data import load_jsb_npz

    evil = _npy_header((1,), "|O") + (b"\x80\x02cnumpy\nndarray\n(K\x01\x85cnumpy\ndtype\n(X\x01\x00\x00\x00OK\x00K\x01tR"
                                      b"C\x08AAAAAAAAtR.")
    path = _npz(tmp_path / "evil.npz", {s: evil for s in ("train", "valid", "test")})
    with pytest.raises(DataError, match=r"evil.npz: cannot read it as .npz .*unexpected call.*ndarray"):
        load_jsb_npz(path)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_npz_object_arrays_decode_by_hand_in_every_protocol(tmp_path, protocol):
    import pickle

    from zoo_chorales.data import decode_numpy_pickle

    good = np.empty(2, dtype=object)
    good[0], good[1] = np.arange(12.0).reshape(3, 4), np.full((2, 4), np.nan)
    out = decode_numpy_pickle(pickle.dumps(good, protocol=protocol))
    assert np.array_equal(out[0], good[0]) and np.isnan(out[1]).all()
    assert decode_numpy_pickle(pickle.dumps(np.arange(6, dtype=">i4").reshape(2, 3), protocol=protocol)).tolist() \
        == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("shape, descr, message", [
    ((2 ** 27,), "<f8", r"shape \(134217728,\); expected \(pieces, steps, voices\)"),   # the 1 MB bomb
    ((1, 2 ** 25, 4), "<f8", "at most"),
    ((10 ** 6,), "|O", "at most 100,000 pieces"),
])
def test_npz_data_bomb_is_refused_from_its_declared_shape(tmp_path, shape, descr, message):
    from zoo_chorales.data import load_jsb_npz

    path = _npz(tmp_path / "bomb.npz", {s: _npy_header(shape, descr) for s in ("train", "valid", "test")})
    t0 = time.monotonic()
    with pytest.raises(DataError, match=message):
        load_jsb_npz(path)
    assert time.monotonic() - t0 < 2


def test_npz_member_unpacking_past_the_cap_is_refused(tmp_path, monkeypatch):
    import zoo_chorales.data as mdata

    monkeypatch.setattr(mdata, "MAX_NPZ_MEMBER_BYTES", 1000)
    path = tmp_path / "big.npz"
    np.savez(path, train=np.zeros((4, 64, 4)), valid=np.zeros((1, 64, 4)), test=np.zeros((1, 64, 4)))
    with pytest.raises(DataError, match=r"train unpacks to 8,320 bytes \(limit 1,000\)"):
        mdata.load_jsb_npz(path)


# ---- item 2: config.json against the safetensors header, before building ---------------------------

@pytest.mark.parametrize("edit, error, message", [
    ({"n_embd": 10 ** 7}, ConfigError, r"config.json builds a model of more than .* so the config does not match"),
    ({"context": 10 ** 9}, ConfigError, "does not match the weights"),
    ({"n_embd": 17}, CheckpointError, r"model.safetensors does not fit the model \(wrong shape: embed.weight"),
])
def test_config_is_checked_against_the_weights_before_anything_is_allocated(folder, edit, error, message):
    data = json.loads((folder / "config.json").read_text())
    data["config"].update(edit)
    (folder / "config.json").write_text(json.dumps(data))
    write_manifest(folder)
    t0 = time.monotonic()
    with pytest.raises(error, match=message):
        zoo.load(str(folder), device="cpu")
    assert time.monotonic() - t0 < 5


def test_create_and_train_refuse_a_model_bigger_than_the_machine(tiny):
    with pytest.raises(ConfigError, match="more than this machine can train or hold"):
        zoo.create("tiny-lm", n_embd=10 ** 9)


def test_nan_weights_are_refused_at_load(folder):
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    tensors["head.bias"][3] = float("nan")
    save_file(tensors, folder / "model.safetensors")
    write_manifest(folder)
    with pytest.raises(CheckpointError, match="head.bias holds NaN or infinite values"):
        zoo.load(str(folder), device="cpu")


# ---- item 4, 17: -o never replaces a special file; symlinks are written through ----------------------

def test_output_to_a_device_or_fifo_is_refused_and_links_are_written_through(tiny_model, tmp_path, capsys):
    from zoo.midi import write_midi

    (midi,) = tiny_model.generate(length=4)
    fifo = tmp_path / "fifo.mid"
    os.mkfifo(fifo)
    for target in ("/dev/null", fifo):
        with pytest.raises(ZooError, match="not a regular file"):
            write_midi(midi, target)
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and stat.S_ISFIFO(os.stat(fifo).st_mode)
    code, err = _cli(capsys, "plot", tmp_path / "x.mid", "-o", "/dev/null")
    _one_line_error(code, err)

    real = tmp_path / "real.mid"
    real.write_bytes(b"old")
    link = tmp_path / "link.mid"
    link.symlink_to(real)
    old_umask = os.umask(0o022)
    try:
        write_midi(midi, link)
    finally:
        os.umask(old_umask)
    assert link.is_symlink() and real.read_bytes()[:4] == b"MThd"
    assert stat.S_IMODE(real.stat().st_mode) == 0o644   # item 17: the umask, not mkstemp's 0600


# ---- item 5: push publishes the folder's own regular files only -------------------------------------

def test_push_refuses_a_card_linked_outside_the_folder(folder, tmp_path, monkeypatch):
    from zoo import hub

    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(secret)
    write_manifest(folder)   # a manifest written on the victim's machine agrees with the link
    uploaded = []
    monkeypatch.setattr(hub, "_upload", lambda staged, *a: uploaded.append(staged))
    with pytest.raises(ZooError, match=r"README.md: a symlink to .*secret.txt, outside the model folder"):
        hub.push_to_hub(str(folder), "me/model")
    assert not uploaded


# ---- item 6: one bounded, regular-file-only reader for every JSON file ----------------------------

def test_json_inputs_that_are_devices_fifos_or_huge_are_refused(folder, tmp_path, capsys):
    from zoo.safeio import MAX_JSON_BYTES, read_json

    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_JSON_BYTES + 1)
    for path, message in (("/dev/zero", "not a regular file"), (fifo, "not a regular file"), (big, "too large")):
        t0 = time.monotonic()
        with pytest.raises(ZooError, match=message):
            read_json(path)
        assert time.monotonic() - t0 < 2
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="tokenizer.json: not a regular file"):
        zoo.load(str(folder), device="cpu")
    code, err = _cli(capsys, "train", "tiny-lm", "--out", tmp_path / "run", "--config", "/dev/zero")
    _one_line_error(code, err)
    assert "not a regular file" in err
    code, err = _cli(capsys, "push", folder, "me/x", "--metrics", fifo)
    _one_line_error(code, err)


# ---- items 7, 8, 10, 12: training runs -------------------------------------------------------------

def _train(tmp_path, **values):
    from zoo.trainer import train

    return train("tiny-lm", out=tmp_path / "run", values={"steps": 4, "ckpt_every": 1, "keep_checkpoints": 2,
                                                         **values}, device="cpu", resume="resume" in values and
                 values.pop("resume"))


def test_trainer_state_must_be_in_the_manifest(tiny, tmp_path, one_torch_thread):
    from zoo.trainer import train

    train("tiny-lm", out=tmp_path / "run", values={"steps": 2, "ckpt_every": 1}, device="cpu")
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002"
    manifest = json.loads((ckpt / "manifest.json").read_text())
    assert "trainer_state.json" in manifest["sha256"]
    del manifest["sha256"]["trainer_state.json"]
    (ckpt / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="does not list trainer_state.json"):
        verify(ckpt)


def test_pruning_after_a_fallback_keeps_the_fresh_checkpoints(tiny, tmp_path, one_torch_thread, capsys):
    """Damaged step-4 and step-6 (newer than the resumed step) must not push out the new step-2 and step-3."""
    from zoo.trainer import train

    run = tmp_path / "run"
    train("tiny-lm", out=run, values={"steps": 1, "ckpt_every": 1, "keep_checkpoints": 2}, device="cpu")
    for step in (4, 6):
        damaged = run / "checkpoints" / f"step-{step:06d}"
        damaged.mkdir()
        (damaged / "config.json").write_text("{}")
    train("tiny-lm", out=run, values={"steps": 3, "ckpt_every": 1, "keep_checkpoints": 2}, device="cpu", resume=True)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "step-000002" in names and "step-000003" in names, names
    verify(run / "checkpoints" / "step-000003")


def test_a_run_without_a_test_split_finishes_and_says_so(tiny, tmp_path, one_torch_thread, monkeypatch, capsys):
    from zoo_tiny.model import TinyTrainer

    from zoo.trainer import train

    real = TinyTrainer.build_dataset

    def no_test(self, source, split):
        if split == "test":
            raise DataError("no test windows")
        return real(self, source, split)

    monkeypatch.setattr(TinyTrainer, "build_dataset", no_test)
    final = train("tiny-lm", out=tmp_path / "run", values={"steps": 2}, device="cpu")
    assert (final / "config.json").is_file()
    assert "warning: no test metrics: no test windows" in capsys.readouterr().err


def test_resume_with_a_changed_model_size_is_one_clear_error(tiny, tmp_path, one_torch_thread):
    from zoo.trainer import train

    train("tiny-lm", out=tmp_path / "run", values={"steps": 1, "ckpt_every": 1}, device="cpu")
    with pytest.raises(CheckpointError, match="does not fit this run's model or optimizer"):
        train("tiny-lm", out=tmp_path / "run", values={"steps": 2, "n_embd": 8}, device="cpu", resume=True)
    (tmp_path / "run" / "run.json").write_text("[1]")
    with pytest.raises(ConfigError, match="run.json: malformed"):
        train("tiny-lm", out=tmp_path / "run", values={"steps": 2}, device="cpu", resume=True)


# ---- item 9: atomic writes ------------------------------------------------------------------------

def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, tiny_model):
    from zoo import render
    from zoo.safeio import write_text_atomic
    from zoo.trainer import _truncate_metrics

    picture = tmp_path / "roll.png"
    render.plot_pianoroll(tiny_model.generate(length=4)[0], picture)
    before = picture.read_bytes()

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    import matplotlib.figure

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full_disk)
    with pytest.raises(OSError):
        render.plot_pianoroll(tiny_model.generate(length=4)[0], picture)
    assert picture.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["roll.png"]

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1}\n{"step": 2}\n')
    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError):
        _truncate_metrics(metrics, 1)
    with pytest.raises(OSError):
        write_text_atomic(metrics, "x")
    assert metrics.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_replacing_a_folder_is_one_atomic_swap(tmp_path):
    from zoo.outputs import atomic_folder

    atomic_folder(tmp_path / "final", lambda t: (t / "a").write_text("1"))
    atomic_folder(tmp_path / "final", lambda t: (t / "a").write_text("2"))
    assert [p.name for p in tmp_path.iterdir()] == ["final"] and (tmp_path / "final" / "a").read_text() == "2"


# ---- item 11: zoo plot bounded in beats -----------------------------------------------------------

def test_plot_of_ten_million_beats_is_refused_quickly(tmp_path, capsys):
    import pretty_midi

    midi = pretty_midi.PrettyMIDI(resolution=1, initial_tempo=6e7)   # 1 microsecond per quarter, 1 tick each
    inst = pretty_midi.Instrument(0)
    inst.notes.append(pretty_midi.Note(80, 60, 0.0, 9.0))   # 9 seconds: 9 * 10^6 beats
    midi.instruments.append(inst)
    midi.write(str(tmp_path / "fast.mid"))
    t0 = time.monotonic()
    code, err = _cli(capsys, "plot", tmp_path / "fast.mid", "-o", tmp_path / "fast.png")
    _one_line_error(code, err)
    assert "beats" in err and "--time seconds" in err and time.monotonic() - t0 < 10
    code, err = _cli(capsys, "plot", tmp_path / "fast.mid", "-o", tmp_path / "fast.xyz")
    _one_line_error(code, err)


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
    code, err = _cli(capsys, *args)
    _one_line_error(code, err)
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
    code, err = _cli(capsys, *args)
    _one_line_error(code, err)
    assert f"{option[0]} must be" in err, err   # the flag the user typed, not generate()'s keyword


@pytest.mark.parametrize("device", ["xpu", "hip", "vulkan", "lazy", "hpu", "meta", "cpu:5", "cuda:x"])
def test_unsupported_devices_are_a_config_error(device):
    from zoo.device import resolve_device

    with pytest.raises(ConfigError, match="device"):
        resolve_device(device)


@pytest.mark.parametrize("values", [{"seed": -1}, {"seed": 2 ** 32}, {"steps": 10 ** 12}])
def test_training_numbers_out_of_range(tiny, tmp_path, values):
    from zoo.trainer import train

    with pytest.raises(ConfigError, match="must be a whole number"):
        train("tiny-lm", out=tmp_path / "run", values=values, device="cpu")


def test_os_errors_on_paths_are_one_line(tiny, folder, tmp_path, capsys):
    long = "x" * 300
    (tmp_path / "file").write_text("")
    for args in (["generate", folder, "-o", tmp_path / f"{long}.mid"],
                 ["generate", folder, "-o", tmp_path / "ok.mid", "--plot", tmp_path / "file" / "x.png"],
                 ["eval", folder, "--json", tmp_path / "file" / "x.json"],
                 ["generate", long, "-o", tmp_path / "x.mid"],
                 ["plot", tmp_path / f"{long}.mid", "-o", tmp_path / "x.png"]):
        code, err = _cli(capsys, *args)
        _one_line_error(code, err)
    assert not (tmp_path / "ok.mid").exists()   # the --plot path failed before generating


@pytest.mark.parametrize("params", [{"velocity": 200}, {"program": -1}, {"steps_per_bar": 0}, {"tempo": 1e-300},
                                    {"voice_names": [1, 2, 3, 4]}, {"threshold": "x"}, {"n_tracks": 10 ** 6}])
def test_bad_pianoroll_tokenizer_values(params):
    from zoo_musegan.tokenizer import PianoRollTokenizer

    with pytest.raises(ConfigError, match="pianoroll"):
        PianoRollTokenizer.from_dict(params)


def test_bad_data_workers_variable_is_one_error(monkeypatch):
    from zoo_music_transformer.data import _default_workers

    monkeypatch.setenv("ZOO_DATA_WORKERS", "abc")
    with pytest.raises(DataError, match="ZOO_DATA_WORKERS must be a whole number"):
        _default_workers()


# ---- item 15: control characters in messages -----------------------------------------------------

def test_control_characters_in_names_stay_on_one_line(folder, capsys):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["evil\n\x1b[31mname"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, err = _cli(capsys, "generate", folder, "-o", folder.parent / "x.mid")
    _one_line_error(code, err)
    assert "\x1b" not in err and "\\x1b" in err


# ---- item 19: the Python API -----------------------------------------------------------------------

@pytest.mark.parametrize("num", [0, -1, 2.5, True, 10 ** 6])
def test_generate_num_is_checked_for_every_plugin(tiny_model, num):
    with pytest.raises(ConfigError, match="num must be a whole number"):
        tiny_model.generate(num=num)


def test_api_names_are_checked(tiny):
    for bad in ("", None, 5):
        with pytest.raises(ConfigError, match="must be a pretrained name"):
            zoo.load(bad)
    with pytest.raises(ConfigError):
        zoo.info(None)


# ---- fuzzing: config.json and tokenizer.json --------------------------------------------------------

_json = st.recursive(st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                     max_leaves=6)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(config=st.dictionaries(st.sampled_from(["n_embd", "context", "other"]), _json, max_size=3),
       top=st.dictionaries(st.sampled_from(["arch", "arch_version", "zoo_version", "x"]), _json, max_size=2))
def test_fuzzed_config_json_loads_or_is_one_zoo_error(folder, config, top):
    data = json.loads((folder / "config.json").read_text())
    data["config"] = {**data["config"], **config}
    data.update(top)
    (folder / "config.json").write_text(json.dumps(data))
    write_manifest(folder)
    try:
        zoo.load(str(folder), device="cpu")
    except ZooError:
        pass


_params = st.dictionaries(st.sampled_from(["n_tracks", "n_bars", "steps_per_bar", "n_pitches", "tempo", "threshold",
                                           "velocity", "program", "voice_names", "bogus"]),
                          _json | st.integers(-300, 300) | st.floats(-1e3, 1e3), max_size=4)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(params=_params)
def test_fuzzed_tokenizer_json_builds_a_working_tokenizer_or_is_one_zoo_error(params):
    from zoo_musegan.tokenizer import PianoRollTokenizer

    try:
        tok = PianoRollTokenizer.from_dict(params)
    except ZooError:
        return
    roll = torch.zeros(tok.n_tracks, tok.n_bars, tok.steps_per_bar, tok.n_pitches)
    roll[:, :, :4, tok.n_pitches // 2] = 1
    tok.decode(roll)   # a tokenizer that builds must decode
