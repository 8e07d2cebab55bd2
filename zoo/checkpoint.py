"""Checkpoint folders in the Hugging Face Hub layout: safetensors, JSON, sha256 manifest, atomic writes.

A folder holds config.json, <stem>.safetensors for each of the model's state files,
tokenizer.json, README.md (the model card) and manifest.json with the sha256 of every
other file. Nothing here ever unpickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from zoo.errors import CheckpointError
from zoo.safeio import read_json

MANIFEST = "manifest.json"
CONFIG_FIELDS = ("arch", "arch_version", "zoo_version", "config")  # the fields of config.json
# JSON files a load or a resume reads besides the safetensors: each must be in the manifest (a checkpoint's
# trainer_state.json dropped from it could be edited to "step": 1e9 and still verify)
CHECKPOINT_FILES = ("config.json", "tokenizer.json", "trainer_state.json", "README.md")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# The files that make a model; anything else in a folder (caches, .git) is never shared.
MODEL_FILE_PATTERNS = ("config.json", "*.safetensors", "tokenizer.json", "README.md", MANIFEST)


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# real path -> ((device, inode, size, mtime, ctime), sha256): a load that verifies a folder several times (zoo.hub,
# checkpoint.verify, load_model) hashes each file once. Any write to a file changes its mtime and ctime (and
# os.utime, which can put the mtime back, changes the ctime), so a file changed since it was hashed is hashed
# again; what this cannot see, a write in the same clock tick as the hash, could as well land between a
# verification and the read that follows it.
_DIGESTS: dict[str, tuple[tuple, str]] = {}


def _signature(path: str) -> tuple:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def file_digest(path) -> str:
    """sha256_file, remembered for this process while the file stays unchanged (see _DIGESTS)."""
    real = os.path.realpath(path)
    before = _signature(real)
    known = _DIGESTS.get(real)
    if known is not None and known[0] == before:
        return known[1]
    digest = sha256_file(real)
    if _signature(real) == before:   # not written while it was read
        if len(_DIGESTS) >= 4096:
            _DIGESTS.clear()
        _DIGESTS[real] = (before, digest)
    return digest


def write_manifest(folder) -> None:
    """Record the sha256 of every file in the folder (except the manifest itself)."""
    folder = Path(folder)
    files = sorted(p.name for p in folder.iterdir() if p.is_file() and p.name != MANIFEST)
    data = {"sha256": {name: sha256_file(folder / name) for name in files}}
    (folder / MANIFEST).write_text(json.dumps(data, indent=2) + "\n")


def verify(folder) -> None:
    """Refuse pickles, then check every file against the manifest; errors name the file."""
    folder = Path(folder)
    names = sorted(os.listdir(folder))
    refuse_pickles(folder, names)
    for name, digest in check_manifest(folder, names).items():
        path = folder / name
        if not path.is_file():   # a FIFO never ends, a device never matches: only regular files (or links to them)
            raise CheckpointError(f"{path}: listed in the manifest but not a regular file; re-download the model")
        if file_digest(path) != digest:
            raise CheckpointError(f"{path}: sha256 does not match the manifest (corrupt or modified); re-download the model")


def check_manifest(folder: Path, names: list[str]) -> dict[str, str]:
    """manifest.json's file -> sha256 map, checked against the folder's listing: plain names, every listed file
    present, and every file a load or a resume reads listed (an empty or partial manifest would check nothing)."""
    path = folder / MANIFEST
    if MANIFEST not in names:
        raise CheckpointError(f"{folder}: no {MANIFEST}; this folder was not saved by musezoo (re-save it with "
                              f"save_pretrained)")
    expected = manifest_digests(read_json(path, MANIFEST, CheckpointError), path)
    bad = [n for n in expected if "/" in n or "\\" in n or n.startswith(".")]
    if bad:
        raise CheckpointError(f"{path}: bad file name {bad[0]!r}")
    missing = [n for n in expected if n not in names]   # an incomplete copy, even of a file this load skips
    if missing:
        raise CheckpointError(f"{folder / missing[0]}: listed in the manifest but missing; re-download the model")
    # symlinks, FIFOs and devices count too (is_file() alone missed a tokenizer.json linked to /dev/zero)
    unlisted = [n for n in names if n not in expected and n != MANIFEST
                and (n in CHECKPOINT_FILES or n.endswith(".safetensors"))]
    if unlisted:
        raise CheckpointError(f"{path}: does not list {', '.join(unlisted)}; the folder was modified after saving "
                              f"(re-download or re-save the model)")
    return expected


def manifest_digests(data, path) -> dict[str, str]:
    """A parsed manifest.json's file name -> sha256 map, its shape checked."""
    expected = data.get("sha256") if isinstance(data, dict) else None
    if expected is None:
        raise CheckpointError(f"{path}: unreadable manifest; re-download or re-save the model")
    if not isinstance(expected, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in expected.items()):
        raise CheckpointError(f"{path}: 'sha256' must map file names to hex digests; re-download or re-save the model")
    return expected


