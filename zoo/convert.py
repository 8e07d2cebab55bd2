"""`zoo convert`: turn a TRUSTED legacy pickle state dict into a safetensors folder."""

from __future__ import annotations

import stat
from pathlib import Path

from zoo.errors import CheckpointError


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def _check_regular_file(src: Path) -> None:
    """The source must be a regular file; anything else is named for what it is (a FIFO or /dev/zero was
    reported as "no such file"), and nothing is opened before this check (a FIFO would wait for a writer)."""
    try:
        mode = src.stat().st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{src}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{src}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise CheckpointError(f"{src}: is {kind}, not a saved state dict; give the .pt file torch.save wrote")


def convert(src, arch: str, out, overrides: list[str] | None = None, overwrite: bool = False) -> Path:
    """Load with torch.load(weights_only=True) (tensors only, no code), then save in the Hub layout.

    `out` follows zoo.outputs (a new folder, or one musezoo wrote; never the folder holding `src`), checked
    before the file is read."""
    import pickle

    import torch

    from zoo.checkpoint import check_state
    from zoo.config import parse_overrides
    from zoo.loader import create

    src = Path(src)
    _check_regular_file(src)
    if src.stat().st_size == 0:
        raise CheckpointError(f"{src}: an empty file, not a saved state dict; give the .pt file torch.save wrote")

    from zoo.outputs import check_folder_target

    check_folder_target(out, sources=((src, "state dict file"),), overwrite=overwrite, hint="--overwrite")
    try:
        # weights_only: tensors, containers and numbers only, never arbitrary objects; whatever a damaged or
        # crafted file makes the restricted unpickler raise (IndexError, KeyError, ...) is the file's fault
        state = torch.load(src, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, IndexError, KeyError, TypeError,
            AttributeError, UnicodeDecodeError, OverflowError, MemoryError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{src}: not a plain tensor state dict ({first})") from None
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
        kind = type(state).__name__ + (" (empty)" if isinstance(state, dict) else "")
        raise CheckpointError(f"{src}: holds a {kind}, not a state dict (names -> tensors); save the model's "
                              f"state_dict(), or a dict of them per part")
    model = create(arch, **parse_overrides(overrides or []))
    files = model.state_files()
    if isinstance(state, dict) and set(files) <= set(state) and all(isinstance(state[k], dict) for k in files):
        parts = {k: state[k] for k in files}  # {"model": {...}, "critic": {...}}
    elif len(files) == 1 or set(state) & set(next(iter(files.values())).state_dict()):
        parts = {next(iter(files)): state}
    else:
        raise CheckpointError(f"{src}: expected a state dict, or a dict with keys {', '.join(files)}")
    optional = set(model.optional_state_files)
    for stem, module in files.items():
        if stem not in parts:
            if stem in optional:
                continue
            raise CheckpointError(f"{src}: no tensors for {stem!r}")
        _check_tensors(parts[stem], f"{src} [{stem}]")
        check_state(module, parts[stem], f"{src.name} [{stem}]")
        module.load_state_dict(parts[stem])
    from zoo.card import build_card

    card = build_card(model, sections={"Training": f"Converted by `zoo convert` from `{src.name}`."})
    return model.save_pretrained(out, card=card)


def _check_tensors(part: dict, where: str) -> None:
    """Every entry of a state dict is a name -> dense CPU tensor; an int, a list, a sparse, quantized or
    nested tensor is one line naming the entry, not a traceback inside load_state_dict."""
    import torch

    for key, value in part.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{where}: the key {key!r} is not a tensor name (a string)")
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{where}: {key!r} is a {type(value).__name__}, not a tensor; save the model's "
                                  f"state_dict()")
        if value.layout != torch.strided or value.is_quantized or getattr(value, "is_nested", False) \
                or value.device.type != "cpu":
            kind = "quantized" if value.is_quantized else str(value.layout).replace("torch.", "")
            raise CheckpointError(f"{where}: {key!r} is a {kind} tensor; musezoo saves dense tensors only "
                                  f"(convert it with .to_dense() or .dequantize() first)")
