"""The Hugging Face Hub, brought to loopback.

Downloads run against olah (a real, self-hosted Hub mirror from PyPI) in offline mode, serving
git repos from its mirrors-path; `huggingface_hub` reaches it through HF_ENDPOINT exactly as it
would reach huggingface.co. Uploads go to a STAND-IN for the Hub's write API
(tests/hubserver/standin.py), which commits into olah's mirrors-path, so push -> olah -> pull is
a full round trip through the real client. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ZOO
from zoo.checkpoint import write_manifest
from zoo.errors import ZooError
from zoo.testing import cli_in_process, one_error_line

try:
    from tests.hubserver import gitrepo
    from tests.hubserver.olah_server import OlahServer, free_port
    from tests.hubserver.proxy import HubProxy
    from tests.hubserver.standin import HubStandIn
except ImportError:  # tests/ run as rootdir-less modules
    from hubserver import gitrepo
    from hubserver.olah_server import OlahServer, free_port
    from hubserver.proxy import HubProxy
    from hubserver.standin import HubStandIn

TOKEN = "hf_TESTtokenNeverPrinted0123456789"


@pytest.fixture(scope="module")
def olah(tmp_path_factory):
    """One olah for the module; each test uses its own repo names."""
    with OlahServer(tmp_path_factory.mktemp("olah")) as server:
        yield server


@pytest.fixture
def hub_env(olah, tmp_path, monkeypatch):
    """This process and `zoo` subprocesses talk to olah, with a fresh HF cache and HF home."""
    for var in ("HF_HUB_OFFLINE", "HF_TOKEN", "HF_HUB_CACHE", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", olah.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "60")  # generous: CI machines can be busy
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "60")
    # huggingface_hub reads some settings once, at import: make this process hermetic too
    # (no telemetry look-ups sent towards the default endpoint, no offline mode left over).
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", olah.url)
    # file downloads build their URL from a template fixed at import time, whatever endpoint= says:
    # without this, a second olah (another test module) would be asked at the first one's dead port
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", olah.url + "/{repo_id}/resolve/{revision}/{filename}")
    return tmp_path / "hf-cache"


@pytest.fixture
def saved(tiny_model, tmp_path):
    """The tiny model saved locally: the reference every Hub copy is compared with."""
    return tiny_model.save_pretrained(tmp_path / "local")


def _repo(request, suffix=""):
    """A repo id unique to the test, so the module's one olah serves every test."""
    name = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")[:80]
    return f"zoo-tests/{name}{suffix}"


def _one_line_error(done):
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error:"), done.stderr
    return lines[0]


def _generate(zoo_cli, name, out):
    """`zoo generate NAME --seed 7` as a subprocess; the MIDI bytes."""
    done = zoo_cli("generate", name, "-o", out, "--seed", 7, "--length", 24)
    assert done.returncode == 0, done.stderr
    return Path(out).read_bytes()


_REFERENCE: dict[str, bytes] = {}


def _local_midi(zoo_cli, folder, tmp_path):
    """The same command on the local weights (run once per distinct weights: subprocesses are slow)."""
    from zoo.checkpoint import sha256_file

    key = sha256_file(Path(folder) / "model.safetensors")
    if key not in _REFERENCE:
        _REFERENCE[key] = _generate(zoo_cli, folder, tmp_path / "local-reference.mid")
    return _REFERENCE[key]


# -- download path against olah --------------------------------------------------------------------

def test_pull_and_generate_match_local_weights(hub_env, olah, saved, zoo_cli, tmp_path, request):
    repo = _repo(request)
    commit = olah.publish_folder(repo, saved)

    done = zoo_cli("pull", repo)
    assert done.returncode == 0, done.stderr
    folder = Path(done.stdout.strip())
    assert folder == hub_env / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in saved.iterdir())
    for p in saved.iterdir():
        assert (folder / p.name).read_bytes() == p.read_bytes(), p.name
    # The weights came through git LFS, as from huggingface.co: the cache names their blob by sha256.
    from zoo.checkpoint import sha256_file

    assert (folder / "model.safetensors").resolve().name == sha256_file(saved / "model.safetensors")

    assert _generate(zoo_cli, f"hf://{repo}@{commit}", tmp_path / "hub.mid") == _local_midi(zoo_cli, saved, tmp_path)


