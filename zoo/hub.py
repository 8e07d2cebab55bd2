"""Share models through the Hugging Face Hub: push with a model card, pull into the HF cache, hf:// names.

Everything goes through `huggingface_hub` (no hand-written HTTP). The endpoint, the cache and
offline mode are read from the environment at call time (HF_ENDPOINT, HF_HUB_CACHE / HF_HOME,
HF_HUB_OFFLINE); the token comes from the argument, HF_TOKEN or `hf auth login`, and is never
printed or logged. Every failure a user can cause is a HubError whose one-line message says
what to do.
"""

from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import urlsplit

from zoo import card as cards
from zoo import checkpoint
from zoo.checkpoint import MANIFEST, MODEL_FILE_PATTERNS  # exactly what a model is: never caches, .git, logs or strays
from zoo.errors import CheckpointError, HubError
from zoo.limits import MAX_HUB_FILES
from zoo.locks import hold
from zoo.progress import interactive
from zoo.registry import HubRepo, get_registry, locate
from zoo.safeio import read_bytes, read_json, write_text_atomic
from zoo.version import __version__

DEFAULT_ENDPOINT = "https://huggingface.co"
_HEAD_FILES = ("manifest.json", "config.json")  # fetched first; the manifest lists the rest
_COMMIT = re.compile(r"[0-9a-f]{40}")   # fullmatch: "$" would let a trailing newline through
# one part of a branch or tag name (parts are joined by '/', as in refs/pr/1): it becomes a folder or file name in
# the cache (refs/<revision>), so only plain names pass; no '..', no leading '/' or '.', no '\\' or control characters
_REVISION_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_BEGIN, _END = "<!-- musezoo:begin -->", "<!-- musezoo:end -->"
TIMEOUT_S = 20.0  # per Hub API call; a dead network fails in bounded time


@dataclass(frozen=True)
class PushResult:
    """What `push_to_hub` made: the commit id and its URL."""

    repo_id: str
    revision: str
    commit_id: str
    url: str

    def __str__(self) -> str:
        return f"{self.commit_id}\n{self.url}"


# -- names and environment ----------------------------------------------------------------------

def parse_hf_name(name: str) -> tuple[str, str | None]:
    """'hf://org/repo@rev' (or 'org/repo@rev') -> ('org/repo', 'rev' or None)."""
    body = name[len("hf://"):] if name.startswith("hf://") else name
    repo_id, _, revision = body.partition("@")
    check_repo_id(repo_id)
    return repo_id, revision or None


def check_revision(revision) -> None:
    """A commit id or a plain branch or tag name passes; anything that could step out of the cache is a HubError."""
    parts = revision.split("/") if isinstance(revision, str) else [""]
    if not (isinstance(revision, str) and len(revision) <= 255 and all(_REVISION_PART.fullmatch(p) for p in parts)):
        raise HubError(f"revision {revision!r} is not a branch, tag or commit id; write a plain name such as main, "
                       f"v1 or a 40-character commit id (letters, digits, '.', '_', '-', '+', parts joined by '/')")


def check_repo_id(repo_id: str) -> None:
    """A Hub model id is 'org/name'; anything else is a clear error."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("no org")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise HubError(f"{repo_id!r} is not a Hub repo id; write it as org/name (hf://org/name[@revision])") from None


def endpoint() -> str:
    """The Hub to talk to: $HF_ENDPOINT, else huggingface.co; an address without http(s):// is refused."""
    raw = os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT
    url = raw.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:   # "localhost:8080" parses as scheme localhost
        raise HubError(f"HF_ENDPOINT={raw!r} is not a web address; write it with its scheme, for example "
                       f"http://{url.split('://')[-1]} (or unset HF_ENDPOINT to use {DEFAULT_ENDPOINT})")
    return url


