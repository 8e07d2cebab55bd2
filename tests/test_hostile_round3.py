"""Hostile input, third round (issue 19, the items round 2 left open): a Hub that answers HTML, loops, streams
without end or a byte at a time; two processes on one run folder or one Hub repo; a release folder's extra
files through push and pull; a read-only data cache; odd `.pt` files and model cards; hashing once per load.
See docs/reliability.md ("Third round") for the table."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import ZOO
from tests.test_hostile_pull import stalling_pull_env
from tests.test_hub import TOKEN, _repo, hub_env, olah, saved, standin  # noqa: F401  (fixtures)
from zoo.testing import sigint_as_usual


from zoo.testing import cli_in_process as _cli, one_error_line as _one_line  # noqa: E402


# ---- a hostile "Hub" on loopback: the first path segment picks the behaviour ---------------------------

class _Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    stop = threading.Event()

    def log_message(self, *args):
        pass

    def do_GET(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        mode = self.path.split("/")[1]
        try:
            getattr(self, "_" + mode.replace("-", "_"))()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass   # the client hung up: what a bounded client does

    do_HEAD = do_POST = do_PUT = do_GET

    def _html(self):   # a web server's page where the Hub's JSON API should be
        body = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self):   # every answer sends the client back where it came from
        self.send_response(302)
        self.send_header("Location", self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _endless(self):   # JSON that never ends (no length: the body runs until the connection closes)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(b'{"id": "')
        chunk = b"x" * 65536
        while not self.stop.is_set():
            self.wfile.write(chunk)

    def _slow_body(self):   # headers at once, then one byte a second
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.flush()
        while not self.stop.is_set():
            self.wfile.write(b" ")
            self.wfile.flush()
            time.sleep(1)

    def _slow_headers(self):   # a status line, then a header that never ends, a byte a second
        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not self.stop.is_set():
            self.wfile.write(b"a")
            self.wfile.flush()
            time.sleep(1)


@pytest.fixture(scope="module")
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    _Hostile.stop.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def hub_at(tmp_path, monkeypatch):
    """Point this process at a given endpoint with a fresh cache; returns a setter and the cache folder."""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("ZOO_HUB_TIMEOUT", "2")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    def point(url):
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setattr(constants, "ENDPOINT", url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")

    return point, tmp_path / "hf-cache"


@pytest.mark.parametrize("mode, says", [
    ("html", "did not answer as a Hugging Face Hub does"),
    ("redirect", "did not answer as a Hugging Face Hub does"),
    ("endless", "sent more than 16,777,216 bytes"),
    ("slow-body", "did not finish answering within 2 s"),
    ("slow-headers", "did not finish answering within 2 s"),
])
def test_a_hostile_hub_is_one_line_in_bounded_time(hostile, hub_at, capsys, mode, says):
    point, cache = hub_at
    point(f"{hostile}/{mode}")
    t0 = time.monotonic()
    line = _one_line(*_cli(capsys, "pull", "zoo-tests/anything"))
    elapsed = time.monotonic() - t0
    assert says in line and "hf://zoo-tests/anything" in line, line
    assert elapsed < 15, f"{elapsed:.1f} s"   # ZOO_HUB_TIMEOUT=2, plus a busy machine's slack
    assert not list(cache.glob("models--*/snapshots/*"))


@pytest.mark.parametrize("mode, says", [("html", "pushing to zoo-tests/x failed"),
                                        ("slow-body", "did not finish answering within 2 s")])
def test_push_to_a_hostile_hub_is_one_line(hostile, hub_at, tiny_model, tmp_path, capsys, monkeypatch, mode, says):
    point, _ = hub_at
    point(f"{hostile}/{mode}")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = tiny_model.save_pretrained(tmp_path / "m")
    line = _one_line(*_cli(capsys, "push", folder, "zoo-tests/x"))
    assert says in line and TOKEN not in line, line


def test_a_file_body_stops_at_its_cap(hostile, hub_at):
    """While files download, each answer may be as large as the largest file the Hub declared, no larger."""
    from huggingface_hub import get_session

    from zoo import hubnet

    with hubnet.call() as current:
        current.expect([20 * 2 ** 20])
        with pytest.raises(hubnet.HubLimitError, match="more than 20,971,520 bytes"):
            with get_session().stream("GET", f"{hostile}/endless/file") as response:
                for _ in response.iter_bytes():
                    pass
    assert get_session().get(f"{hostile}/html").status_code == 200   # outside a zoo call: untouched


def test_endpoint_and_timeout_settings_are_checked(hub_at, capsys, monkeypatch):
    point, _ = hub_at
    point("localhost:8080")
    line = _one_line(*_cli(capsys, "pull", "zoo-tests/x"))
    assert "HF_ENDPOINT='localhost:8080' is not a web address" in line and "http://localhost:8080" in line
    point("http://127.0.0.1:9")
    for bad in ("abc", "0", "nan", "1e9"):
        monkeypatch.setenv("ZOO_HUB_TIMEOUT", bad)
        assert "ZOO_HUB_TIMEOUT must be a number of seconds" in _one_line(*_cli(capsys, "pull", "zoo-tests/x"))


# ---- concurrency -------------------------------------------------------------------------------------

def test_two_trainings_on_one_run_folder(tiny, tmp_path, one_torch_thread, capsys):
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from zoo.locks import hold
        with hold({str(run / '.lock')!r}, "x"):
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        line = _one_line(*_cli(capsys, "train", "tiny-lm", "--out", run, "--steps", 1, "--device", "cpu"))
        assert f"run folder {run} is in use by another process (pid {holder.pid})" in line
    finally:
        holder.kill()
        holder.wait()
    # the holder died: its lock went with it, although the lock file (with its pid) stays
    assert (run / ".lock").read_text().strip() == str(holder.pid)
    code, err = _cli(capsys, "train", "tiny-lm", "--out", run, "--steps", 1, "--device", "cpu")
    assert code == 0, err
    assert (run / "final" / "config.json").is_file()


STALL = """
    import os, time
    from huggingface_hub import _snapshot_download

    _real = _snapshot_download.hf_hub_download

    def _stalling(repo_id, filename, **kwargs):
        if filename == "model.safetensors" and os.environ.get("PULL_RELEASE"):
            open(os.environ["PULL_MARKER"], "w").close()
            t0 = time.monotonic()   # stalls until the test says so (a busy machine starts the other pull slowly)
            while not os.path.exists(os.environ["PULL_RELEASE"]) and time.monotonic() < t0 + 60:
                time.sleep(0.05)
        return _real(repo_id, filename, **kwargs)

    _snapshot_download.hf_hub_download = _stalling