def test_only_model_files_are_fetched(hub_env, olah, saved, tmp_path, request):
    from zoo import hub

    repo = _repo(request)
    olah.publish_folder(repo, saved, overrides={"notes.txt": b"stray", "weights.bin": b"pickle!", ".gitattributes": b"",
                                                "unlisted.safetensors": b"not in the manifest"})
    folder = hub.pull(repo)
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in saved.iterdir())


def test_revision_pinned_to_a_commit_never_changes(hub_env, olah, saved, tiny, tmp_path, request):
    import torch

    import zoo
    from zoo import hub, loader, registry

    repo = _repo(request)
    first = olah.publish_folder(repo, saved, message="v1")
    gitrepo.tag(olah.repo_dir(repo), "v1", first)
    torch.manual_seed(1)
    retrained = zoo.create("tiny-lm").save_pretrained(tmp_path / "retrained")
    second = olah.publish_folder(repo, retrained, message="v2")
    assert first != second

    pinned = hub.pull(repo, first)
    assert pinned.name == first
    assert (pinned / "model.safetensors").read_bytes() == (saved / "model.safetensors").read_bytes()
    assert hub.pull(f"hf://{repo}@v1") == pinned                     # a tag resolves too
    assert hub.pull(repo).name == second                              # main moved on
    assert (hub.pull(repo) / "model.safetensors").read_bytes() == (retrained / "model.safetensors").read_bytes()

    # A pretrained spec that names the repo and a pinned commit loads that commit, whatever main says.
    class Pinned:
        @zoo.hookimpl
        def register_pretrained(register):
            register(zoo.PretrainedSpec(name="tiny-pinned", arch="tiny-lm", hub_repo=repo, revision=first))

    registry.register_plugin(Pinned, "pinned-spec")
    try:
        assert loader.resolve("tiny-pinned") == pinned
        model = zoo.load("tiny-pinned", device="cpu")
        assert torch.equal(model.head.weight, zoo.load(str(saved), device="cpu").head.weight)
    finally:
        registry._EXTRA.remove(("pinned-spec", Pinned))
        registry.reset()


def test_missing_repo(hub_env, zoo_cli, request):
    from zoo import hub
    from zoo.errors import HubError

    with pytest.raises(HubError, match="no such model repo"):
        hub.pull(_repo(request))
    line = _one_line_error(zoo_cli("pull", _repo(request)))
    assert "no such model repo" in line and "HF_TOKEN" in line


@pytest.mark.parametrize("revision", ["no-such-branch", "0123456789abcdef0123456789abcdef01234567"])
def test_missing_revision(hub_env, olah, saved, zoo_cli, revision, request):
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    olah.publish_folder(repo, saved)
    with pytest.raises(HubError, match=f"has no revision '{revision}'"):
        hub.pull(repo, revision)
    assert "has no revision" in _one_line_error(zoo_cli("pull", f"{repo}@{revision}"))
    assert not list(hub_env.glob("models--*/snapshots/*"))


def test_corrupted_file_fails_the_manifest_and_is_not_kept(hub_env, olah, saved, zoo_cli, tmp_path, request):
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    weights = bytearray((saved / "model.safetensors").read_bytes())
    weights[-1] ^= 0xFF  # same size, one flipped byte: still loads as safetensors, only the sha256 tells
    olah.publish_folder(repo, saved, overrides={"model.safetensors": bytes(weights)})
    with pytest.raises(HubError, match=r"model\.safetensors does not match the sha256"):
        hub.pull(repo)
    assert not list(hub_env.glob("models--*/snapshots/*"))  # nothing bad left under a final name
    line = _one_line_error(zoo_cli("generate", f"hf://{repo}", "-o", tmp_path / "x.mid"))
    assert "sha256" in line and not (tmp_path / "x.mid").exists()


def test_not_a_musezoo_repo(hub_env, olah, tmp_path, request):
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "README.md").write_text("# someone else's model\n")
    olah.publish_folder(repo, tmp_path / "other")
    with pytest.raises(HubError, match="not a musezoo model"):
        hub.pull(repo)


def test_bad_names(hub_env):
    from zoo import hub
    from zoo.errors import HubError

    for bad in ("hf://just-a-name", "hf://a/b/c", "hf://", "hf://org/bad name"):
        with pytest.raises(HubError, match="org/name"):
            hub.pull(bad)