def cache_dir() -> Path:
    """The standard Hugging Face cache: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def offline() -> bool:
    """HF_HUB_OFFLINE=1: use the cache only, never the network."""
    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    if value is not None:
        return value.strip().upper() in ("1", "ON", "YES", "TRUE")
    return bool(constants.HF_HUB_OFFLINE)


def _quiet_unless_terminal() -> None:
    # The Hub's own progress bars only on a terminal, like the rest of zoo's output.
    from huggingface_hub.utils import disable_progress_bars

    if not interactive():
        disable_progress_bars()


def _first_line(exc: BaseException, token=None) -> str:
    """The exception's first line, for a one-line message; never a token, whatever the server echoed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    from huggingface_hub import get_token   # HF_TOKEN, HUGGING_FACE_HUB_TOKEN or the `hf auth login` file

    for secret in {token if isinstance(token, str) else None, os.environ.get("HF_TOKEN"), get_token()} - {None, ""}:
        text = text.replace(secret, "***")
    return " ".join(text.split())


def _is_unreachable(exc: BaseException) -> bool:
    """Connection refused, DNS failure, timeout or a 5xx: the Hub is not there right now."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, HubError):   # (zoo.hubnet's limits: the server was there, too slow or too talkative)
            return False
        if isinstance(exc, HfHubHTTPError):
            response = getattr(exc, "response", None)
            return response is not None and response.status_code >= 500
        # (huggingface_hub's OfflineModeIsEnabled is a ConnectionError)
        if isinstance(exc, (ConnectionError, TimeoutError, httpx2.TimeoutException, httpx2.NetworkError,
                            httpx2.RemoteProtocolError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# -- pull -----------------------------------------------------------------------------------------

def pull(repo_id: str, revision: str | None = None, *, token=None) -> Path:
    """Download a model's files into the HF cache (or find them there), verify the manifest, return the folder."""
    repo_id, parsed_revision = parse_hf_name(repo_id)
    revision = revision or parsed_revision
    if revision is not None:
        check_revision(revision)
    name = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    _quiet_unless_terminal()
    if offline():
        folder = _from_cache(repo_id, revision, token)
        if folder is None:
            raise HubError(f"HF_HUB_OFFLINE=1 and {name} is not in the Hugging Face cache ({cache_dir()}); "
                           f"run `zoo pull {repo_id}{'@' + revision if revision else ''}` once while online, "
                           f"or unset HF_HUB_OFFLINE")
    else:
        from zoo import hubnet

        try:
            with hubnet.call() as current:
                folder = _download(repo_id, revision, name, token, current)
        except hubnet.HubLimitError as exc:
            raise HubError(f"{name}: {exc}; nothing was kept") from None
    _verify(folder, name, repo_id)
    return folder


def resolve(name_or_path, revision: str | None = None) -> Path:
    """A pretrained name, a local folder or hf://org/repo[@rev] as a local folder (pulled when only on the Hub)."""
    where = locate(name_or_path, revision)
    return pull(where.repo, where.revision) if isinstance(where, HubRepo) else where


def _snapshot(repo_id: str, revision: str | None, token, names, **kwargs) -> Path:
    from huggingface_hub import snapshot_download

    with warnings.catch_warnings():
        # huggingface_hub warns over several lines when the disk looks too small, then tries anyway: a disk
        # that is full is reported once, as zoo's one line (the OSError in _fetch), never after that warning
        warnings.filterwarnings("ignore", message="Not enough free disk space", category=UserWarning)
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir(), endpoint=endpoint(),
                                      allow_patterns=[glob.escape(n) for n in names], token=token, **kwargs))


def _listed(folder: Path) -> list[str] | None:
    """Every file a folder's manifest lists (samples too), with the manifest itself; None without a manifest."""
    try:
        digests = read_json(folder / MANIFEST, "manifest.json", HubError)["sha256"]   # bounded, regular only
    except (HubError, KeyError, TypeError):
        return None
    if not isinstance(digests, dict):
        return None
    names = sorted(n for n in digests if isinstance(n, str) and n != MANIFEST)
    if len(names) > MAX_HUB_FILES:
        raise HubError(f"its manifest lists {len(names):,} files, more than a model folder has "
                       f"(limit {MAX_HUB_FILES:,}); the repo is not a musezoo model")
    for n in names:
        if not n or "/" in n or "\\" in n or n.startswith(".") or n != n.strip() or any(ord(c) < 32 for c in n):
            raise HubError(f"its manifest lists {n!r}, not a plain file name; the repo is not a musezoo model")
        if n.lower().endswith(checkpoint.PICKLE_SUFFIXES):
            raise HubError(f"its manifest lists {n}, a pickle file, which musezoo never loads (it can run code)")
    return [MANIFEST, *names]