"""


def test_ctrl_c_on_one_pull_leaves_a_concurrent_pull_whole(hub_env, olah, saved, tmp_path, request):  # noqa: F811
    """Pull A stalls on the weights; pull B of the same repo waits for A's lock; Ctrl-C on A removes what A
    started, then B downloads the model whole (before the lock, A's clean-up deleted the folder B was filling)."""
    from zoo.checkpoint import sha256_file

    repo = _repo(request)
    commit = olah.publish_folder(repo, saved)
    env, marker = stalling_pull_env(tmp_path, STALL)
    a = subprocess.Popen([ZOO, "pull", repo], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**env, "PULL_RELEASE": str(tmp_path / "go")}, preexec_fn=sigint_as_usual)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert a.poll() is None and time.monotonic() < deadline, a.stderr.read()
        time.sleep(0.02)
    b_err = tmp_path / "b.err"
    with open(b_err, "w") as err:
        b = subprocess.Popen([ZOO, "pull", repo], stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    while "waiting for another process" not in b_err.read_text():
        assert b.poll() is None and time.monotonic() < deadline, b_err.read_text()
        time.sleep(0.02)
    assert f"(pid {a.pid})" in b_err.read_text()
    a.send_signal(signal.SIGINT)
    time.sleep(0.2)
    (tmp_path / "go").touch()   # the file in flight completes, then A takes its Ctrl-C (see docs/reliability.md)
    _, a_err = a.communicate(timeout=60)
    assert a.returncode == 130, a_err
    out, _ = b.communicate(timeout=60)
    assert b.returncode == 0, b_err.read_text()
    folder = Path(out.strip())
    assert folder.name == commit
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in saved.iterdir())
    for p in saved.iterdir():
        assert sha256_file(folder / p.name) == sha256_file(p), p.name


