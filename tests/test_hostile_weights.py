"""Hostile and broken weights folders (issue 8): every case a clear error naming the file or tensor.

Truncated safetensors, a flipped byte, wrong shape, missing/extra tensor, a newer arch_version and
a pickle sentinel are in tests/test_core_checkpoint.py; this file adds the rest (see
docs/reliability.md for the table).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

import zoo
from zoo.checkpoint import write_manifest
from zoo.errors import CheckpointError, ConfigError, UnknownNameError, ZooError
from zoo.testing import cli_in_process, one_error_line

from tests.hostile.sentinel import Sentinel


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    return tiny_model.save_pretrained(tmp_path / "m")


def _load(folder):
    return zoo.load(str(folder), device="cpu")


def _edit_config(folder: Path, fn) -> None:
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(fn(data)))
    write_manifest(folder)  # a consistent but wrong folder: the manifest agrees with the bad file


def _write(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)
    write_manifest(folder)


def _edit_tensors(folder: Path, fn) -> None:
    tensors = load_file(folder / "model.safetensors")
    fn(tensors)
    save_file(tensors, folder / "model.safetensors")
    write_manifest(folder)


# ---- tensors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_wrong_dtype_names_the_tensor(folder, dtype):
    _edit_tensors(folder, lambda t: t.__setitem__("head.weight", t["head.weight"].to(dtype)))
    with pytest.raises(CheckpointError, match=rf"model.safetensors does not fit.*wrong dtype: head.weight {dtype}"):
        _load(folder)


def test_lower_float_precision_is_cast_not_refused(folder, tiny_model):
    """fp16/bf16 weights load into an fp32 model (a plain cast, as --dtype does): by design, not an error."""
    _edit_tensors(folder, lambda t: t.__setitem__("head.weight", t["head.weight"].to(torch.bfloat16)))
    model = _load(folder)
    assert model.head.weight.dtype == torch.float32
    assert torch.allclose(model.head.weight, tiny_model.head.weight, atol=1e-2)


@pytest.mark.parametrize("name, data, message", [
    ("header-8eb", struct.pack("<Q", 2**63) + b"{}", "header too large"),
    ("header-not-json", struct.pack("<Q", 10) + b"{not json}", "invalid JSON"),
    ("offsets-past-end", None, "offset"),
    ("a-pickle-named-safetensors", "pickle", "header too large"),
])
def test_hostile_safetensors_headers_are_clear_errors(folder, tmp_path, name, data, message):
    sentinel = tmp_path / "pwned"
    if data is None:
        header = json.dumps({"head.bias": {"dtype": "F32", "shape": [129], "data_offsets": [0, 10**12]}}).encode()
        data = struct.pack("<Q", len(header)) + header
    elif data == "pickle":
        data = pickle.dumps(Sentinel(str(sentinel)))
    _write(folder, "model.safetensors", data)
    with pytest.raises(CheckpointError, match=rf"model.safetensors: not a readable safetensors file.*{message}"):
        _load(folder)
    assert not sentinel.exists()


def test_checkpoint_of_another_architecture_lists_a_bounded_line(tiny, tmp_path):
    """Tensors of a much bigger model: the error is one readable line, not hundreds of names."""
    folder = zoo.create("tiny-lm").save_pretrained(tmp_path / "m")
    big = {f"blocks.{i}.attn.weight": torch.zeros(2) for i in range(300)}
    save_file(big, folder / "model.safetensors")
    write_manifest(folder)
    with pytest.raises(CheckpointError) as info:
        _load(folder)
    msg = str(info.value)
    assert "missing: embed.weight, head.bias, head.weight" in msg and "and 292 more" in msg
    assert len(msg) < 800 and "\n" not in msg


# ---- config.json -----------------------------------------------------------------------------------

def test_config_for_an_arch_that_is_not_installed(folder):
    _edit_config(folder, lambda c: {**c, "arch": "musegan"})  # only zoo-tiny is installed here
    with pytest.raises(UnknownNameError, match=r"config.json: unknown architecture 'musegan'.*install the plugin"):
        _load(folder)


@pytest.mark.parametrize("edit, error, message", [
    (lambda c: {**c, "config": {**c["config"], "width": 3}}, ConfigError,
     r"config.json: unknown tiny-lm config key\(s\) width; valid keys: n_embd, context"),
    (lambda c: {**c, "config": {**c["config"], "n_embd": "wide"}}, ConfigError, r"config.json: .*'n_embd' must be an integer"),
    (lambda c: {**c, "config": {**c["config"], "n_embd": 16.5}}, ConfigError, r"'n_embd' must be an integer, got 16.5"),
    (lambda c: {**c, "config": {**c["config"], "n_embd": True}}, ConfigError, r"'n_embd' must be an integer, got True"),
    (lambda c: {**c, "config": {**c["config"], "n_embd": -4}}, ConfigError, r"config.json: .*at least 1"),
    (lambda c: {**c, "config": None}, CheckpointError, r"config.json: 'config' must be an object, got None"),
    (lambda c: {**c, "config": [1]}, CheckpointError, r"'config' must be an object"),
    (lambda c: {**c, "arch": 5}, CheckpointError, r"config.json: 'arch' must be a string, got 5"),
    (lambda c: {**c, "arch": ["tiny-lm"]}, CheckpointError, r"'arch' must be a string"),
    (lambda c: {**c, "arch_version": "1"}, CheckpointError, r"'arch_version' must be an integer, got '1'"),
    (lambda c: {**c, "arch_version": True}, CheckpointError, r"'arch_version' must be an integer, got True"),
    (lambda c: {**c, "arch_version": 0}, CheckpointError, r"arch_version 0 is not supported"),
    (lambda c: {**c, "zoo_version": 1}, CheckpointError, r"'zoo_version' must be a string"),
    (lambda c: {**c, "colour": "red"}, CheckpointError, r"config.json: unknown field\(s\) 'colour'.*newer musezoo"),
    (lambda c: {k: v for k, v in c.items() if k != "arch"}, CheckpointError, r"config.json: no 'arch' field"),
])
def test_config_json_with_unknown_or_ill_typed_fields(folder, edit, error, message):
    _edit_config(folder, edit)
    with pytest.raises(error, match=message):
        _load(folder)


@pytest.mark.parametrize("data, message", [
    (b"null", "must be a JSON object"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"arch": "\xff"}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),   # RecursionError inside json
    (b'{"arch": 1' + b"0" * 5000 + b"}", "not valid JSON"),  # int digits limit
    (b"", "not valid JSON"),
])
def test_config_json_that_is_not_a_config(folder, data, message):
    _write(folder, "config.json", data)
    with pytest.raises(CheckpointError, match=rf"config.json: {message}"):
        _load(folder)


# ---- tokenizer.json and manifest.json ---------------------------------------------------------------

@pytest.mark.parametrize("data, error, message", [
    (b'{"tokenizer": 5}', CheckpointError, "not a valid tokenizer.json"),
    (b"null", CheckpointError, "not a valid tokenizer.json"),
    (b'{"tokenizer": "tiny-melody", "params": "x"}', ConfigError, "bad tiny-melody tokenizer parameters"),
    (b'{"tokenizer": "tiny-melody", "params": {"bogus": 1}}', ConfigError, "unexpected keyword argument 'bogus'"),
    (b'{"tokenizer": "performance"}', UnknownNameError, "unknown tokenizer 'performance'"),
])
def test_bad_tokenizer_json_names_the_file(folder, data, error, message):
    _write(folder, "tokenizer.json", data)
    with pytest.raises(error, match=rf"tokenizer.json: .*{message}"):
        _load(folder)


@pytest.mark.parametrize("data, message", [
    (b'{"sha256": []}', "'sha256' must map file names to hex digests"),
    (b'{"sha256": "abc"}', "'sha256' must map file names to hex digests"),
    (b'{"sha256": {"config.json": 5}}', "'sha256' must map file names to hex digests"),
    (b"null", "unreadable manifest"),
    (b'{"sha256": {}}', "does not list README.md, config.json, model.safetensors, tokenizer.json"),  # would check nothing
])
def test_bad_manifest_is_refused(folder, data, message):
    (folder / "manifest.json").write_bytes(data)
    with pytest.raises(CheckpointError, match=rf"manifest.json: {message}"):
        _load(folder)


def test_a_file_added_after_saving_is_not_loaded_unchecked(folder, tmp_path):
    """An extra safetensors file dropped into a folder (e.g. a critic) must be in the manifest to be read."""
    save_file({"x": torch.zeros(1)}, folder / "critic.safetensors")
    with pytest.raises(CheckpointError, match="manifest.json: does not list critic.safetensors"):
        _load(folder)


@pytest.mark.parametrize("suffix", [".bin", ".pt", ".pth", ".ckpt", ".pkl", ".PT"])
def test_every_pickle_suffix_is_refused_without_unpickling(folder, tmp_path, suffix):
    sentinel = tmp_path / "pwned"
    (folder / f"weights{suffix}").write_bytes(pickle.dumps(Sentinel(str(sentinel))))
    with pytest.raises(CheckpointError, match=f"weights{suffix}: pickle weights are refused"):
        _load(folder)
    assert not sentinel.exists()


def test_every_weights_error_is_one_line_through_the_cli(tiny, zoo_cli, folder, tmp_path):
    """The CLI shows any of these as one line and exit 2 (one subprocess: the shape is the same for all)."""
    _edit_config(folder, lambda c: {**c, "config": None})
    done = zoo_cli("generate", folder, "-o", tmp_path / "x.mid")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "config.json: 'config' must be an object" in done.stderr and not (tmp_path / "x.mid").exists()
    assert issubclass(CheckpointError, ZooError)


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


def test_nan_weights_are_refused_at_load(folder):
    from safetensors.torch import load_file, save_file

    tensors = load_file(folder / "model.safetensors")
    tensors["head.bias"][3] = float("nan")
    save_file(tensors, folder / "model.safetensors")
    write_manifest(folder)
    with pytest.raises(CheckpointError, match="head.bias holds NaN or infinite values"):
        zoo.load(str(folder), device="cpu")


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
    code, err = cli_in_process(capsys, "train", "tiny-lm", "--out", tmp_path / "run", "--config", "/dev/zero")
    one_error_line(code, err)
    assert "not a regular file" in err
    code, err = cli_in_process(capsys, "push", folder, "me/x", "--metrics", fifo)
    one_error_line(code, err)


# ---- item 15: control characters in messages -----------------------------------------------------

def test_control_characters_in_names_stay_on_one_line(folder, capsys):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["evil\n\x1b[31mname"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, err = cli_in_process(capsys, "generate", folder, "-o", folder.parent / "x.mid")
    one_error_line(code, err)
    assert "\x1b" not in err and "\\x1b" in err


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