def _from_cache(repo_id: str, revision: str | None, token) -> Path | None:
    """The cached snapshot for a revision if it holds every file its manifest lists, else None."""
    try:
        folder = _snapshot(repo_id, revision, token, _HEAD_FILES, local_files_only=True)
    except FileNotFoundError:   # (huggingface_hub's LocalEntryNotFoundError and IncompleteSnapshotError are ones)
        return None
    if not _COMMIT.fullmatch(folder.name):   # a refs/ file that does not hold a commit id
        return None
    listed = _listed(folder)
    if listed is not None and not all((folder / n).is_file() for n in listed):
        return None
    return folder  # (without a manifest, _verify says it is not a musezoo model)


def _download(repo_id: str, revision: str | None, name: str, token, current) -> Path:
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    # A commit id never changes: a complete cached copy needs no network at all.
    if revision and _COMMIT.fullmatch(revision):
        cached = _from_cache(repo_id, revision, token)
        if cached is not None:
            return cached

    api = HfApi(endpoint=endpoint(), token=token, library_name="musezoo")
    try:
        commit = api.repo_info(repo_id, revision=revision or "main", timeout=TIMEOUT_S).sha
    except RevisionNotFoundError:
        raise HubError(_no_revision(repo_id, revision)) from None
    except GatedRepoError:
        raise HubError(f"{name} is gated: accept its terms on the Hub, then set HF_TOKEN or run "
                       f"`hf auth login`") from None
    except RepositoryNotFoundError:
        # The Hub answers "repo not found" for an unknown revision too; ask once more to tell which.
        if revision and _repo_exists(api, repo_id):
            raise HubError(_no_revision(repo_id, revision)) from None
        raise HubError(f"{name}: no such model repo on {endpoint()} (or it is private: set HF_TOKEN or run "
                       f"`hf auth login` with access to it)") from None
    except Exception as exc:
        if not _is_unreachable(exc):   # (a HubLimitError goes on to pull)
            if isinstance(exc, HfHubHTTPError):
                raise HubError(f"{name}: the Hub answered {_first_line(exc, token)}; check the name and your "
                               f"token") from None
            if isinstance(exc, (ValueError, KeyError, TypeError, AttributeError, httpx2.HTTPError)):
                # an HTML page, a redirect loop, odd JSON
                raise HubError(f"{name}: {_not_a_hub(exc, token)}") from None
            raise
        if revision and isinstance(exc, HfHubHTTPError) and _repo_exists(api, repo_id):
            raise HubError(_no_revision(repo_id, revision)) from None  # the server choked on the revision only
        cached = _from_cache(repo_id, revision, token)
        reason = _first_line(exc, token)
        if cached is None:
            raise HubError(f"cannot reach the Hub at {endpoint()} ({reason}) and {name} is not in the cache; "
                           f"check your network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use cached models "
                           f"only") from None
        print(f"zoo: warning: cannot reach the Hub at {endpoint()} ({reason}); using the cached copy of {name} "
              f"(commit {cached.name[:12]})", file=sys.stderr)
        return cached
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise HubError(f"{name}: {_not_a_hub(ValueError(f'commit id {commit!r}'), token)}")

    # One zoo pull at a time fills a repo's snapshots: a pull stopped by Ctrl-C removes only a snapshot it
    # started, never one a concurrent pull is filling. The lock lives in the cache's lock folder.
    locks = cache_dir() / ".locks" / "musezoo"
    locks.mkdir(parents=True, exist_ok=True)
    with hold(locks / f"{_repo_cache(repo_id).name}.lock", f"the Hugging Face cache of {name}", wait=True,
              error=HubError):
        return _fetch(api, repo_id, revision, commit, name, token, current)