def test_server_down_uses_the_cache_or_says_so(hub_env, olah, saved, zoo_cli, request, monkeypatch, capsys):
    import zoo
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    olah.publish_folder(repo, saved)
    cached = hub.pull(repo)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there

    capsys.readouterr()
    assert hub.pull(repo) == cached
    warning = capsys.readouterr().err.strip().splitlines()
    assert len(warning) == 1 and "cannot reach the Hub" in warning[0] and "cached copy" in warning[0]
    assert zoo.load(f"hf://{repo}", device="cpu").source == cached

    with pytest.raises(HubError, match="cannot reach the Hub .* not in the cache"):
        hub.pull(repo + "-never-pulled")
    line = _one_line_error(zoo_cli("pull", repo + "-never-pulled"))
    assert "cannot reach the Hub" in line
    assert not (hub_env / f"models--{(repo + '-never-pulled').replace('/', '--')}" / "snapshots").exists()


def test_offline_mode(hub_env, olah, saved, zoo_cli, tmp_path, request, monkeypatch):
    import zoo
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    commit = olah.publish_folder(repo, saved)
    hub.pull(repo)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # any request would fail

    assert hub.pull(repo).name == commit
    assert hub.pull(repo, commit).name == commit
    assert zoo.load(f"hf://{repo}", device="cpu").source.name == commit

    with pytest.raises(HubError, match="HF_HUB_OFFLINE=1 and .* is not in the Hugging Face cache"):
        hub.pull(repo + "-elsewhere")
    line = _one_line_error(zoo_cli("generate", f"hf://{repo}-elsewhere", "-o", tmp_path / "x.mid"))
    assert "HF_HUB_OFFLINE" in line


# -- upload path: stand-in write API -> olah -> pull ---------------------------------------------------

@pytest.fixture
def standin(olah):
    """The STAND-IN for the Hub's write API (see tests/hubserver/standin.py), writing into olah's mirrors."""
    with HubStandIn(olah.mirrors, token=TOKEN) as server:
        yield server


def test_push_then_pull_round_trip(hub_env, olah, standin, tiny_model, zoo_cli, tmp_path, request):
    """Round trip through the real client: `zoo push` -> Hub write-API STAND-IN -> git repo -> olah -> `zoo pull`.

    The write side is a stand-in (the real Hub cannot be reached from here); the read side is olah.
    """
    repo = _repo(request)
    saved = tiny_model.save_pretrained(tmp_path / "run" / "final")  # as `zoo train` leaves it
    # Things a run folder may hold that must never be published.
    (saved / "notes.txt").write_text("scratch")
    (saved / ".cache").mkdir()
    (saved / ".cache" / "x").write_text("cache")
    (saved.parent / "summary.json").write_text(json.dumps({"test_metrics": {"loss": 0.5}}))

    done = zoo_cli("push", saved, repo, "--message", "first upload", env={"HF_ENDPOINT": standin.url, "HF_TOKEN": TOKEN})
    assert done.returncode == 0, done.stderr
    commit, url = done.stdout.split()
    assert url == f"{standin.url}/{repo}/commit/{commit}"
    assert TOKEN not in done.stdout + done.stderr
    assert standin.auth_seen and all(standin.auth_seen)  # the token went in the Authorization header

    files = gitrepo.files_at(olah.repo_dir(repo), commit)
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "manifest.json", "model.safetensors",
                             "tokenizer.json"]
    card = gitrepo.git(olah.repo_dir(repo), "show", f"{commit}:README.md")
    assert "library_name: musezoo" in card and "- tiny-lm" in card and "- music-generation" in card
    assert f"zoo generate hf://{repo}" in card and f'zoo.load("hf://{repo}")' in card and "| loss | 0.5 |" in card

    pulled = zoo_cli("pull", f"{repo}@{commit}")
    assert pulled.returncode == 0, pulled.stderr
    folder = Path(pulled.stdout.strip())
    for name in ("config.json", "model.safetensors", "tokenizer.json"):  # the same bytes generate the same
        assert (folder / name).read_bytes() == (saved / name).read_bytes()  # MIDI (checked by the first test)