# ---- item 16: a release folder's extra files -----------------------------------------------------------

@pytest.fixture
def release_folder(tiny_model, tmp_path):
    """A folder as `zoo release` writes it: the model plus a prompt and a sample, all in the manifest."""
    from zoo.testing import one_track_midi

    midi = {}
    for name in ("prompt.mid", "sample.mid"):
        one_track_midi((60, 0.0, 0.5), (64, 0.5, 1.0)).write(str(tmp_path / name))
        midi[name] = (tmp_path / name).read_bytes()
    return tiny_model.save_pretrained(tmp_path / "release", extra_files=midi)


def test_a_release_uploaded_as_is_pulls_with_its_extra_files(hub_env, olah, release_folder, request):  # noqa: F811
    import json

    import zoo
    from zoo import hub

    assert {"prompt.mid", "sample.mid"} <= set(json.loads((release_folder / "manifest.json").read_text())["sha256"])
    repo = _repo(request)
    olah.publish_folder(repo, release_folder)
    folder = hub.pull(repo)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in release_folder.iterdir())
    for p in release_folder.iterdir():
        assert (folder / p.name).read_bytes() == p.read_bytes()
    zoo.load(f"hf://{repo}", device="cpu")


def test_a_release_round_trips_through_push_and_pull(hub_env, olah, standin, release_folder, request,  # noqa: F811
                                                      monkeypatch):
    from tests.hubserver import gitrepo
    from zoo import hub

    repo = _repo(request)
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    result = hub.push_to_hub(release_folder, repo, token=TOKEN)
    assert {"prompt.mid", "sample.mid"} <= set(gitrepo.files_at(olah.repo_dir(repo), result.commit_id))
    monkeypatch.setenv("HF_ENDPOINT", olah.url)
    folder = hub.pull(repo, result.commit_id)
    for name in ("prompt.mid", "sample.mid", "model.safetensors"):
        assert (folder / name).read_bytes() == (release_folder / name).read_bytes()


def test_a_manifest_listing_a_pickle_or_a_path_is_refused_before_download(hub_env, olah, saved, request):  # noqa: F811
    import json

    from zoo import hub
    from zoo.checkpoint import sha256_file
    from zoo.errors import HubError

    for bad, says in (("weights.bin", "a pickle file"), (".git", "not a plain file name")):
        repo = _repo(request, "-" + bad.strip("."))
        listed = json.loads((saved / "manifest.json").read_text())
        listed["sha256"][bad] = sha256_file(saved / "config.json")
        olah.publish_folder(repo, saved, overrides={"manifest.json": json.dumps(listed).encode()})
        with pytest.raises(HubError, match=says):
            hub.pull(repo)
        assert not list(hub_env.glob(f"models--*{bad.strip('.')}/snapshots/*"))


# ---- item 7: load once, verify once -------------------------------------------------------------------

def test_an_hf_load_hashes_each_file_once_and_still_sees_tampering(hub_env, olah, saved, request,  # noqa: F811
                                                                   monkeypatch):
    import zoo
    from zoo import checkpoint
    from zoo.errors import CheckpointError

    repo = _repo(request)
    olah.publish_folder(repo, saved)
    hashed = []
    real = checkpoint.sha256_file
    monkeypatch.setattr(checkpoint, "sha256_file", lambda path: hashed.append(Path(path).name) or real(path))
    model = zoo.load(f"hf://{repo}", device="cpu")
    blobs = sorted(hashed)
    assert len(blobs) == len(set(blobs)) == len(list(saved.iterdir())) - 1, hashed   # (not the manifest)
    hashed.clear()
    zoo.load(f"hf://{repo}", device="cpu")   # again: nothing changed, nothing hashed
    assert hashed == []
    # a file changed after download, its mtime put back: the ctime moved, so the next load hashes and refuses
    weights = (model.source / "model.safetensors").resolve()
    st = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(CheckpointError, match="sha256 does not match"):
        zoo.load(str(model.source), device="cpu")
    assert hashed == [weights.name]