def _fetch(api, repo_id: str, revision: str | None, commit: str, name: str, token, current) -> Path:
    """Download the manifest, then every file it lists (sizes checked first), into the cache; return the folder."""
    import httpx2

    started = not (_repo_cache(repo_id) / "snapshots" / commit).exists()
    try:
        # The manifest first: it names the files to fetch, so nothing else in the repo is downloaded. Always by
        # the commit checked above: asked by branch, huggingface_hub would ask the Hub again and trust the second
        # answer, and a hostile one (sha '../../x') named files outside the cache.
        folder = _snapshot(repo_id, commit, token, _HEAD_FILES)
        try:
            listed = _listed(folder)
        except HubError as exc:
            raise HubError(f"{name}: {exc}") from None
        if listed is None:
            if started:
                _drop_snapshot(repo_id, commit)
            return folder  # _verify: not a musezoo model
        sizes = _sizes(api, repo_id, commit, listed, name, current.max_bytes)
        current.expect(sizes)   # each answer may be as large as the largest file the Hub declared
        folder = _snapshot(repo_id, commit, token, listed)
    except BaseException as exc:
        # huggingface_hub renames each file into place only when complete; also drop a snapshot folder this
        # call started, so no half model sits under a final name.
        if started:
            _drop_snapshot(repo_id, commit)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise HubError(f"downloading {name} failed ({_first_line(exc, token)}); nothing was kept; free some "
                           f"disk space in {cache_dir()} (or set HF_HUB_CACHE to another disk), then run the "
                           f"command again") from None
        if isinstance(exc, OSError) or (isinstance(exc, Exception) and _is_unreachable(exc)):   # HfHubHTTPError too
            raise HubError(f"downloading {name} failed ({_first_line(exc, token)}); nothing was kept, "
                           f"run the command again") from None
        if isinstance(exc, (ValueError, KeyError, TypeError, httpx2.HTTPError)):
            raise HubError(f"{name}: {_not_a_hub(exc, token)}; nothing was kept") from None
        raise
    _record_ref(repo_id, revision or "main", commit)
    return folder


def _record_ref(repo_id: str, revision: str, commit: str) -> None:
    """Remember branch or tag -> commit in refs/, as huggingface_hub does, so the revision works offline later."""
    if _COMMIT.fullmatch(revision):
        return
    path = _repo_cache(repo_id) / "refs" / revision   # check_revision made it a plain name: it stays inside refs/
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, commit, HubError)
    except (OSError, HubError):
        pass   # (huggingface_hub ignores it too) the files are in place; only offline use by name is lost


def _sizes(api, repo_id: str, commit: str, listed: list[str], name: str, most: int) -> list[int]:
    """The sizes the Hub declares for the listed files, which must all exist and together fit `most` bytes."""
    from huggingface_hub.hf_api import RepoFile

    infos = api.get_paths_info(repo_id, listed, revision=commit)
    sizes = {i.path: i.size for i in infos if isinstance(i, RepoFile) and isinstance(i.size, int)}
    missing = [n for n in listed if n not in sizes]
    if missing:
        raise HubError(f"{name}: its manifest lists {', '.join(missing[:5])}, which the repo does not have; "
                       f"ask the publisher to push the whole folder again (zoo push)")
    if any(size < 0 for size in sizes.values()):
        raise HubError(f"{name}: {_not_a_hub(ValueError('a negative file size'), None)}")
    total = sum(sizes[n] for n in listed)
    if total > most:
        raise HubError(f"{name}: its files are {total:,} bytes on the Hub, more than ZOO_HUB_MAX_BYTES allows "
                       f"({most:,}); nothing was downloaded. Raise it (e.g. ZOO_HUB_MAX_BYTES=200G) if you expect "
                       f"a model that large")
    return [sizes[n] for n in listed]


def _not_a_hub(exc: BaseException, token) -> str:
    return (f"{endpoint()} did not answer as a Hugging Face Hub does ({_first_line(exc, token)}); check HF_ENDPOINT "
            f"(it must be the Hub's address, e.g. {DEFAULT_ENDPOINT})")


def _repo_cache(repo_id: str) -> Path:
    """The repo's folder in the Hugging Face cache."""
    return cache_dir() / f"models--{repo_id.replace('/', '--')}"


