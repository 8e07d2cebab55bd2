"""zoo.outputs: the one policy for every folder the zoo writes (save_pretrained, `zoo convert --out`, `zoo release
--out`, `zoo train --out`). A new folder is created; an existing one is replaced only if it is empty or a model
folder musezoo wrote; `--overwrite` widens that to folders of model files only; links, files, devices and FIFOs
are refused from lstat, before any work. docs/reliability.md,
"Fourth round (issue 26), part A"."""

from __future__ import annotations

import errno
import json
import os
import stat

import pytest
import torch

from zoo.errors import ConfigError, ZooError
from zoo.testing import cli_in_process, one_error_line
from zoo.testing import cli_in_process as _cli  # noqa: E402
from zoo.testing import one_error_line as _one_line


def _hidden(folder) -> list[str]:
    """Temp folders an atomic write would leave beside its target."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_save_pretrained_replaces_only_a_model_folder_it_wrote(tiny_model, tmp_path):
    dest = tmp_path / "m"
    tiny_model.save_pretrained(dest)
    tiny_model.save_pretrained(dest)                                # its own folder, unchanged: replaced
    (tmp_path / "empty").mkdir()
    tiny_model.save_pretrained(tmp_path / "empty")                  # an empty folder: nothing to lose

    (dest / "notes.txt").write_text("mine")
    for overwrite in (False, True):                                 # a file musezoo did not write: never deleted
        with pytest.raises(ConfigError, match="'notes.txt'.*musezoo did not write"):
            tiny_model.save_pretrained(dest, overwrite=overwrite)
        assert (dest / "notes.txt").read_text() == "mine"
    (dest / "notes.txt").unlink()
    (dest / "sub").mkdir()                                          # nor a folder inside
    with pytest.raises(ConfigError, match="'sub'"):
        tiny_model.save_pretrained(dest, overwrite=True)
    (dest / "sub").rmdir()

    (dest / "README.md").write_text("# my own card\n")             # a model file changed since it was saved
    with pytest.raises(ConfigError, match="README.md was changed since musezoo wrote it.*overwrite=True"):
        tiny_model.save_pretrained(dest)
    assert (dest / "README.md").read_text() == "# my own card\n"
    tiny_model.save_pretrained(dest, overwrite=True)                # asked for: model files only, so replaced
    assert "my own card" not in (dest / "README.md").read_text()

    other = tmp_path / "other"                                      # model-named files without a manifest
    other.mkdir()
    (other / "config.json").write_text("{}")
    (other / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ConfigError, match="not in its manifest.json.*overwrite=True"):
        tiny_model.save_pretrained(other)
    tiny_model.save_pretrained(other, overwrite=True)
    assert json.loads((other / "config.json").read_text())["arch"] == "tiny-lm"

    ckpt = tmp_path / "ckpt"                                        # a folder musezoo wrote that is not a model
    ckpt.mkdir()
    (ckpt / "trainer_state.json").write_text("{}")
    from zoo.checkpoint import write_manifest

    write_manifest(ckpt)
    with pytest.raises(ConfigError, match="not a model folder"):
        tiny_model.save_pretrained(ckpt)
    assert _hidden(tmp_path) == []


def test_files_links_devices_and_fifos_are_refused_from_lstat(tiny_model, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        tiny_model.save_pretrained(notes)
    assert notes.read_text() == "keep me"

    model = tiny_model.save_pretrained(tmp_path / "m")
    link = tmp_path / "link"
    link.symlink_to(model)
    with pytest.raises(ConfigError, match="is a symbolic link"):
        tiny_model.save_pretrained(link)
    assert link.is_symlink()

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is a FIFO"):            # never opened: no hang
        tiny_model.save_pretrained(fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)

    with pytest.raises(ConfigError, match=f"{notes} is a file, not a folder"):
        tiny_model.save_pretrained(notes / "m")
    with pytest.raises(ConfigError, match="needs a folder to write \(a path\)"):
        tiny_model.save_pretrained(None)
    try:   # a device node of our own (as root): what `--out /dev/null` did to the real one
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (PermissionError, OSError):
        pass
    else:
        with pytest.raises(ConfigError, match="is a device"):
            tiny_model.save_pretrained(tmp_path / "null")
        assert stat.S_ISCHR(os.lstat(tmp_path / "null").st_mode)
    assert _hidden(tmp_path) == []


def test_a_folder_holding_or_inside_the_source_is_refused(tmp_path):
    from zoo.outputs import check_folder_target

    run = tmp_path / "run"
    (run / "checkpoints" / "step-000001").mkdir(parents=True)
    for dest, says in ((run, "is the run being read"), (tmp_path, "is a folder holding the run being read"),
                       (run / "checkpoints" / "step-000001", "lies inside the run being read")):
        for overwrite in (False, True):
            with pytest.raises(ZooError, match=says):
                check_folder_target(dest, sources=((run, "run"),), overwrite=overwrite, hint="--overwrite")
    check_folder_target(run / "release", sources=((run, "run"),))   # a new folder inside it is fine


def test_convert_out_never_deletes_what_it_did_not_write(tiny, tiny_model, tmp_path, capsys):
    src = tmp_path / "old.pt"
    torch.save(tiny_model.state_dict(), src)
    mine = tmp_path / "mydir"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    for extra in ((), ("--overwrite",)):
        line = _one_line(*_cli(capsys, "convert", src, "--arch", "tiny-lm", "--out", mine, *extra))
        assert "'notes.txt'" in line and (mine / "notes.txt").read_text() == "mine"
    assert "--overwrite" in line

    notes = tmp_path / "notes.txt"
    notes.write_text("text")
    line = _one_line(*_cli(capsys, "convert", src, "--arch", "tiny-lm", "--out", notes))
    assert "is a file, not a folder" in line and notes.read_text() == "text"

    held = mine / "old.pt"                                          # the folder holding the file being converted
    torch.save(tiny_model.state_dict(), held)
    line = _one_line(*_cli(capsys, "convert", held, "--arch", "tiny-lm", "--out", mine, "--overwrite"))
    assert "holding the state dict file being read" in line and held.is_file()

    out = tmp_path / "new"
    for _ in range(2):                                              # a second run replaces its own output
        code, err = _cli(capsys, "convert", src, "--arch", "tiny-lm", "--out", out)
        assert code == 0, err
    assert _hidden(tmp_path) == [] and _hidden(mine) == []



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
    code, err = cli_in_process(capsys, "plot", tmp_path / "x.mid", "-o", "/dev/null")
    one_error_line(code, err)

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


# ---- item 9: atomic writes ------------------------------------------------------------------------

def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, tiny_model):
    render = pytest.importorskip("zoo_render")
    from zoo.safeio import write_text_atomic
    from zoo.train import truncate_metrics

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
        truncate_metrics(metrics, 1)
    with pytest.raises(OSError):
        write_text_atomic(metrics, "x")
    assert metrics.read_text() == '{"step": 1}\n{"step": 2}\n'


def test_replacing_a_folder_is_one_atomic_swap(tmp_path):
    from zoo.outputs import atomic_folder

    atomic_folder(tmp_path / "final", lambda t: (t / "a").write_text("1"))
    atomic_folder(tmp_path / "final", lambda t: (t / "a").write_text("2"))
    assert [p.name for p in tmp_path.iterdir()] == ["final"] and (tmp_path / "final" / "a").read_text() == "2"