def test_push_python_api_branch_private_and_card_update(hub_env, olah, standin, tiny_model, saved, request, monkeypatch):
    import zoo
    from zoo import hub

    repo = _repo(request)
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    (saved / "README.md").write_text("---\nlicense: mit\ntags:\n- chorales\n---\n# My tiny model\n\nHand-written notes.\n")
    from zoo.checkpoint import write_manifest

    write_manifest(saved)
    first = zoo.push_to_hub(saved, repo, revision="v1", private=True, token=TOKEN, metrics={"nll": 1.25})
    assert first.revision == "v1" and standin.visibility[repo] == "private"
    assert gitrepo.resolve(olah.repo_dir(repo), "refs/heads/v1") == first.commit_id

    again = zoo.push_to_hub(saved, repo, revision="v1", token=TOKEN, metrics={"nll": 1.25})
    assert again.commit_id == first.commit_id  # same files and card: nothing new to commit
    from_object = zoo.push_to_hub(tiny_model, repo, token=TOKEN)  # a model object, not a folder, to main
    assert gitrepo.resolve(olah.repo_dir(repo), "refs/heads/main") == from_object.commit_id != first.commit_id

    # A model file an earlier upload had and this one lacks is removed: the repo is exactly the model.
    (saved / "critic.safetensors").write_bytes((saved / "model.safetensors").read_bytes())
    write_manifest(saved)
    with_critic = zoo.push_to_hub(saved, repo, revision="v1", token=TOKEN, metrics={"nll": 1.25})
    assert "critic.safetensors" in gitrepo.files_at(olah.repo_dir(repo), with_critic.commit_id)
    (saved / "critic.safetensors").unlink()
    write_manifest(saved)
    without = zoo.push_to_hub(saved, repo, revision="v1", token=TOKEN, metrics={"nll": 1.25})
    assert "critic.safetensors" not in gitrepo.files_at(olah.repo_dir(repo), without.commit_id)

    monkeypatch.setenv("HF_ENDPOINT", olah.url)
    folder = hub.pull(repo, "v1")
    card = (folder / "README.md").read_text()
    assert "license: mit" in card and "- chorales" in card and "Hand-written notes." in card
    assert "- nll" in card and "model-index" in card and "hf://" + repo + "@v1" in card
    assert card.count("<!-- musezoo:begin -->") == 1
    assert hub.model_card(card, repo, json.loads((folder / "config.json").read_text()), revision="v1",
                          metrics={"nll": 1.25}) == card  # updating a card is idempotent


def test_a_model_object_pushes_itself_as_transformers_models_do(hub_env, olah, standin, tiny_model, saved, request,
                                                              monkeypatch):
    """model.push_to_hub(repo_id, ...) is zoo.push_to_hub(model, repo_id, ...): the same files, on the branch asked."""
    repo = _repo(request)
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    pushed = tiny_model.push_to_hub(repo, revision="v1", token=TOKEN)
    assert pushed.revision == "v1" and gitrepo.resolve(olah.repo_dir(repo), "refs/heads/v1") == pushed.commit_id
    files = gitrepo.files_at(olah.repo_dir(repo), pushed.commit_id)
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= set(files)
    from zoo import hub

    monkeypatch.setenv("HF_ENDPOINT", olah.url)
    folder = hub.pull(repo, "v1")
    assert (folder / "model.safetensors").read_bytes() == (saved / "model.safetensors").read_bytes()


def test_push_errors(hub_env, standin, saved, zoo_cli, tmp_path, request, monkeypatch):
    from zoo import hub
    from zoo.errors import CheckpointError, HubError

    repo = _repo(request)
    env = {"HF_ENDPOINT": standin.url}
    line = _one_line_error(zoo_cli("push", saved, repo, env=env))  # no HF_TOKEN, empty HF_HOME: refused
    assert "HF_TOKEN" in line and "write access" in line
    line = _one_line_error(zoo_cli("push", saved, repo, env={**env, "HF_TOKEN": "hf_wrongWrongWrong"}))
    assert "hf_wrongWrongWrong" not in line
    line = _one_line_error(zoo_cli("push", saved, repo, env={"HF_ENDPOINT": f"http://127.0.0.1:{free_port()}",
                                                             "HF_TOKEN": TOKEN}))
    assert "cannot reach the Hub" in line and TOKEN not in line

    line = _one_line_error(zoo_cli("push", saved, repo, "--metrics", tmp_path / "missing.json",
                                   env={**env, "HF_TOKEN": TOKEN}))
    assert "zoo eval --json" in line
    monkeypatch.setenv("HF_ENDPOINT", standin.url)
    with pytest.raises(HubError, match="JSON object"):
        hub.push_to_hub(saved, repo, token=TOKEN, metrics=[1, 2])
    with pytest.raises(HubError, match="org/name"):
        hub.push_to_hub(saved, "no-org", token=TOKEN)
    (saved / "tokenizer.json").write_text("{}")  # corrupt: never publish it
    with pytest.raises(CheckpointError, match="sha256"):
        hub.push_to_hub(saved, repo, token=TOKEN)