def _drop_snapshot(repo_id: str, commit: str) -> None:
    """Remove a snapshot (and the blobs only it uses) through huggingface_hub's cache API."""
    from huggingface_hub import scan_cache_dir

    try:
        cache = scan_cache_dir(cache_dir())
        if any(rev.commit_hash == commit for repo in cache.repos
               if repo.repo_id == repo_id and repo.repo_type == "model" for rev in repo.revisions):
            cache.delete_revisions(commit).execute()
    except Exception:   # a cache huggingface_hub cannot scan (half a snapshot, no refs yet): removed below
        pass
    # what the scan did not list: a snapshot folder without a readable file in it
    shutil.rmtree(_repo_cache(repo_id) / "snapshots" / commit, ignore_errors=True)


def _repo_exists(api, repo_id: str) -> bool:
    """Whether the repo answers at main (one retry: a server may drop the connection after an error)."""
    for attempt in range(2):
        try:
            api.repo_info(repo_id, revision="main", timeout=TIMEOUT_S)
            return True
        except Exception as exc:
            if attempt or not _is_unreachable(exc):
                return False
    return False


def _no_revision(repo_id: str, revision: str | None) -> str:
    return (f"hf://{repo_id} has no revision {revision!r}; give an existing branch, tag or full commit id "
            f"(see {endpoint()}/{repo_id}/commits/main)")


def _verify(folder: Path, name: str, repo_id: str) -> None:
    """Check the sha256 manifest (each file hashed once); a bad copy is evicted from the cache and reported."""
    if not (folder / MANIFEST).is_file() or not (folder / "config.json").is_file():
        raise HubError(f"{name} is not a musezoo model (no config.json and manifest.json); "
                       f"publish models with `zoo push`")
    try:
        expected = read_json(folder / MANIFEST, "manifest.json", HubError)["sha256"]   # bounded, regular files only
        bad = [n for n, digest in expected.items()
               if "/" not in n and (folder / n).is_file() and checkpoint.file_digest(folder / n) != digest]
    except (ValueError, KeyError, TypeError, AttributeError):
        bad = []
    if bad:
        # the bad files' blobs go even where another revision shares them: else huggingface_hub would link the
        # same bad blob again on the next pull
        blobs = [(folder / n).resolve() for n in bad]
        _drop_snapshot(repo_id, folder.name)
        for blob in blobs:
            if blob.is_file() and blob.is_relative_to(cache_dir().resolve()):
                blob.unlink(missing_ok=True)
        raise HubError(f"{name}: {', '.join(sorted(bad))} does not match the sha256 in its manifest, so the copy on "
                       f"the Hub is corrupt or was changed without its manifest; the cached copy was deleted. "
                       f"Ask the publisher to push again, or pin a known-good commit")
    try:
        checkpoint.verify(folder)   # (checks the digests just computed without reading the files again)
    except CheckpointError as exc:
        raise HubError(f"{name}: {exc}") from None


# -- push -----------------------------------------------------------------------------------------

def push_to_hub(model_or_path, repo_id: str, revision: str | None = None, private: bool = False,
                message: str | None = None, token=None, metrics=None) -> PushResult:
    """Publish a model (object, saved folder, run's final/ or pretrained name) with its card; return the commit."""
    check_repo_id(repo_id)
    if revision is not None:
        check_revision(revision)
    _quiet_unless_terminal()
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        source, spec = _source_folder(model_or_path, Path(tmp) / "saved")
        checkpoint.verify(source)  # never publish a corrupt folder
        config = checkpoint.read_config(source)
        staged = Path(tmp) / "upload"
        staged.mkdir()
        try:   # files a release adds (samples) are in its manifest: pushed here, fetched by pull (the same check)
            extra = set(_listed(source) or ())
        except HubError as exc:
            raise HubError(f"{source}: {exc}; nothing was pushed") from None
        for path in sorted(source.iterdir()):
            listed = path.name in extra or any(fnmatchcase(path.name, p) for p in MODEL_FILE_PATTERNS)
            if listed and _own_file(path, source) and path.name not in ("README.md", MANIFEST):
                shutil.copy2(path, staged / path.name)
        card_path = source / "README.md"
        old_card = None
        if _own_file(card_path, source):   # a README.md linked to a secret file was published as the card
            old_card = read_bytes(card_path, 1 << 20, "model card (README.md)", HubError).decode("utf-8", "replace")
            _check_front_matter(old_card, card_path)   # before anything is uploaded
        card = model_card(old_card, repo_id=repo_id, config=config, spec=spec, revision=revision,
                          metrics=_metrics(metrics, source))
        (staged / "README.md").write_text(card, encoding="utf-8")
        checkpoint.write_manifest(staged)  # the card changed, so the manifest is rewritten over exactly these files
        return _upload(staged, sorted(extra), repo_id, revision, private,
                       message or f"Upload {config['arch']} model with musezoo", token)