def refuse_pickles(folder, names=None) -> None:
    """Pickle files can run code when loaded: never read them, say how to convert. `names`: the folder's
    listing, when the caller has it already."""
    names = sorted(os.listdir(folder)) if names is None else names
    for path in (Path(folder) / name for name in names):
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise CheckpointError(
                f"{path}: pickle weights are refused because loading them can run code; if you trust the file, "
                f"convert it with: zoo convert {path} --arch ARCH --out NEW_FOLDER"
            )


def save_tensors(tensors: dict, path, metadata: dict | None = None) -> None:
    """Write a dict of tensors as safetensors (contiguous CPU copies; shared storage is fine)."""
    from safetensors.torch import save_file

    flat = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    try:
        save_file(flat, str(path), metadata=metadata)
    except OSError:
        raise
    except Exception as exc:  # safetensors reports a full disk as SafetensorError("... (os error 28)")
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None


def load_tensors(path, device="cpu") -> dict:
    """Read a safetensors file straight onto `device`; a bad file is a CheckpointError naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; re-download or re-save the model")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for truncated/garbage files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); it may be truncated, re-download it") from None


def check_state(module, tensors: dict, filename: str) -> None:
    """Strict key/shape/dtype check; the error lists every missing, unexpected and mis-shaped tensor."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k} {tuple(tensors[k].shape)} != {tuple(expected[k].shape)}" for k in sorted(set(expected) & set(tensors))
              if tuple(tensors[k].shape) != tuple(expected[k].shape)]
    kinds = [f"{k} {tensors[k].dtype} != {expected[k].dtype}" for k in sorted(set(expected) & set(tensors))
             if tensors[k].dtype.is_floating_point != expected[k].dtype.is_floating_point]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes), ("wrong dtype", kinds)):
        if items:  # a checkpoint of another architecture lists hundreds: keep the line readable
            more = f" and {len(items) - 8} more" if len(items) > 8 else ""
            problems.append(f"{label}: {', '.join(items[:8])}{more}")
    if problems:
        raise CheckpointError(f"{filename} does not fit the model ({'; '.join(problems)}); is it for another config?")


def read_config(folder) -> dict:
    """config.json as a dict, with a clear error if absent or not JSON."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder}: no config.json; give a folder saved by musezoo")
    return check_config(read_json(path, "config.json", CheckpointError), path)


def check_config(data, path) -> dict:
    """The fields of a parsed config.json checked (arch, arch_version, config, optional zoo_version)."""
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: must be a JSON object with arch, arch_version and config; re-save the model")
    for key in ("arch", "arch_version", "config"):
        if key not in data:
            raise CheckpointError(f"{path}: no {key!r} field; re-save the model with save_pretrained")
    unknown = sorted(set(data) - set(CONFIG_FIELDS))
    if unknown:
        raise CheckpointError(f"{path}: unknown field(s) {', '.join(map(repr, unknown))} (valid: {', '.join(CONFIG_FIELDS)}); "
                              f"was it saved by a newer musezoo? upgrade it")
    for key, kind, what in (("arch", str, "a string"), ("arch_version", int, "an integer"), ("config", dict, "an object"),
                            ("zoo_version", str, "a string")):
        if key not in data and key == "zoo_version":
            continue  # optional
        value = data[key]
        if not isinstance(value, kind) or isinstance(value, bool) or value in ("", None):
            raise CheckpointError(f"{path}: {key!r} must be {what}, got {value!r}; re-save the model with save_pretrained")
    return data


def check_not_training_folder(folder) -> None:
    """A run folder or one of its checkpoints is not a saved model: say where the model is instead of
    "no manifest.json" or "no config.json"."""
    folder = Path(folder)
    if (folder / "config.json").exists():
        return
    if (folder / "run.json").is_file():   # zoo train's run folder: the model is its final/
        final = folder / "final"
        if (final / "config.json").is_file():
            raise CheckpointError(f"{folder} is a training run folder; its trained model is {final} "
                                  f"(e.g. zoo generate {final} -o out.mid)")
        raise CheckpointError(f"{folder} is a training run folder that has not finished (no {final} yet); "
                              f"continue it with zoo train ARCH --out {folder} --resume")
    if (folder / "trainer_state.json").is_file():   # checkpoints/step-NNNNNN: weights + optimizer state
        run = folder.parent.parent
        raise CheckpointError(f"{folder} is a training checkpoint (for --resume), not a saved model; continue "
                              f"training with zoo train ARCH --out {run} --resume, or use the finished model "
                              f"in {run / 'final'}")