def test_interrupted_download_leaves_nothing_under_a_final_name(hub_env, olah, saved, request, monkeypatch):
    import httpx2
    from huggingface_hub import _snapshot_download

    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    commit = olah.publish_folder(repo, saved)
    real = _snapshot_download.hf_hub_download

    def dropping(repo_id, filename, **kwargs):  # the connection dies on the weights, after other files landed
        if filename == "model.safetensors":
            raise httpx2.ConnectError("connection reset while downloading")
        return real(repo_id, filename, **kwargs)

    monkeypatch.setattr(_snapshot_download, "hf_hub_download", dropping)
    with pytest.raises(HubError, match="nothing was kept, run the command again"):
        hub.pull(repo)
    snapshots = hub_env / f"models--{repo.replace('/', '--')}" / "snapshots"
    assert not (snapshots / commit).exists()
    blobs = hub_env / f"models--{repo.replace('/', '--')}" / "blobs"   # (gone with the revision it served)
    assert not (blobs.is_dir() and [p for p in blobs.iterdir() if p.name.endswith(".incomplete")])
    monkeypatch.setattr(_snapshot_download, "hf_hub_download", real)
    assert hub.pull(repo) == snapshots / commit  # and running it again completes it


def test_push_a_pretrained_name_carries_its_license_and_data(hub_env, olah, standin, saved, tmp_path, request,
                                                             monkeypatch):
    import shutil

    import zoo
    from zoo import hub, registry

    class Spec:
        @zoo.hookimpl
        def register_pretrained(register):
            register(zoo.PretrainedSpec(name="tiny-bach", arch="tiny-lm", description="Scales, Bach-style.",
                                        license="mit", data="jsb-chorales"))

    shutil.copytree(saved, tmp_path / "weights" / "tiny-bach")
    monkeypatch.setenv("ZOO_WEIGHTS_DIR", str(tmp_path / "weights"))
    registry.register_plugin(Spec, "spec-plugin")
    try:
        monkeypatch.setenv("HF_ENDPOINT", standin.url)
        result = hub.push_to_hub("tiny-bach", _repo(request), token=TOKEN)
    finally:
        registry._EXTRA.remove(("spec-plugin", Spec))
        registry.reset()
    card = gitrepo.git(olah.repo_dir(_repo(request)), "show", f"{result.commit_id}:README.md")
    assert "license: mit" in card and "datasets:\n- jsb-chorales" in card
    assert (tmp_path / "weights" / "tiny-bach" / "README.md").read_bytes() == (saved / "README.md").read_bytes()


# -- a Hub that lies (issue 26): a proxy in front of olah changes its answers ----------------------------

