"""Share models through the Hugging Face Hub: push with a model card, pull into the HF cache, hf:// names.

Everything goes through `huggingface_hub` (no hand-written HTTP). The endpoint, the cache and
offline mode are read from the environment at call time (HF_ENDPOINT, HF_HUB_CACHE / HF_HOME,
HF_HUB_OFFLINE); the token comes from the argument, HF_TOKEN or `hf auth login`, and is never
printed or logged. Every failure a user can cause is a HubError whose one-line message says
what to do.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from zoo.checkpoint import MODEL_FILE_PATTERNS  # exactly what a model is: never caches, .git, logs or strays
from zoo.errors import CheckpointError, HubError
from zoo.safeio import read_json

DEFAULT_ENDPOINT = "https://huggingface.co"
_HEAD_FILES = ("manifest.json", "config.json")  # fetched first; the manifest lists the rest
CARD_TAGS = ("music-generation", "symbolic-music", "midi")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
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
    """The Hub to talk to: $HF_ENDPOINT, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


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

    from zoo.progress import interactive

    if not interactive():
        disable_progress_bars()


def _redact(text: str, token) -> str:
    """Never let a token reach a message, whatever the server echoed."""
    secrets = {t for t in (token if isinstance(token, str) else None, os.environ.get("HF_TOKEN")) if t}
    for secret in secrets:
        text = text.replace(secret, "***")
    return " ".join(text.split())  # one line


def _first_line(exc: BaseException, token=None) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return _redact(lines[0] if lines else type(exc).__name__, token)


def _is_unreachable(exc: BaseException) -> bool:
    """Connection refused, DNS failure, timeout or a 5xx: the Hub is not there right now."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OfflineModeIsEnabled):
            return True
        if isinstance(exc, HfHubHTTPError):
            response = getattr(exc, "response", None)
            return response is not None and response.status_code >= 500
        name = type(exc).__name__
        if name in ("ConnectError", "ConnectTimeout", "ReadTimeout", "TimeoutException", "ReadError",
                    "RemoteProtocolError", "NetworkError", "PoolTimeout", "WriteTimeout") or isinstance(
                exc, (ConnectionError, TimeoutError)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


# -- pull -----------------------------------------------------------------------------------------

def pull(repo_id: str, revision: str | None = None, *, token=None) -> Path:
    """Download a model's files into the HF cache (or find them there), verify the manifest, return the folder."""
    repo_id, parsed_revision = parse_hf_name(repo_id)
    revision = revision or parsed_revision
    name = f"hf://{repo_id}" + (f"@{revision}" if revision else "")
    _quiet_unless_terminal()
    if offline():
        folder = _from_cache(repo_id, revision, token)
        if folder is None:
            raise HubError(f"HF_HUB_OFFLINE=1 and {name} is not in the Hugging Face cache ({cache_dir()}); "
                           f"run `zoo pull {repo_id}{'@' + revision if revision else ''}` once while online, "
                           f"or unset HF_HUB_OFFLINE")
    else:
        folder = _download(repo_id, revision, name, token)
    _verify(folder, name)
    return folder


def _snapshot(repo_id: str, revision: str | None, token, names, **kwargs) -> Path:
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir(), endpoint=endpoint(),
                                  allow_patterns=[glob.escape(n) for n in names], token=token, **kwargs))


def _listed(folder: Path) -> list[str] | None:
    """The model files a snapshot's manifest lists, with the manifest itself; None without a readable one."""
    from zoo.checkpoint import MANIFEST

    try:
        digests = read_json(folder / MANIFEST, "manifest.json", HubError)["sha256"]   # bounded, regular only
    except (HubError, KeyError, TypeError):
        return None
    if not isinstance(digests, dict):
        return None
    return sorted({MANIFEST, *(n for n in digests if isinstance(n, str) and "/" not in n and _is_model_file(n))})


def _from_cache(repo_id: str, revision: str | None, token) -> Path | None:
    """The cached snapshot for a revision if it holds every file its manifest lists, else None."""
    from huggingface_hub import errors

    incomplete = getattr(errors, "IncompleteSnapshotError", errors.LocalEntryNotFoundError)  # huggingface_hub >= 2
    try:
        folder = _snapshot(repo_id, revision, token, _HEAD_FILES, local_files_only=True)
    except (errors.LocalEntryNotFoundError, incomplete, FileNotFoundError):
        return None
    listed = _listed(folder)
    if listed is not None and not all((folder / n).is_file() for n in listed):
        return None
    return folder  # (without a manifest, _verify says it is not a musezoo model)


