"""Run olah (a real, self-hosted Hugging Face Hub mirror, on PyPI) on loopback for tests.

olah runs in offline mode and serves the git repositories under its mirrors-path
(`<mirrors>/models/<org>/<name>`, one non-bare git repo per Hub repo), so
`huggingface_hub` with HF_ENDPOINT pointing here downloads from local git history:
branches, tags and commit ids all resolve as on the Hub. Nothing leaves 127.0.0.1.

    with OlahServer(tmp_path) as olah:
        env["HF_ENDPOINT"] = olah.url
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from . import gitrepo


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OlahServer:
    """olah in a subprocess: offline, mirrors-path only, bound to 127.0.0.1:<free port>."""

    def __init__(self, root, startup_timeout: float = 30.0):
        self.root = Path(root)
        self.mirrors = self.root / "mirrors"
        self.port = free_port()
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.log_path = self.root / "olah.out"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.mirrors.mkdir(parents=True, exist_ok=True)
        (self.mirrors / "models").mkdir(exist_ok=True)
        config = self.root / "olah.toml"
        # hf-netloc points at a closed loopback port: even if offline mode were ignored,
        # nothing would be sent off the machine.
        config.write_text(
            "[basic]\n"
            'host = "127.0.0.1"\n'
            f"port = {self.port}\n"
            f'repos-path = "{self.root / "olah-cache"}"\n'
            f'mirrors-path = ["{self.mirrors}"]\n'
            'hf-scheme = "http"\n'
            f'hf-netloc = "127.0.0.1:{free_port()}"\n'
            f'hf-lfs-netloc = "127.0.0.1:{free_port()}"\n'
            "metadata-cache-ttl = 0\n"
            "[accessibility]\n"
            "offline = true\n"
        )
        return config

    def start(self) -> "OlahServer":
        try:
            import olah  # noqa: F401
        except ImportError:
            raise RuntimeError("the Hub tests need olah: pip install -e '.[dev]' (or pip install olah)") from None
        config = self.write_config()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "olah.server", "--config", str(config), "--log-path", str(self.root / "logs")],
            cwd=self.root, stdout=self.log, stderr=subprocess.STDOUT, env=env,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError(f"olah exited with {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                # any HTTP answer means it is up (404 for an unknown repo is fine)
                urllib.request.urlopen(f"{self.url}/api/models/none/none/revision/main", timeout=1)
                return self
            except urllib.error.HTTPError:
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"olah did not start within {self.startup_timeout}s: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- publishing straight into the mirror (download tests need no upload server) ----------
    def repo_dir(self, repo_id: str) -> Path:
        org, name = repo_id.split("/")
        return self.mirrors / "models" / org / name

    def publish_folder(self, repo_id: str, folder, branch: str = "main", message: str = "upload",
                       overrides: dict | None = None) -> str:
        """Commit a folder's files (plus byte overrides) to the mirror repo; return the commit id."""
        return gitrepo.commit_folder(self.repo_dir(repo_id), folder, branch=branch, message=message,
                                     overrides=overrides)