@contextmanager
def lying_hub(monkeypatch, olah, rewrite=None, forward=None):
    """Point this process (and `zoo` subprocesses) at a HubProxy in front of olah."""
    from huggingface_hub import constants

    with HubProxy(olah.url, rewrite, forward) as proxy:
        monkeypatch.setenv("HF_ENDPOINT", proxy.url)
        monkeypatch.setattr(constants, "ENDPOINT", proxy.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", proxy.url + "/{repo_id}/resolve/{revision}/{filename}")
        yield proxy


def _with_header(headers: dict, name: str, value) -> dict:
    """headers with `name` (any case) set to value, or removed when value is None."""
    out = {k: v for k, v in headers.items() if k.lower() != name.lower()}
    return out if value is None else {**out, name: value}


def test_files_come_from_the_commit_that_was_checked(hub_env, olah, saved, tmp_path, request, monkeypatch):
    """zoo asks for the commit id once, checks it, and downloads exactly that commit. Before: huggingface_hub
    asked again and trusted the second answer, so a sha of '../../../victim' wrote trees/<sha>.json outside
    the cache."""
    from urllib.parse import quote

    from zoo import hub

    repo = _repo(request)
    commit = olah.publish_folder(repo, saved)
    hostile, asked = "../../../victim", []

    def rewrite(method, path, status, headers, body):
        if "/revision/" in path:
            asked.append(path)
            if len(asked) > 1:   # the first answer is honest, every later one is not
                body = json.dumps({**json.loads(body), "sha": hostile}).encode()
        return status, headers, body

    def forward(method, path):   # and the lie holds up: its 'commit' serves the real files
        return path.replace(quote(hostile, safe=""), commit)

    with lying_hub(monkeypatch, olah, rewrite, forward):
        folder = hub.pull(repo)
    assert folder == hub_env / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    assert len(asked) == 1, asked
    assert not list(tmp_path.rglob("victim*"))
    assert (folder.parent.parent / "refs" / "main").read_text() == commit   # main still works offline


@pytest.mark.parametrize("revision", ["../../../escaped", "/tmp/escaped", "..", "v1/../../escaped", "a\\b",
                                      "main\n", "x\x1b[2J", "a//b", ".hidden", "-x"],
                         ids=["up", "absolute", "dotdot", "inner-up", "backslash", "newline", "escape", "empty-part",
                              "dot", "dash"])
def test_a_revision_that_is_not_a_plain_name_is_refused_before_any_request(hub_env, olah, saved, tmp_path,
                                                                           request, monkeypatch, capsys, revision):
    """Before: 'org/m@../../../escaped' wrote refs/../../../escaped, a file outside the cache (this Hub answers
    any revision as main, so the old code went that far)."""
    from urllib.parse import quote

    from zoo import hub
    from zoo.cli import main
    from zoo.errors import HubError

    repo = _repo(request)
    olah.publish_folder(repo, saved)
    with lying_hub(monkeypatch, olah, forward=lambda method, path: path.replace(quote(revision, safe=""), "main")) \
            as proxy:
        for call in (lambda: hub.pull(f"{repo}@{revision}"), lambda: hub.pull(repo, revision)):
            with pytest.raises(HubError, match="is not a branch, tag or commit id"):
                call()
        assert main(["pull", f"{repo}@{revision}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a branch, tag or commit id" in err, err
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        with pytest.raises(HubError, match="is not a branch, tag or commit id"):
            hub.pull(f"{repo}@{revision}")
    assert proxy.requests == []
    assert not list(tmp_path.rglob("escaped*")) and not list(tmp_path.rglob("*--*/refs/*"))


@pytest.mark.parametrize("header", ["ETag", "X-Linked-Etag", "X-Repo-Commit"])
def test_a_file_header_that_names_a_path_is_refused(hub_env, olah, saved, tmp_path, request, monkeypatch, header):
    """huggingface_hub stores a file as blobs/<its ETag>: '../../../etag-victim' wrote outside the cache, so zoo
    refuses it. It links the file from snapshots/<X-Repo-Commit>/, and refuses a path there itself."""
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    olah.publish_folder(repo, saved)

    def rewrite(method, path, status, headers, body):
        if method == "HEAD" and path.endswith("/model.safetensors"):
            headers = _with_header(_with_header(headers, "X-Linked-Etag", None), header, '"../../../etag-victim"')
        return status, headers, body

    says = f"answered {header.lower()} " if header.lower().endswith("etag") else "did not answer as a Hugging Face Hub"
    with lying_hub(monkeypatch, olah, rewrite):
        with pytest.raises(HubError, match=says) as err:
            hub.pull(repo)
    assert "etag-victim" in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.rglob("etag-victim*"))
    assert not list(hub_env.glob("models--*/snapshots/*"))


def test_a_declared_size_never_moves_the_deadline():
    """Only bytes that arrive move a call's deadline on, for at most ZOO_HUB_MAX_BYTES of them. Before: 1 s per
    128 KiB the server declared, so declaring 1 GiB made ZOO_HUB_TIMEOUT=2 into 8,194 s."""
    from zoo import hubnet
    from zoo.limits import HUB_MIN_RATE

    current = hubnet.Call(2.0, most_bytes=4 * HUB_MIN_RATE)
    try:
        current.expect([2 ** 30])
        assert current.seconds == 2.0 and current.max_body == 2 ** 30
        current.received(HUB_MIN_RATE)
        assert current.seconds == pytest.approx(3.0)
        current.received(10 ** 9)                     # the user's cap bounds how far arriving bytes move it
        assert current.seconds == pytest.approx(6.0)
    finally:
        current.close()


def test_a_large_file_sent_a_byte_a_second_stops_at_the_timeout(
        hub_env, olah, saved, tmp_path, request, monkeypatch):
    repo = _repo(request)
    olah.publish_folder(repo, saved)
    big, dripping = 2 ** 30, []

    def drip():
        dripping.append(True)
        for _ in range(600):
            yield b"\0"
            time.sleep(1)

    def rewrite(method, path, status, headers, body):
        if "/paths-info/" in path:
            infos = json.loads(body)
            for info in infos:
                if info["path"] == "model.safetensors":
                    info["size"] = big
                    if info.get("lfs"):
                        info["lfs"]["size"] = big
            body = json.dumps(infos).encode()
        elif path.endswith("/model.safetensors"):
            headers = _with_header(_with_header(headers, "X-Linked-Size", str(big)), "Content-Length", str(big))
            body = body if method == "HEAD" else drip()
        return status, headers, body

    with lying_hub(monkeypatch, olah, rewrite):
        t0 = time.monotonic()
        done = subprocess.run([ZOO, "pull", repo], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "ZOO_HUB_TIMEOUT": "8"})
        elapsed = time.monotonic() - t0
    line = _one_line_error(done)
    assert dripping, f"the download of the large file never started: {line}"
    assert "did not finish answering within 8 s" in line, line
    assert elapsed < 40, f"{elapsed:.0f} s"   # 8 s, and a busy machine's start-up
    assert not list(hub_env.glob("models--*/snapshots/*"))


DISK_FULL = """
    import collections, errno, shutil
    from huggingface_hub import file_download

    shutil.disk_usage = lambda path: collections.namedtuple("usage", "total used free")(1 << 30, 1 << 30, 0)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    file_download.http_get = full
"""


def test_a_full_disk_during_pull_is_one_line(hub_env, olah, saved, tmp_path, request):
    """huggingface_hub warns over several lines when the disk looks too small, then fails: the user sees zoo's
    one line only, and it says what to do."""
    repo = _repo(request)
    olah.publish_folder(repo, saved)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(textwrap.dedent(DISK_FULL))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([ZOO, "pull", repo], capture_output=True, text=True, timeout=120, env=env)
    line = _one_line_error(done)
    assert "No space left on device" in line and "free some disk space" in line, line
    assert not list(hub_env.glob("models--*/snapshots/*"))


def test_files_larger_than_zoo_hub_max_bytes_are_refused_before_download(hub_env, olah, saved, request, monkeypatch):
    from zoo import hub
    from zoo.errors import HubError

    repo = _repo(request)
    olah.publish_folder(repo, saved)
    monkeypatch.setenv("ZOO_HUB_MAX_BYTES", "1K")
    with pytest.raises(HubError, match=r"more than ZOO_HUB_MAX_BYTES allows \(1,024\); nothing was downloaded"):
        hub.pull(repo)
    assert not list(hub_env.glob("models--*/blobs/*"))
    for bad in ("abc", "0", "-5", "2P", "1e9", "10 G B"):
        monkeypatch.setenv("ZOO_HUB_MAX_BYTES", bad)
        with pytest.raises(HubError, match="ZOO_HUB_MAX_BYTES must be a size"):
            hub.pull(repo)
    monkeypatch.setenv("ZOO_HUB_MAX_BYTES", "20MiB")
    assert (hub.pull(repo) / "model.safetensors").is_file()


@pytest.fixture
def folder(tiny_model, tmp_path) -> Path:
    return tiny_model.save_pretrained(tmp_path / "m")



# ---- item 5: push publishes the folder's own regular files only -------------------------------------

def test_push_refuses_a_card_linked_outside_the_folder(folder, tmp_path, monkeypatch):
    from zoo import hub

    secret = tmp_path / "secret.txt"
    secret.write_text("password")
    (folder / "README.md").unlink()
    (folder / "README.md").symlink_to(secret)
    write_manifest(folder)   # a manifest written on the victim's machine agrees with the link
    uploaded = []
    monkeypatch.setattr(hub, "_upload", lambda staged, *a: uploaded.append(staged))
    with pytest.raises(ZooError, match=r"README.md: a symlink to .*secret.txt, outside the model folder"):
        hub.push_to_hub(str(folder), "me/model")
    assert not uploaded


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
    line = one_error_line(*cli_in_process(capsys, "push", folder, "zoo-tests/x"))
    assert "README.md" in line and says in line, line
