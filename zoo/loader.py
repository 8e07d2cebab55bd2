"""Loading a saved model, one way: resolve the name, read the folder once, verify, build, load.

1. resolve  a pretrained name, a folder or hf://org/repo[@rev] -> a local folder (zoo.hub.resolve)
2. read     one ModelFolder: the folder listed once (pickles refused), manifest.json, config.json and
            tokenizer.json each read once and checked against the manifest from the bytes read, the
            architecture found once and its arch_version checked, the config and tokenizer built
3. verify   the sha256 of each safetensors file that will be loaded, and of no other file
4. build    on the meta device, checked against the safetensors headers (zoo.build)
5. load     the tensors straight onto the device, checked strictly
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from zoo.build import check_against_weights, check_buildable
from zoo.card import build_card
from zoo.checkpoint import (check_config, check_manifest, check_not_training_folder, check_state, file_digest,
                            load_tensors, refuse_pickles, save_tensors, write_manifest)
from zoo.config import config_from_dict, to_dict
from zoo.device import resolve_device, resolve_dtype
from zoo.errors import CheckpointError, ConfigError, UnknownNameError, ZooError
from zoo.hub import resolve
from zoo.outputs import atomic_folder, check_folder_target
from zoo.registry import get_registry
from zoo.safeio import MAX_JSON_BYTES, parse_json, read_bytes, read_json
from zoo.version import __version__

__all__ = ["ModelFolder", "resolve", "read_folder", "load_model", "load", "create", "save_model", "load_tokenizer"]


@dataclass(frozen=True)
class ModelFolder:
    """A saved model folder, read and checked once: everything a load needs except the tensors."""

    path: Path
    cls: type                      # the installed Model class of config.json's arch
    config: object                 # cls.config_class, parsed from config.json
    tokenizer: object              # built from tokenizer.json by the registered Tokenizer class; None without one
    manifest: dict[str, str]       # file name -> sha256
    state_stems: frozenset[str]    # the <stem>.safetensors files present

    def verify(self, stems) -> None:
        """Check the sha256 of the named state files against the manifest: only the files a load reads."""
        for stem in sorted(stems):
            name = f"{stem}.safetensors"
            path = self.path / name
            if not path.is_file():   # a FIFO never ends, a device never matches: only regular files
                raise CheckpointError(f"{path}: missing or not a regular file; re-download the model")
            if file_digest(path) != self.manifest[name]:
                raise CheckpointError(f"{path}: sha256 does not match the manifest (corrupt or modified); "
                                      f"re-download the model")


def read_folder(folder) -> ModelFolder:
    """Read a model folder's small files once each (bounded, regular files only), checked against its manifest."""
    folder = Path(folder)
    check_not_training_folder(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError as exc:
        raise CheckpointError(f"{folder}: cannot read this folder ({exc.strerror})") from None
    refuse_pickles(folder, names)   # before any file is read: say how to convert, not "no config.json"
    if "config.json" not in names:
        raise CheckpointError(f"{folder}: no config.json; give a folder saved by musezoo")
    manifest = check_manifest(folder, names)
    data = check_config(_json(folder, "config.json", manifest), folder / "config.json")
    cls = _architecture(folder, data)
    try:
        config = config_from_dict(cls.config_class, data["config"], what=f"{data['arch']} config")
    except ConfigError as exc:
        raise ConfigError(f"{folder / 'config.json'}: {exc}") from None
    tok_path, tokenizer = folder / "tokenizer.json", None
    if "tokenizer.json" in names:
        tokenizer = _tokenizer(_json(folder, "tokenizer.json", manifest), tok_path)
    elif cls.tokenizer_name:   # an architecture without a tokenizer (tokenizer_name "") saves no tokenizer.json
        raise CheckpointError(f"{tok_path}: missing; re-download or re-save the model")
    stems = frozenset(Path(n).stem for n in names if n.endswith(".safetensors"))
    return ModelFolder(folder, cls, config, tokenizer, manifest, stems)


def _json(folder: Path, name: str, manifest: dict[str, str]):
    """A small JSON file, read once: its sha256 checked from the same bytes that are parsed."""
    path = folder / name
    data = read_bytes(path, MAX_JSON_BYTES, name, CheckpointError)   # bounded, regular files only
    if hashlib.sha256(data).hexdigest() != manifest[name]:
        raise CheckpointError(f"{path}: sha256 does not match the manifest (corrupt or modified); re-download the model")
    return parse_json(data, path, name, CheckpointError)


def _architecture(folder: Path, data: dict):
    """The installed Model class for config.json's arch, its arch_version checked."""
    try:
        cls = get_registry().architecture(data["arch"])
    except UnknownNameError as exc:
        raise UnknownNameError(f"{folder / 'config.json'}: {exc}; install the plugin that provides it") from None
    version, oldest = data["arch_version"], getattr(cls, "min_arch_version", 1)
    if version > cls.arch_version or version < oldest:
        raise CheckpointError(f"{folder}: {data['arch']} arch_version {version!r} is not supported by the installed "
                              f"plugin (supports {oldest}..{cls.arch_version}); upgrade the plugin")
    return cls


def _tokenizer(data, path: Path):
    """The registered Tokenizer that tokenizer.json names, built from its params."""
    try:
        name, params = data["tokenizer"], data.get("params", {})
        return get_registry().tokenizer(name).from_dict(params)
    except ZooError as exc:
        raise (exc if str(path) in str(exc) else type(exc)(f"{path}: {exc}")) from None
    except (KeyError, TypeError, AttributeError, RecursionError) as exc:   # e.g. {"tokenizer": 5}
        raise CheckpointError(f"{path}: not a valid tokenizer.json ({type(exc).__name__}: {exc}); "
                              f"re-save the model") from None


def load_tokenizer(path):
    """Read a tokenizer.json on its own (no manifest): the registered Tokenizer class it names."""
    path = Path(path)
    return _tokenizer(read_json(path, "tokenizer.json", CheckpointError), path)


def load_model(folder, device="auto", dtype=None, generate_only: bool = False):
    """Read, verify, build and load a model folder onto `device` (a ModelFolder already read is not read again).

    generate_only=True (what `zoo generate` uses) leaves out the optional state files, such as a GAN's
    critic: they are not read or hashed, and their modules stay on the meta device (no memory), so such a
    model can generate but not be saved or trained.
    """
    import torch

    folder = folder if isinstance(folder, ModelFolder) else read_folder(folder)
    cls, path = folder.cls, folder.path
    optional = set(getattr(cls, "optional_state_files", ()))
    absent = {stem for stem in optional if stem not in folder.state_stems}
    skip = optional if generate_only else absent
    device, dtype = resolve_device(device), resolve_dtype(dtype)
    # the config must build (on meta, bounded) what the safetensors headers hold, before any allocation
    model = check_against_weights(cls, folder.config, folder.tokenizer, path, optional)
    folder.verify(stem for stem in model.state_files() if stem not in skip)
    # that meta-device model takes the weights by assignment: no random init, no second copy. A model with a
    # part that has no file (an old folder without its critic) is built for real, so that part is initialised.
    if (absent and not generate_only) or not _load_states(model, path, skip, device, assign=True):
        with torch.device(device):
            model = cls(folder.config, folder.tokenizer)
        _load_states(model, path, skip, device, assign=False)
    if dtype is not None:
        model.to(dtype)
    model.eval()
    model.source = path
    return model


def _load_states(model, folder: Path, skip, device, assign: bool) -> bool:
    """Load every state file but those in `skip`, checked strictly. With assign, False when a loaded module
    still holds meta tensors afterwards (buffers it makes but never saves): build it for real then."""
    import torch

    for stem, module in model.state_files().items():
        if stem in skip:
            continue
        path = folder / f"{stem}.safetensors"
        tensors = load_tensors(path, device)
        check_state(module, tensors, path.name)
        bad = [k for k, t in tensors.items() if t.dtype.is_floating_point and not bool(torch.isfinite(t).all())]
        if bad:   # NaN or inf weights only fail later, inside sampling (multinomial)
            raise CheckpointError(f"{path}: tensor {bad[0]} holds NaN or infinite values (diverged training?); "
                                  f"use an earlier checkpoint")
        if assign:   # assignment keeps a tensor's dtype: cast fp16/bf16 weights to the model's, as copying did
            expected = module.state_dict()
            tensors = {k: t.to(expected[k].dtype) for k, t in tensors.items()}
        module.load_state_dict(tensors, strict=True, assign=assign)
        if assign and any(t.is_meta for t in (*module.parameters(), *module.buffers())):
            return False
    return True


def save_model(model, dest, card: str | None = None, extra_files: dict | None = None, overwrite: bool = False,
               hint: str = "overwrite=True") -> Path:
    """Save a model atomically in the Hub layout. An existing dest is replaced only as zoo.outputs allows."""
    check_folder_target(dest, overwrite=overwrite, hint=hint, what="model folder")

    text = card if card is not None else build_card(model)   # without one: what it is, and that no training was recorded

    def fill(tmp: Path):
        config = {"arch": model.arch, "arch_version": model.arch_version, "zoo_version": __version__,
                  "config": to_dict(model.config)}
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for stem, module in model.state_files().items():
            save_tensors(module.state_dict(), tmp / f"{stem}.safetensors", metadata={"format": "pt"})
        if model.tokenizer is not None:
            model.tokenizer.save(tmp / "tokenizer.json")
        (tmp / "README.md").write_text(text, encoding="utf-8")
        for name, content in (extra_files or {}).items():
            (tmp / name).write_bytes(content if isinstance(content, bytes) else str(content).encode())
        write_manifest(tmp)

    return atomic_folder(dest, fill)


def load(name_or_path, device="auto", dtype=None, revision: str | None = None, generate_only: bool = False):
    """Load a pretrained name, a local folder or hf://org/repo[@rev] straight onto `device`."""
    return load_model(resolve(name_or_path, revision=revision), device=device, dtype=dtype,
                      generate_only=generate_only)


def create(arch: str, **config_overrides):
    """A fresh, untrained model of an architecture, with config overrides."""
    if not isinstance(arch, str) or not arch.strip():
        raise ConfigError(f"arch must be an architecture name (see zoo list), got {arch!r}")
    registry = get_registry()
    cls = registry.architecture(arch)
    config = config_from_dict(cls.config_class, config_overrides, what=f"{arch} config")
    tokenizer = registry.new_tokenizer(cls)   # the model is handed its tokenizer; it never looks one up
    check_buildable(cls, config, tokenizer, what=f"{arch} config")   # bounded, on meta, before any allocation
    return cls(config, tokenizer)