def _download(repo_id: str, revision: str | None, name: str, token) -> Path:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (GatedRepoError, HfHubHTTPError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    # A commit id never changes: a complete cached copy needs no network at all.
    if revision and _COMMIT.match(revision):
        cached = _from_cache(repo_id, revision, token)
        if cached is not None:
            return cached

    api = HfApi(endpoint=endpoint(), token=token, library_name="musezoo")
    try:
        commit = api.repo_info(repo_id, revision=revision or "main", timeout=TIMEOUT_S).sha
    except RevisionNotFoundError:
        raise HubError(_no_revision(repo_id, revision)) from None
    except GatedRepoError:
        raise HubError(f"{name} is gated: accept its terms on the Hub, then set HF_TOKEN or run `hf auth login`") from None
    except RepositoryNotFoundError:
        # The Hub answers "repo not found" for an unknown revision too; ask once more to tell which.
        if revision and _repo_exists(api, repo_id):
            raise HubError(_no_revision(repo_id, revision)) from None
        raise HubError(f"{name}: no such model repo on {endpoint()} (or it is private: set HF_TOKEN or run "
                       f"`hf auth login` with access to it)") from None
    except Exception as exc:
        if not _is_unreachable(exc) and not isinstance(exc, HfHubHTTPError):
            raise
        if not _is_unreachable(exc):
            raise HubError(f"{name}: the Hub answered {_first_line(exc, token)}; check the name and your token") from None
        if revision and isinstance(exc, HfHubHTTPError) and _repo_exists(api, repo_id):
            raise HubError(_no_revision(repo_id, revision)) from None  # the server choked on the revision only
        cached = _from_cache(repo_id, revision, token)
        reason = _first_line(exc, token)
        if cached is None:
            raise HubError(f"cannot reach the Hub at {endpoint()} ({reason}) and {name} is not in the cache; "
                           f"check your network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use cached models only") from None
        print(f"zoo: warning: cannot reach the Hub at {endpoint()} ({reason}); using the cached copy of {name} "
              f"(commit {cached.name[:12]})", file=sys.stderr)
        return cached

    snapshot = cache_dir() / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    existed = snapshot.is_dir()
    try:
        # The manifest first: it names the files to fetch, so nothing else in the repo is downloaded.
        folder = _snapshot(repo_id, commit, token, _HEAD_FILES)
        listed = _listed(folder)
        if listed is None:
            if not existed:
                shutil.rmtree(snapshot, ignore_errors=True)
            return folder  # _verify: not a musezoo model
        folder = _snapshot(repo_id, commit, token, listed)
    except BaseException as exc:
        # huggingface_hub renames each file into place only when complete; also drop a snapshot
        # folder this call started, so no half model sits under a final name.
        if not existed:
            shutil.rmtree(snapshot, ignore_errors=True)
        if isinstance(exc, Exception) and (_is_unreachable(exc) or isinstance(exc, (OSError, HfHubHTTPError))):
            raise HubError(f"downloading {name} failed ({_first_line(exc, token)}); nothing was kept, "
                           f"run the command again") from None
        raise
    _remember_ref(folder, revision or "main", commit)
    return folder


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


def _remember_ref(folder: Path, revision: str, commit: str) -> None:
    """Record branch/tag -> commit in the cache's refs/ (as huggingface_hub does), so offline use finds it."""
    if _COMMIT.match(revision):
        return
    ref = folder.parent.parent / "refs" / revision
    try:
        ref.parent.mkdir(parents=True, exist_ok=True)
        if not ref.is_file() or ref.read_text() != commit:
            tmp = ref.with_name(f".{ref.name}.{os.getpid()}.tmp")
            tmp.write_text(commit)
            os.replace(tmp, ref)
    except OSError:
        pass  # the download is complete and verified; only later offline lookups by branch name suffer


def _verify(folder: Path, name: str) -> None:
    """Check the sha256 manifest; a bad copy is evicted from the cache and reported."""
    from zoo import checkpoint

    manifest = folder / checkpoint.MANIFEST
    if not manifest.is_file() or not (folder / "config.json").is_file():
        raise HubError(f"{name} is not a musezoo model (no config.json and manifest.json); "
                       f"publish models with `zoo push`")
    try:
        expected = read_json(manifest, "manifest.json", HubError)["sha256"]   # bounded, regular files only
        bad = [n for n, digest in expected.items()
               if "/" not in n and (folder / n).is_file() and checkpoint.sha256_file(folder / n) != digest]
    except (ValueError, KeyError, TypeError, AttributeError):
        bad = []
    if bad:
        _evict(folder, bad)
        raise HubError(f"{name}: {', '.join(sorted(bad))} does not match the sha256 in its manifest, so the copy on "
                       f"the Hub is corrupt or was changed without its manifest; the cached copy was deleted. "
                       f"Ask the publisher to push again, or pin a known-good commit")
    try:
        checkpoint.verify(folder)
    except CheckpointError as exc:
        raise HubError(f"{name}: {exc}") from None


def _evict(folder: Path, names) -> None:
    """Remove a snapshot and the blobs of its bad files, so the next pull fetches them afresh."""
    for n in names:
        link = folder / n
        try:
            blob = link.resolve()
            if blob.is_file() and "blobs" in blob.parts:
                blob.unlink()
        except OSError:
            pass
    shutil.rmtree(folder, ignore_errors=True)


# -- push -----------------------------------------------------------------------------------------

def push_to_hub(model_or_path, repo_id: str, revision: str | None = None, private: bool = False,
                message: str | None = None, token=None, metrics=None) -> PushResult:
    """Publish a model (object, saved folder, run's final/ or pretrained name) with its card; return the commit."""
    check_repo_id(repo_id)
    _quiet_unless_terminal()
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        source, spec = _source_folder(model_or_path, Path(tmp) / "saved")
        from zoo import checkpoint

        checkpoint.verify(source)  # never publish a corrupt folder
        config = checkpoint.read_config(source)
        staged = Path(tmp) / "upload"
        staged.mkdir()
        for path in sorted(source.iterdir()):
            if _is_model_file(path.name) and _own_file(path, source) and path.name not in ("README.md", checkpoint.MANIFEST):
                shutil.copy2(path, staged / path.name)
        card_path = source / "README.md"
        old_card = None
        if _own_file(card_path, source):   # a README.md linked to a secret file was published as the card
            from zoo.safeio import read_bytes

            old_card = read_bytes(card_path, 1 << 20, "model card (README.md)", HubError).decode("utf-8", "replace")
        card = model_card(old_card, repo_id=repo_id, config=config, spec=spec, revision=revision,
                          metrics=_metrics(metrics, source))
        (staged / "README.md").write_text(card, encoding="utf-8")
        checkpoint.write_manifest(staged)  # the card changed, so the manifest is rewritten over exactly these files
        return _upload(staged, repo_id, revision, private, message or f"Upload {config['arch']} model with musezoo",
                       token)


def _own_file(path: Path, folder: Path) -> bool:
    """True for a regular file of the folder; False when absent. A symlink counts only when it points into the
    folder or into the zoo's Hub cache (pulled snapshots are links to cached blobs); any other link, and
    anything that is not a regular file, is refused: push publishes the folder's own files, nothing else."""
    if not path.is_symlink():
        if path.exists() and not path.is_file():
            raise HubError(f"{path}: not a regular file (a device, FIFO or folder); push only model folders")
        return path.is_file()
    target = path.resolve()
    roots = [folder.resolve(), cache_dir().resolve()]
    if target.is_file() and any(target.is_relative_to(root) for root in roots):
        return True
    raise HubError(f"{path}: a symlink to {target}, outside the model folder; push publishes only the folder's own "
                   f"files (replace the link with a copy of the file)")


def _is_model_file(name: str) -> bool:
    from fnmatch import fnmatchcase

    return any(fnmatchcase(name, p) for p in MODEL_FILE_PATTERNS)


def _source_folder(model_or_path, scratch: Path):
    """A local folder for what is being pushed, and its pretrained spec when it has one."""
    from zoo.registry import get_registry, resolve

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


def _upload(staged: Path, repo_id: str, revision: str | None, private: bool, message: str, token) -> PushResult:
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = HfApi(endpoint=endpoint(), token=token, library_name="musezoo")
    branch = revision or "main"
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        if branch != "main":
            api.create_branch(repo_id, branch=branch, exist_ok=True)
        ops = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in sorted(staged.iterdir())]
        # Model files of an earlier upload that this one lacks (a dropped critic, say) go, so the
        # repo is exactly this model; README edits and other files made on the Hub stay.
        remote = api.repo_info(repo_id, revision=branch, timeout=TIMEOUT_S).siblings or []
        ops += [CommitOperationDelete(path_in_repo=f.rfilename) for f in remote
                if "/" not in f.rfilename and _is_model_file(f.rfilename) and not (staged / f.rfilename).exists()]
        info = api.create_commit(repo_id, ops, commit_message=message, revision=branch)
    except Exception as exc:
        if _is_unreachable(exc):
            raise HubError(f"cannot reach the Hub at {endpoint()} ({_first_line(exc, token)}); nothing was pushed, "
                           f"check your network or HF_ENDPOINT") from None
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if isinstance(exc, RepositoryNotFoundError) or status in (401, 403):
            raise HubError(f"the Hub refused to write to {repo_id} (HTTP {status}): set HF_TOKEN or run "
                           f"`hf auth login` with a token that has write access to it") from None
        if isinstance(exc, (HfHubHTTPError, ValueError)):
            raise HubError(f"pushing to {repo_id} failed: {_first_line(exc, token)}") from None
        raise
    return PushResult(repo_id=repo_id, revision=branch, commit_id=info.oid, url=info.commit_url)


# -- the model card -------------------------------------------------------------------------------

def model_card(existing: str | None, repo_id: str, config: dict, spec=None, revision: str | None = None,
               metrics: dict | None = None) -> str:
    """The README.md to publish: Hub metadata merged into the existing card (zoo.card), plus a usage section."""
    from zoo import card as cards

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
    from zoo import __version__

    name = f"hf://{repo_id}" + (f"@{revision}" if revision and revision != "main" else "")
    plugin = _plugin_of(config["arch"])
    rows = "".join(f"| {k} | {v:.4g} |\n" if isinstance(v, float) else f"| {k} | {v} |\n" for k, v in (metrics or {}).items())
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
        from zoo.registry import get_registry

        return get_registry().get("architectures", arch).plugin or None
    except Exception:
        return None
