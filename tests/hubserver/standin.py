"""STAND-IN for the Hugging Face Hub's *write* API -- test-only, not a Hub implementation.

The real Hub cannot be reached from the test machines, and olah (the real mirror used for
downloads) is read-only. This server implements just the endpoints that `huggingface_hub`
calls for `create_repo`, `create_branch` and `create_commit` / `upload_folder` (with the file
listing its `delete_patterns` reads), and stores
every commit in a git repository under olah's mirrors-path
(`<mirrors>/models/<org>/<name>`), so olah serves what was pushed and the round trip
push -> olah -> pull runs through the real client end to end.

Simplifications, on purpose:
- the client is asked to send every file as a regular upload (preupload answers "regular"),
  so the LFS/Xet *upload* protocol is not exercised; the stand-in then stores `*.safetensors`
  through git LFS as the Hub does, so *downloads* from olah take the LFS path;
- visibility ("private") and the caller's token are recorded, not enforced per reader;
- one lock serialises all writes.

Standard library only (http.server + the git CLI); it binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from . import gitrepo
_REPO_ROUTE = re.compile(r"^/api/models/([^/]+)/([^/]+)/(preupload|commit|branch|revision|tree)/(.+)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class HubStandIn:
    """The stand-in server's state: where repos go, and who called with which token."""

    def __init__(self, mirrors_path, token: str | None = None):
        self.mirrors = Path(mirrors_path)
        self.token = token            # if set, write calls must send "Authorization: Bearer <token>"
        self.lock = threading.Lock()
        self.visibility: dict[str, str] = {}
        self.requests: list[tuple[str, str]] = []   # (method, path) log, for tests
        self.auth_seen: list[bool] = []             # whether each write call carried the right token
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "HubStandIn":
        handler = type("Handler", (_Handler,), {"hub": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- git storage -------------------------------------------------------------------------
    def repo_dir(self, org: str, name: str) -> Path:
        return self.mirrors / "models" / org / name

    def create_repo(self, org: str, name: str, visibility: str) -> bool:
        """Create a repo with the Hub's initial commit (.gitattributes); False if it exists."""
        path = self.repo_dir(org, name)
        if (path / ".git").is_dir():
            return False
        gitrepo.init_repo(path)
        self.visibility[f"{org}/{name}"] = visibility
        gitrepo.commit(path, "main", {".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                       message="initial commit")
        return True


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet: tests read hub.requests instead
        pass

    # -- helpers -----------------------------------------------------------------------------
    def _send(self, status: int, body: dict | list, error_code: str | None = None):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if error_code:
            self.send_header("X-Error-Code", error_code)
            self.send_header("X-Error-Message", body.get("error", ""))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _authorised(self) -> bool:
        ok = self.hub.token is None or self.headers.get("Authorization") == f"Bearer {self.hub.token}"
        self.hub.auth_seen.append(ok)
        if not ok:
            self._send(401, {"error": "Invalid credentials in Authorization header"})
        return ok

    def _repo(self, org: str, name: str):
        path = self.hub.repo_dir(org, name)
        if not (path / ".git").is_dir():
            self._send(404, {"error": "Repository not found"}, "RepoNotFound")
            return None
        return path

    # -- routes ------------------------------------------------------------------------------
    def do_GET(self):
        self.hub.requests.append(("GET", self.path))
        m = _REPO_ROUTE.match(urlparse(self.path).path)
        if m and m.group(3) in ("revision", "tree"):
            return self._revision(m.group(1), m.group(2), unquote(m.group(4)), m.group(3))
        self._send(404, {"error": "not implemented by the stand-in"})

    def do_POST(self):
        self.hub.requests.append(("POST", self.path))
        body = self._body()
        route = urlparse(self.path).path
        if route == "/api/validate-yaml":
            return self._send(200, {"errors": [], "warnings": []})
        if not self._authorised():
            return None
        with self.hub.lock:
            if route == "/api/repos/create":
                return self._create_repo(json.loads(body or b"{}"))
            m = _REPO_ROUTE.match(route)
            if not m:
                return self._send(404, {"error": "not implemented by the stand-in"})
            org, name, action, rev = m.group(1), m.group(2), m.group(3), unquote(m.group(4))
            if action == "preupload":
                return self._preupload(org, name, rev, json.loads(body))
            if action == "commit":
                return self._commit(org, name, rev, body)
            if action == "branch":
                return self._branch(org, name, rev, json.loads(body or b"{}"))
        return self._send(404, {"error": "not implemented by the stand-in"})

    def _create_repo(self, payload: dict):
        org, name = payload.get("organization"), payload.get("name", "")
        if not org or not _NAME.match(org) or not _NAME.match(name) or payload.get("type", "model") != "model":
            return self._send(400, {"error": "the stand-in takes model repos named org/name"})
        visibility = payload.get("visibility") or ("private" if payload.get("private") else "public")
        url = f"{self.hub.url}/{org}/{name}"
        if not self.hub.create_repo(org, name, visibility):
            return self._send(409, {"error": "You already created this model repo", "url": url})
        return self._send(200, {"url": url, "name": f"{org}/{name}"})

    def _branch(self, org, name, branch, payload):
        path = self._repo(org, name)
        if path is None:
            return None
        if gitrepo.resolve(path, f"refs/heads/{branch}"):
            return self._send(409, {"error": f"Reference refs/heads/{branch} already exists"})
        start = gitrepo.resolve(path, payload.get("startingPoint") or "main")
        if start is None:
            return self._send(404, {"error": "Invalid rev id"}, "RevisionNotFound")
        gitrepo.git(path, "update-ref", f"refs/heads/{branch}", start)
        return self._send(200, {})

    def _preupload(self, org, name, rev, payload):
        path = self._repo(org, name)
        if path is None:
            return None
        existing = gitrepo.files_at(path, rev) if gitrepo.resolve(path, rev) else {}
        files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                  "oid": gitrepo.content_oid(path, rev, f["path"]) if f["path"] in existing else None}
                 for f in payload.get("files", [])]
        return self._send(200, {"files": files, "commitOid": gitrepo.resolve(path, rev)})

    def _commit(self, org, name, branch, body: bytes):
        path = self._repo(org, name)
        if path is None:
            return None
        if gitrepo.resolve(path, f"refs/heads/{branch}") is None:
            return self._send(404, {"error": f"Invalid rev id: {branch}"}, "RevisionNotFound")
        header, adds, deletes = {}, {}, set()
        for line in body.splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                header = value
            elif key == "file":
                if value.get("encoding") != "base64":
                    return self._send(400, {"error": "the stand-in takes base64 file content only"})
                adds[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                deletes.add(value["path"])
            else:  # lfsFile: the stand-in never asks for LFS, so a client sending it is a bug
                return self._send(400, {"error": f"the stand-in does not support {key!r} operations"})
        for fname in list(adds) + list(deletes):
            if fname.startswith("/") or ".." in fname.split("/") or fname.startswith(".git/"):
                return self._send(400, {"error": f"bad path {fname!r}"})
        parent = header.get("parentCommit")
        head = gitrepo.resolve(path, f"refs/heads/{branch}")
        if parent and parent != head:
            return self._send(412, {"error": "A commit has happened since. Please refresh and try again."})
        message = header.get("summary") or "commit"
        if header.get("description"):
            message += "\n\n" + header["description"]
        sha = gitrepo.commit(path, branch, adds, deletes, message)
        return self._send(200, {"success": True, "commitOid": sha,
                                "commitUrl": f"{self.hub.url}/{org}/{name}/commit/{sha}"})

    def _revision(self, org, name, rev, view):
        """GET .../revision/REV: the repo's info and file names at REV; GET .../tree/REV: the whole tree of REV
        with each file's blob and size (upload_folder lists it recursively)."""
        path = self._repo(org, name)
        if path is None:
            return None
        sha = gitrepo.resolve(path, rev)
        if sha is None:
            return self._send(404, {"error": f"Invalid rev id: {rev}"}, "RevisionNotFound")
        files = gitrepo.files_at(path, sha)
        if view == "tree":
            return self._send(200, [{"type": "file", "path": f, "oid": blob, "size": len(gitrepo.read_file(path, sha, f))}
                                    for f, blob in files.items()])
        return self._send(200, {"id": f"{org}/{name}", "sha": sha, "siblings": [{"rfilename": f} for f in files],
                                "private": self.hub.visibility.get(f"{org}/{name}") == "private"})