_FRONT_MATTER = re.compile(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))")   # as huggingface_hub's cards


def _check_front_matter(card: str, path: Path) -> None:
    """A card's front matter, when it opens with ---, is a closed YAML mapping (else huggingface_hub tracebacks)."""
    import yaml

    if not card.lstrip().startswith("---"):
        return
    match = _FRONT_MATTER.search(card)
    if match is None:
        raise HubError(f"{path}: its metadata block opens with --- but never closes; end it with a line '---', "
                       f"or remove it")
    try:
        meta = yaml.safe_load(match.group(2))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 2})" if mark is not None else ""
        raise HubError(f"{path}: the metadata block between the --- lines is not valid YAML{where}: "
                       f"{getattr(exc, 'problem', None) or 'unreadable'}; fix it or remove it") from None
    if meta is not None and not isinstance(meta, dict):
        raise HubError(f"{path}: the metadata block between the --- lines must be YAML key: value pairs, "
                       f"not a {type(meta).__name__}; fix it or remove it")


def _own_file(path: Path, folder: Path) -> bool:
    """True for a regular file of the folder, False when absent; a HubError for anything else push must not publish."""
    if not path.is_symlink():
        if path.exists() and not path.is_file():
            raise HubError(f"{path}: not a regular file (a device, FIFO or folder); push only model folders")
        return path.is_file()
    target = path.resolve()
    roots = [folder.resolve(), cache_dir().resolve()]   # pulled snapshots are links to cached blobs
    if target.is_file() and any(target.is_relative_to(root) for root in roots):
        return True
    raise HubError(f"{path}: a symlink to {target}, outside the model folder; push publishes only the folder's own "
                   f"files (replace the link with a copy of the file)")


