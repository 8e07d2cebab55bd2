"""Write Hub-style git repos (what olah's mirrors-path serves) with git plumbing only.

As on the Hub, `*.safetensors` files are stored through git LFS: the commit holds a pointer
and the bytes live in `.git/lfs/objects/`, where olah serves them from (so downloads take
huggingface_hub's LFS path, with sha256 etags and blob names, as they do from huggingface.co).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from fnmatch import fnmatchcase
from pathlib import Path

LFS_PATTERNS = ("*.safetensors",)
_POINTER = re.compile(rb"^version https://git-lfs\.github\.com/spec/v1\noid sha256:([0-9a-f]{64})\nsize [0-9]+\n$")

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
            blob = git(path, "hash-object", "-w", "--stdin", input=_lfs_store(path, fname, data))
            git(path, "update-index", "--add", "--cacheinfo", f"100644,{blob},{fname}", env=env)
        tree = git(path, "write-tree", env=env)
        sha = git(path, "commit-tree", tree, "-m", message, *(["-p", head] if head else []))
        git(path, "update-ref", f"refs/heads/{branch}", sha, *([head] if head else []))
        return sha


def _lfs_store(path, fname: str, data: bytes) -> bytes:
    """The bytes git should hold for a file: an LFS pointer (content stored aside) or the content."""
    if not any(fnmatchcase(fname, p) for p in LFS_PATTERNS):
        return data
    oid = hashlib.sha256(data).hexdigest()
    obj = Path(path) / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    if not obj.is_file():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_name(obj.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, obj)
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n".encode()


def read_file(path, rev: str, fname: str) -> bytes:
    """A file's content at a revision, through its LFS pointer if it has one."""
    proc = subprocess.run(["git", "-C", str(path), "show", f"{rev}:{fname}"], capture_output=True, timeout=30,
                          env={**os.environ, **_GIT_ENV})
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.decode(errors="replace").strip())
    m = _POINTER.match(proc.stdout)
    if m is None:
        return proc.stdout
    oid = m.group(1).decode()
    return (Path(path) / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid).read_bytes()


def content_oid(path, rev: str, fname: str) -> str:
    """The git blob id of a file's real content (what huggingface_hub compares for regular uploads)."""
    data = read_file(path, rev, fname)
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


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
