"""The registry: architectures, tokenizers, trainers, dataset builders and pretrained specs, and name resolution."""

from __future__ import annotations

import difflib
import fnmatch
import importlib.resources
import os
import pkgutil
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from zoo.errors import CheckpointError, ConfigError, PluginError, UnknownNameError

# every kind of thing a plugin registers, and how an error names one
_SINGULAR = {"architectures": "architecture", "tokenizers": "tokenizer", "trainers": "trainer",
             "datasets": "dataset builder", "pretrained": "pretrained model"}


@dataclass(frozen=True)
class PretrainedSpec:
    """A pretrained model: where its files are and what it is (declarative, like timm's default_cfgs)."""

    name: str
    arch: str
    description: str = ""
    license: str = "unknown"
    data: str = ""
    hub_repo: str | None = None
    revision: str | None = None  # pin a commit id so a name never silently changes
    # The model folder shipped inside the plugin's own package, as "package:folder"
    # (e.g. "zoo_musegan:weights/musegan-bach"), found with importlib.resources.
    files: str | None = None
    plugin: str = field(default="", compare=False)


@dataclass
class Entry:
    """One registration: a name, an import target ("module:attr" or an object) and its plugin."""

    name: str
    target: object
    plugin: str

    def load(self):
        """Import the target on first use, so that listing never imports torch."""
        if not isinstance(self.target, str):
            return self.target
        try:
            obj = pkgutil.resolve_name(self.target)
        except Exception as exc:
            raise PluginError(
                f"plugin {self.plugin!r} could not load {self.target!r} for {self.name!r}: "
                f"{type(exc).__name__}: {exc}; reinstall or update the plugin"
            ) from exc
        self.target = obj
        return obj


class Registry:
    """Everything the installed plugins registered."""

    def __init__(self):
        self.entries: dict[str, dict[str, Entry]] = {kind: {} for kind in _SINGULAR}
        self.conflicts: dict[tuple[str, str], list[str]] = {}
        self.plugins = []
        self.warnings: list[tuple[str, str]] = []   # (plugin, message): registered, but something a user will miss

    def add(self, kind: str, name: str, target, plugin: str) -> None:
        """Register one name; a name two plugins claim is a conflict that names both."""
        table = self.entries[kind]
        if name in table or (kind, name) in self.conflicts:
            owners = self.conflicts.setdefault((kind, name), [table.pop(name).plugin] if name in table else [])
            owners.append(plugin)
            raise PluginError(
                f"{_SINGULAR[kind]} {name!r} is registered by both {owners[0]!r} and {plugin!r}; "
                f"uninstall one, or choose with ZOO_PLUGINS"
            )
        if kind == "pretrained":
            if not isinstance(target, PretrainedSpec):
                raise PluginError(f"plugin {plugin!r}: register_pretrained needs a zoo.PretrainedSpec")
            target = replace(target, plugin=plugin)
            if not str(target.description).strip():   # zoo list would show an empty column, zoo info nothing
                message = (f"pretrained model {name!r} has no description; give its PretrainedSpec a description= "
                           f"(zoo list shows it)")
                self.warnings.append((plugin, message))   # it works, but `zoo list`/`zoo plugins` say what it lacks
                warnings.warn(f"zoo plugin {plugin!r}: {message}", UserWarning, stacklevel=2)
        table[name] = Entry(name, target, plugin)

    def has(self, kind: str, name: str) -> bool:
        """Whether a plugin registers the name (two that conflict included)."""
        return name in self.entries[kind] or (kind, name) in self.conflicts

    def names(self, kind: str, pattern: str = "*") -> list[str]:
        """Registered names of one kind matching an fnmatch pattern, sorted."""
        return sorted(n for n in self.entries[kind] if fnmatch.fnmatchcase(n, pattern))

    def get(self, kind: str, name: str) -> Entry:
        """The entry for a name, or a clear error with close matches."""
        if (kind, name) in self.conflicts:
            owners = " and ".join(repr(p) for p in self.conflicts[kind, name])
            raise PluginError(f"{_SINGULAR[kind]} {name!r} is registered by {owners}; uninstall one, or choose with ZOO_PLUGINS")
        try:
            return self.entries[kind][name]
        except KeyError:
            raise UnknownNameError(_unknown(_SINGULAR[kind], name, list(self.entries[kind]))) from None

    def architecture(self, name: str):
        """The Model class for an architecture name, checked against the tokenizer registry."""
        cls = self.get("architectures", name).load()
        tok = getattr(cls, "tokenizer_name", None)
        if tok and tok not in self.entries["tokenizers"]:
            raise PluginError(
                f"architecture {name!r} needs tokenizer {tok!r}, which no installed plugin registers; "
                f"install the plugin that provides it"
            )
        return cls

    def tokenizer(self, name: str):
        """The Tokenizer class for a tokenizer name."""
        return self.get("tokenizers", name).load()

    def new_tokenizer(self, model_cls):
        """A fresh tokenizer of a Model class's tokenizer_name, for zoo.create and zoo train; None without one."""
        name = getattr(model_cls, "tokenizer_name", "")
        return self.tokenizer(name)() if name else None

    def trainer(self, arch: str):
        """The Trainer class for an architecture."""
        self.get("architectures", arch)
        return self.get("trainers", arch).load()

    def dataset_builder(self, arch: str):
        """The registered build_dataset(source, split, model) of an architecture; None when no plugin registers one."""
        return self.get("datasets", arch).load() if self.has("datasets", arch) else None

    def pretrained(self, name: str) -> PretrainedSpec:
        """The spec of a pretrained model."""
        return self.get("pretrained", name).target


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known)) or 'none (is a plugin installed?)'}"
    return f"unknown {what} {name!r}{hint}"


