"""The run folder's run.json and metrics.jsonl, and the words that say where and on what it ran."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import sys
from pathlib import Path

import torch

from zoo.config import to_dict
from zoo.errors import ConfigError
from zoo.safeio import atomic_write, read_bytes, read_json, write_text_atomic
from zoo.version import __version__


def refuse_links(run: Path) -> None:
    """A ConfigError if the engine's own files in a run folder are links: written through, they change what is
    outside the run (and a linked checkpoints/ hides the run's checkpoints from --resume)."""
    for name in ("run.json", "metrics.jsonl", "summary.json", "checkpoints"):
        if (run / name).is_symlink():
            raise ConfigError(f"{run / name}: is a symbolic link; a run folder's {name} is musezoo's own, remove "
                              f"the link or choose another --out")


def write_run_json(run: Path, arch, model_config, config, data, world, precision, where) -> None:
    """run.json: what --resume and zoo release rebuild the run from, and what the card names."""
    from zoo.registry import get_registry

    plugin = get_registry().get("architectures", arch).plugin
    try:
        plugin_version = importlib.metadata.version(plugin)
    except Exception:
        plugin_version = None
    info = {"arch": arch, "model_config": to_dict(model_config), "train_config": to_dict(config), "data": data,
            "zoo_version": __version__, "plugin": plugin, "plugin_version": plugin_version,
            "torch_version": torch.__version__, "world_size": world, "precision": precision,
            "hardware": where,   # what the card names: zoo release may run on another machine
            "command": sys.argv}
    write_text_atomic(run / "run.json", json.dumps(info, indent=2) + "\n")


def check_fields(data: dict, where: str, fields: dict, required, error, advice: str) -> None:
    """Each field `data` has (or requires) is of its kind: a type, (lo, hi) of a whole number, or a test."""
    for key, (what, kind) in fields.items():
        if key not in data and key not in required:
            continue
        value = data.get(key)
        if isinstance(kind, tuple):
            ok = isinstance(value, int) and not isinstance(value, bool) and kind[0] <= value <= kind[1]
        else:
            ok = isinstance(value, kind) if isinstance(kind, type) else kind(value)
        if not ok:
            raise error(f"{where}: {key!r} must be {what}, got {str(value)[:40]!r}; {advice}")


def read_run_json(run: Path, error=ConfigError) -> dict:
    """A run folder's run.json, checked: an object with arch, model_config and train_config, else one `error`."""
    path = run / "run.json"
    saved = read_json(path, "run.json", error)
    if not isinstance(saved, dict):
        raise error(f"{path}: malformed: must be a JSON object with arch, model_config and train_config (not "
                    f"{type(saved).__name__}); was it written by zoo train?")
    fields = {"arch": ("a string", str), "model_config": ("an object", dict), "train_config": ("an object", dict),
              "data": ("a string", str), "hardware": ("a string", str), "precision": ("a string", str),
              "world_size": ("a whole number from 1", (1, 2 ** 20))}
    present = {k: v for k, v in saved.items() if v is not None}   # null is absent (data: the embedded corpus)
    check_fields(present, f"{path}: malformed", fields, ("arch", "model_config", "train_config"), error,
                 "was it written by zoo train?")
    return saved


def append_metrics(run: Path, line: dict) -> None:
    """One line of metrics.jsonl."""
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


MAX_LOG_LINE = 1 << 20   # bytes: a metrics line is a few hundred; a longer one is not the engine's


def read_metrics(run: Path) -> list[dict]:
    """The lines of a run's metrics.jsonl that hold a step, in order (bounded; a line cut short by a kill is skipped)."""
    raw = read_bytes(run / "metrics.jsonl", 256 * 2**20, what="metrics log")
    return [entry for entry in map(_log_entry, raw.splitlines()) if entry is not None]


def _log_entry(line: bytes) -> dict | None:
    """A metrics line as a dict with a whole-number step; None for anything else (a line cut short by a kill)."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError):   # (UnicodeDecodeError is a ValueError)
        return None
    step = entry.get("step") if isinstance(entry, dict) else None
    return entry if isinstance(step, int) and not isinstance(step, bool) else None


def truncate_metrics(path: Path, step: int) -> None:
    """After a resume, drop the lines of metrics.jsonl (at `path`) from steps that are about to be redone."""
    if not path.is_file():
        return
    # streamed, line by bounded line: a long run's log may be larger than memory (or than read_metrics reads)
    with open(path, "rb") as log, atomic_write(path) as tmp, open(tmp, "wb") as out:   # not O_TRUNC in place:
        while line := log.readline(MAX_LOG_LINE):                                           # a kill left 0 bytes
            if not line.endswith(b"\n") and len(line) == MAX_LOG_LINE:   # too long to be a log line: skip it
                while (rest := log.readline(MAX_LOG_LINE)) and not rest.endswith(b"\n"):
                    pass
                continue
            entry = _log_entry(line)
            if entry is not None and entry["step"] <= step:
                out.write(line.rstrip(b"\n") + b"\n")


def report_start(arch: str, trainer, hardware_line: str) -> None:
    """One line before the first step: the size of the model and of its training state, and where it runs."""
    c, n = trainer.config, trainer.raw_model.num_parameters()
    state_mb = n * 16 / 2**20   # fp32 weights + gradients + Adam's two moments
    print(f"zoo: training {arch}: {n:,} parameters; {c.batch_size} examples per step"
          f"{f' in {c.grad_accum} micro-batches' if c.grad_accum > 1 else ''}; weights, gradients and "
          f"optimizer state ~{state_mb:,.0f} MB (activations come on top: the first steps measure them); "
          f"{hardware_line}; {trainer.precision}", file=sys.stderr)


def report_first_steps(done: int, seconds: float, left: int) -> None:
    """One line after the first steps: seconds per step, peak memory so far, and the time to the end."""
    import resource

    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20   # KiB on Linux
    per_step = seconds / done
    eta = per_step * left
    when = f"{eta / 3600:.1f} h" if eta >= 3600 else f"{eta / 60:.1f} min" if eta >= 60 else f"{eta:.0f} s"
    print(f"zoo: {per_step:.2f} s/step over the first {done} steps, peak memory {peak_gb:.2f} GB; "
          f"{left} steps left: about {when} (ETA, includes nothing for evaluation)", file=sys.stderr, flush=True)


def hardware(device) -> str:
    """A one-line description of where training ran."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def data_name(data) -> str:
    """The training data as the card names it: the folder's or file's name only (a local path is nobody's business)."""
    if not data:
        return "embedded default"
    return Path(str(data)).expanduser().name or str(data)