# ---- item 18: a read-only data cache ------------------------------------------------------------------

def test_music_transformer_trains_with_a_cache_it_cannot_write(tmp_path, one_torch_thread, capsys, monkeypatch):
    from zoo import registry
    from zoo.testing import one_track_midi

    data = tmp_path / "midi"
    data.mkdir()
    for i in range(6):
        notes = [(48 + (i + j) % 24, j * 0.25, j * 0.25 + 0.2) for j in range(48)]
        one_track_midi(*notes).write(str(data / f"piece{i}.mid"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("ZOO_CACHE_DIR", str(blocker / "cache"))   # under a file: cannot be made, even by root
    monkeypatch.setenv("ZOO_PLUGINS", "musezoo-music-transformer")
    registry.reset()
    args = ["train", "music-transformer", "--data", data, "--out", tmp_path / "run", "--steps", 2, "--batch-size", 2,
            "--device", "cpu"]
    for k, v in dict(block_size=8, n_layer=1, n_head=2, n_embd=16, num_workers=0, amp="false").items():
        args += ["--set", f"{k}={v}"]
    try:
        code, err = _cli(capsys, *args)
    finally:
        registry.reset()
    assert code == 0, err
    assert err.count("cannot cache the tokenised data") == 1, err
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()


# ---- item 12 leftovers, and the known limits of round 2 -------------------------------------------------

def test_convert_of_an_empty_or_non_dict_pt_is_one_line(tiny, tmp_path, capsys):
    import torch

    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "short.pt").write_bytes(b"\x80")
    for name, obj in (("list.pt", [1, 2]), ("tensor.pt", torch.zeros(3)), ("int.pt", 5), ("emptydict.pt", {})):
        torch.save(obj, tmp_path / name)
    for name, says in (("empty.pt", "an empty file"), ("short.pt", "not a plain tensor state dict"),
                       ("list.pt", "holds a list"), ("tensor.pt", "holds a Tensor"), ("int.pt", "holds a int"),
                       ("emptydict.pt", "holds a dict (empty)")):
        line = _one_line(*_cli(capsys, "convert", tmp_path / name, "--arch", "tiny-lm", "--out", tmp_path / "out"))
        assert says in line, line
        assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("front, says", [
    ("---\nlicense: [mit\n---\n", "not valid YAML (line 2)"),
    ("---\n- a\n- b\n---\n", "must be YAML key: value pairs, not a list"),
    ("---\nlicense: mit\n", "never closes"),
])
def test_push_with_bad_front_matter_is_one_line_before_any_upload(tiny_model, tmp_path, capsys, monkeypatch,
                                                                  front, says):
    from zoo.checkpoint import write_manifest

    folder = tiny_model.save_pretrained(tmp_path / "m")
    (folder / "README.md").write_text(front + "# my model\n")
    write_manifest(folder)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # an upload would be "cannot reach the Hub"
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    line = _one_line(*_cli(capsys, "push", folder, "zoo-tests/x"))
    assert "README.md" in line and says in line, line


def test_non_finite_numbers_in_a_config_file(tiny, tmp_path, capsys):
    (tmp_path / "c.json").write_text('{"lr": 1e400}')
    line = _one_line(*_cli(capsys, "train", "tiny-lm", "--out", tmp_path / "r", "--config", tmp_path / "c.json"))
    assert "'lr' must be a finite number, got inf" in line
    assert not (tmp_path / "r").exists()
