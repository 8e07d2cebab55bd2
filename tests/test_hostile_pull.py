"""An interrupted `zoo pull` (issue 8): Ctrl-C and SIGKILL mid-download leave no partial file under a final
name in the Hugging Face cache, and the next pull completes. A dropped connection is
tests/test_hub.py::test_interrupted_download_leaves_nothing_under_a_final_name; this adds the signals.
Runs against the same loopback olah server as tests/test_hub.py (its fixtures are reused).
"""

from __future__ import annotations

import os
import signal
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import ZOO
from zoo.testing import sigint_as_usual
from tests.test_hub import _repo, hub_env, olah, saved  # noqa: F401  (fixtures)

# Loaded at start-up of the `zoo pull` subprocess: the weights file's download announces itself and stalls,
# so the test can deliver its signal while that file is in flight. huggingface_hub downloads in worker
# threads, which a signal cannot interrupt: Ctrl-C takes effect once the files in flight are done (observed;
# see docs/reliability.md), so the SIGINT run stalls only briefly.
SITECUSTOMIZE = """
    import os, time
    from huggingface_hub import _snapshot_download, file_download

    _real = _snapshot_download.hf_hub_download

    def _stalling(repo_id, filename, **kwargs):
        if filename == "model.safetensors":
            open(os.environ["PULL_MARKER"], "w").close()
            time.sleep(float(os.environ["PULL_STALL_S"]))
        return _real(repo_id, filename, **kwargs)

    _snapshot_download.hf_hub_download = _stalling
"""


def stalling_pull_env(tmp_path: Path, script: str) -> tuple[dict, Path]:
    """Environment for a `zoo pull` subprocess that loads `script` as its sitecustomize, and the marker file the
    script creates once the weights file is in flight."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(script))
    marker = tmp_path / "downloading"
    env = {**os.environ, "PULL_MARKER": str(marker),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return env, marker


def _cache_state(cache: Path, repo: str) -> tuple[list[Path], list[Path]]:
    """(files under final names in the repo's snapshots, blobs still marked .incomplete)."""
    root = cache / f"models--{repo.replace('/', '--')}"
    finals = sorted(p for p in (root / "snapshots").rglob("*") if p.is_file()) if (root / "snapshots").exists() else []
    incomplete = sorted(p for p in (root / "blobs").glob("*.incomplete")) if (root / "blobs").exists() else []
    return finals, incomplete


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_signal_during_pull_leaves_no_partial_model_and_the_next_pull_completes(
        hub_env, olah, saved, tmp_path, request, sig):  # noqa: F811
    from zoo import hub
    from zoo.checkpoint import sha256_file

    repo = _repo(request)
    commit = olah.publish_folder(repo, saved)
    env, marker = stalling_pull_env(tmp_path, SITECUSTOMIZE)
    env["PULL_STALL_S"] = "2" if sig == signal.SIGINT else "60"
    proc = subprocess.Popen([ZOO, "pull", repo], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=sigint_as_usual)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the download never started"
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    finals, incomplete = _cache_state(hub_env, repo)
    if sig == signal.SIGINT:
        assert proc.returncode == 130 and err.strip().splitlines()[-1] == "zoo: interrupted", err
        # usually the snapshot this pull started is gone; if the signal lands after the last file was
        # renamed into place (a busy machine), what is there is complete: never a partial file
        for f in finals:
            assert f.read_bytes() == (saved / f.name).read_bytes(), f
    else:
        assert proc.returncode == -signal.SIGKILL
        # nothing can clean up after SIGKILL: every file under a final name is complete (byte-identical);
        # whether the weights landed before the kill depends on timing, so that is not asserted
        for f in finals:
            assert f.read_bytes() == (saved / f.name).read_bytes(), f
    if sig == signal.SIGINT:
        assert incomplete == []
    # (after SIGKILL a blob being fetched may stay as *.incomplete: a temp name, resumed by the next pull)
    if sig == signal.SIGKILL:
        assert finals, "expected the other files to have landed before the kill"
        folder = hub.pull(repo, commit)  # pinned to the commit: the partial snapshot must not be taken as cached
    else:
        folder = hub.pull(repo)  # the next pull completes the model and verifies it
    assert folder.name == commit
    assert sha256_file(folder / "model.safetensors") == sha256_file(saved / "model.safetensors")
    assert hub.pull(repo, commit) == hub.pull(repo) == folder
