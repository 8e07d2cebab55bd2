"""`zoo convert`: turn a TRUSTED legacy pickle state dict into a safetensors folder."""

from __future__ import annotations

import stat
from pathlib import Path

from zoo.errors import CheckpointError


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def convert(src, arch: str, out, overrides: list[str] | None = None, overwrite: bool = False) -> Path:
    """Load with torch.load(weights_only=True) (tensors only, no code), then save in the Hub layout at `out`
    (checked first, as zoo.outputs says)."""
    import pickle

    import torch

    from zoo.card import build_card
    from zoo.checkpoint import check_state
    from zoo.config import parse_overrides
    from zoo.loader import create
    from zoo.outputs import check_folder_target

    src = Path(src)
    try:   # named for what it is (a FIFO was "no such file"), and not opened first: a FIFO would wait for a writer
        st = src.stat()
    except FileNotFoundError:
        raise CheckpointError(f"{src}: no such file") from None
    except OSError as exc:
        raise CheckpointError(f"{src}: cannot read it ({exc.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise CheckpointError(f"{src}: is {kind}, not a saved state dict; give the .pt file torch.save wrote")
    if st.st_size == 0:
        raise CheckpointError(f"{src}: an empty file, not a saved state dict; give the .pt file torch.save wrote")
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
    if set(files) <= set(state) and all(isinstance(state[k], dict) for k in files):
        parts = {k: state[k] for k in files}  # {"model": {...}, "critic": {...}}
    elif len(files) == 1 or set(state) & set(next(iter(files.values())).state_dict()):
        parts = {next(iter(files)): state}
    else:
        raise CheckpointError(f"{src}: expected a state dict, or a dict with keys {', '.join(files)}")
    missing = [stem for stem in files if stem not in parts and stem not in model.optional_state_files]
    if missing:
        raise CheckpointError(f"{src}: no tensors for {missing[0]!r}")
    for stem, part in parts.items():
        _check_tensors(part, f"{src} [{stem}]")
        check_state(files[stem], part, f"{src.name} [{stem}]")
        files[stem].load_state_dict(part)
    card = build_card(model, sections={"Training": f"Converted by `zoo convert` from `{src.name}`."})
    return model.save_pretrained(out, card=card)


def _check_tensors(part: dict, where: str) -> None:
    """Every entry of a state dict is a name -> dense CPU tensor, else one line naming the entry (not a traceback
    inside load_state_dict)."""
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
