"""Write Hub-style git repos (what olah's mirrors-path serves) with git plumbing only."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

_GIT_ENV = {
    "GIT_AUTHOR_NAME": "hub-test", "GIT_AUTHOR_EMAIL": "hub-test@localhost",
    "GIT_COMMITTER_NAME": "hub-test", "GIT_COMMITTER_EMAIL": "hub-test@localhost",
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
}


def git(repo, *args: str, input: bytes | None = None, env: dict | None = None) -> str:
    """Run git in a repo; raise with its stderr on failure."""
    full_env = {**os.environ, **_GIT_ENV, **(env or {})}
    proc = subprocess.run(["git", "-C", str(repo), *args], input=input, capture_output=True, env=full_env, timeout=30)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode().strip()


def init_repo(path) -> Path:
    """An empty non-bare repo on branch main (olah reads non-bare repos)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def resolve(path, rev: str) -> str | None:
    """The commit id a revision names, or None."""
    try:
        return git(path, "rev-parse", "--verify", "-q", f"{rev}^{{commit}}")
    except RuntimeError:
        return None


def files_at(path, rev: str) -> dict[str, str]:
    """File path -> git blob id at a revision."""
    files = {}
    for line in git(path, "ls-tree", "-r", rev).splitlines():
        meta, fname = line.split("\t", 1)
        files[fname] = meta.split()[2]
    return files


def commit(path, branch: str, adds: dict[str, bytes], deletes=(), message: str = "commit") -> str:
    """Write one commit on a branch through a throw-away index (the work tree is never touched)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
        head = resolve(path, f"refs/heads/{branch}")
        if head:
            git(path, "read-tree", head, env=env)
        for fname in deletes:
            git(path, "update-index", "--force-remove", "--", fname, env=env)
        for fname, data in adds.items():
            blob = git(path, "hash-object", "-w", "--stdin", input=data)
            git(path, "update-index", "--add", "--cacheinfo", f"100644,{blob},{fname}", env=env)
        tree = git(path, "write-tree", env=env)
        sha = git(path, "commit-tree", tree, "-m", message, *(["-p", head] if head else []))
        git(path, "update-ref", f"refs/heads/{branch}", sha, *([head] if head else []))
        return sha


def tag(path, name: str, rev: str) -> None:
    """A lightweight tag (the Hub's tags resolve like branches)."""
    git(path, "tag", name, rev)


def commit_folder(path, folder, branch: str = "main", message: str = "upload", overrides: dict | None = None) -> str:
    """Commit every file of a flat folder (plus byte overrides) to a repo, creating it if needed."""
    path = Path(path)
    if not (path / ".git").is_dir():
        init_repo(path)
    adds = {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}
    adds.update(overrides or {})
    return commit(path, branch, adds, message=message)