def check_name(name, what: str = "name_or_path") -> None:
    """A ConfigError unless a model name or path is a non-empty string or path ("" would mean '.')."""
    if not isinstance(name, (str, os.PathLike)) or not str(name).strip():
        raise ConfigError(f"{what} must be a pretrained name, a folder or hf://org/repo, got {name!r}")


_REGISTRY: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, discovered on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        from zoo import plugins

        registry = Registry()
        registry.plugins = plugins.load_into(registry, extra=list(_EXTRA))
        _REGISTRY = registry
    return _REGISTRY


_EXTRA: list[tuple[str, object]] = []


def register_plugin(obj, name: str) -> None:
    """Register an in-process plugin object (tests, notebooks) as if it were installed."""
    _EXTRA.append((name, obj))
    reset()


def reset() -> None:
    """Forget the discovered plugins (the next use rediscovers them)."""
    global _REGISTRY
    _REGISTRY = None


def weights_dirs() -> list[Path]:
    """The folders named by $ZOO_WEIGHTS_DIR (os.pathsep-separated), each holding <name>/ model folders."""
    return [Path(p) for p in os.environ.get("ZOO_WEIGHTS_DIR", "").split(os.pathsep) if p]


def packaged_folder(spec: PretrainedSpec) -> Path | None:
    """The folder a spec's `files` ("package:folder") names inside an installed package, if it holds a model."""
    if not spec.files:
        return None
    package, _, folder = spec.files.partition(":")
    try:
        root = importlib.resources.files(package)
    except Exception:  # not installed, or broken: the next place in the search order may still have it
        return None
    path = root.joinpath(*folder.split("/")) if folder else root
    # pip installs packages as plain files, so this is a real path; a zipped package is not searched.
    if isinstance(path, Path) and (path / "config.json").is_file():
        return path
    return None


def local_folder(spec: PretrainedSpec) -> Path | None:
    """A pretrained model's folder on this machine: $ZOO_WEIGHTS_DIR, else its plugin's package."""
    found = (root / spec.name for root in weights_dirs() if (root / spec.name / "config.json").is_file())
    return next(found, None) or packaged_folder(spec)


@dataclass(frozen=True)
class HubRepo:
    """A model that is not on this machine: a Hugging Face Hub repo at a revision (zoo.hub.pull fetches it)."""

    repo: str
    revision: str | None = None


def locate(name_or_path: str, revision: str | None = None) -> Path | HubRepo:
    """A pretrained name, a local folder or hf://org/repo[@rev] as a local folder or the Hub repo to pull.

    A name's search order: $ZOO_WEIGHTS_DIR/<name>, its spec's `files`, its spec's `hub_repo` at `revision`.
    """
    check_name(name_or_path)
    name = str(name_or_path)
    registry = get_registry()
    if registry.has("pretrained", name):
        spec = registry.pretrained(name)
        local = local_folder(spec)
        if local is not None:
            return local
        if spec.hub_repo:
            return HubRepo(spec.hub_repo, revision or spec.revision)
        places = ["$ZOO_WEIGHTS_DIR" + (f" ({os.environ['ZOO_WEIGHTS_DIR']})" if weights_dirs() else "")]
        if spec.files:
            places.append(f"its plugin's package ({spec.files})")
        raise CheckpointError(f"the weights of {name!r} are not in {', '.join(places)}, and its spec names no Hub "
                              f"repo; reinstall the plugin {spec.plugin!r}, or put the model folder at "
                              f"$ZOO_WEIGHTS_DIR/{name}")
    if name.startswith("hf://"):
        repo, _, rev = name[len("hf://"):].partition("@")
        return HubRepo(repo, rev or revision)
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{name!r} is a file; give the folder that holds config.json and model.safetensors")
    # a path separator or a leading . or ~: "runs/nope" is a folder the user meant, not a misspelt pretrained name
    if "/" in name or os.sep in name or name.startswith((".", "~")):
        hub = f", or hf://{name} for a Hugging Face Hub repo" if name.count("/") == 1 and not name.startswith((".", "~", "/")) else ""
        raise CheckpointError(f"no such folder: {name!r}; check the path (a run's model is RUN/final){hub}")
    raise UnknownNameError(_unknown("model", name, list(registry.entries["pretrained"])) + " (or give a folder, or hf://org/repo)")