def _source_folder(model_or_path, scratch: Path):
    """A local folder for what is being pushed, and its pretrained spec when it has one."""
    if hasattr(model_or_path, "save_pretrained") and hasattr(model_or_path, "state_files"):
        return Path(model_or_path.save_pretrained(scratch)), None
    name = str(model_or_path)
    registry = get_registry()
    spec = registry.pretrained(name) if name in registry.entries["pretrained"] else None
    folder = resolve(name)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} has no config.json; push a folder saved by musezoo (a run's final/)")
    return folder, spec


def _metrics(metrics, folder: Path) -> dict:
    """Metrics for the card: given (dict or JSON file), else a run's test metrics from summary.json."""
    if isinstance(metrics, (str, Path)):
        metrics = read_json(metrics, "metrics file (the JSON `zoo eval --json` writes)", HubError)
    if metrics is None:
        summary = folder.parent / "summary.json"
        if folder.name == "final" and summary.is_file():
            try:
                metrics = read_json(summary, "summary.json", HubError).get("test_metrics") or {}
            except (HubError, AttributeError):
                metrics = {}
    if metrics is not None and not isinstance(metrics, dict):
        raise HubError("metrics must be a JSON object of name -> number, as `zoo eval --json` writes")
    return {str(k): v for k, v in (metrics or {}).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _upload(staged: Path, extra: list[str], repo_id: str, revision: str | None, private: bool, message: str,
            token) -> PushResult:
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    from zoo import hubnet

    api = HfApi(endpoint=endpoint(), token=token, library_name="musezoo")
    branch = revision or "main"
    try:
        with hubnet.call() as current:
            current.sending([p.stat().st_size for p in staged.iterdir()])   # uploads take time too
            api.create_repo(repo_id, private=private, exist_ok=True)
            if branch != "main":
                api.create_branch(repo_id, branch=branch, exist_ok=True)
            # Up go the model's files and those its manifest lists, nothing else. Model files of an earlier upload
            # that this one lacks (a dropped critic, say) go, so the repo is exactly this model; other files made on
            # the Hub stay. huggingface_hub leaves out the files that did not change (no empty commit).
            info = api.upload_folder(repo_id=repo_id, folder_path=staged, revision=branch, commit_message=message,
                                     allow_patterns=[*MODEL_FILE_PATTERNS, *(glob.escape(n) for n in extra)],
                                     delete_patterns=list(MODEL_FILE_PATTERNS))
    except hubnet.HubLimitError as exc:
        raise HubError(f"pushing to {repo_id}: {exc}; the Hub keeps a commit whole or not at all") from None
    except Exception as exc:
        if _is_unreachable(exc):
            raise HubError(f"cannot reach the Hub at {endpoint()} ({_first_line(exc, token)}); nothing was pushed, "
                           f"check your network or HF_ENDPOINT") from None
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
            raise HubError(f"the Hub refused to write to {repo_id} (HTTP {status}): set HF_TOKEN or run "
                           f"`hf auth login` with a token that has write access to it") from None
        if isinstance(exc, (HfHubHTTPError, ValueError, KeyError, TypeError, httpx2.HTTPError)):
            raise HubError(f"pushing to {repo_id} failed: {_first_line(exc, token)}") from None
        raise
    return PushResult(repo_id=repo_id, revision=branch, commit_id=info.oid, url=info.commit_url)


# -- the model card -------------------------------------------------------------------------------

def model_card(existing: str | None, repo_id: str, config: dict, spec=None, revision: str | None = None,
               metrics: dict | None = None) -> str:
    """The README.md to publish: Hub metadata merged into the existing card (zoo.card), plus a usage section."""
    arch = config["arch"]
    meta, text = cards.parse(existing)
    meta = cards.metadata(arch, meta, license=spec.license if spec is not None else None,
                          datasets=[spec.data] if spec is not None and spec.data else (), scores=metrics,
                          name=repo_id.split("/")[1])
    meta.license = meta.license or "other"
    body = text if text else f"# {repo_id.split('/')[1]}\n\n" + (
        f"{spec.description}\n" if spec is not None and spec.description else f"A `{arch}` model for musezoo.\n")
    section = _usage_section(repo_id, config, revision, metrics)
    if _BEGIN in body and _END in body:
        body = body[:body.index(_BEGIN)] + section + body[body.index(_END) + len(_END):]
    else:
        body = body.rstrip("\n") + "\n\n" + section + "\n"
    return cards.render(meta, body)


def _usage_section(repo_id: str, config: dict, revision: str | None, metrics: dict | None) -> str:
    name = f"hf://{repo_id}" + (f"@{revision}" if revision and revision != "main" else "")
    plugin = _plugin_of(config["arch"])
    rows = "".join(f"| {k} | {v:.4g} |\n" if isinstance(v, float) else f"| {k} | {v} |\n"
                   for k, v in (metrics or {}).items())
    metrics_md = f"\n## Metrics\n\n| metric | value |\n| --- | --- |\n{rows}" if rows else ""
    return f"""{_BEGIN}
## Use it with musezoo

```console
pip install musezoo{' ' + plugin if plugin else ''}
zoo generate {name} -o sample.mid --seed 0
```

```python
import zoo

model = zoo.load("{name}")
(midi,) = model.generate(num=1, seed=0)   # a list of num pieces
midi.write("sample.mid")
```

To pin this exact upload, put its commit id after `@` (`hf://{repo_id}@<commit>`): a pinned
name never changes under you. Architecture `{config['arch']}` (arch_version {config.get('arch_version')}),
saved with musezoo {config.get('zoo_version', __version__)}; every file's sha256 is in `manifest.json`
and is checked on download.
{metrics_md}{_END}"""


def _plugin_of(arch: str) -> str | None:
    """The distribution that provides an architecture here, to tell card readers what to install."""
    try:
        return get_registry().get("architectures", arch).plugin or None
    except Exception:
        return None
