"""Building a model only once its config is known to be the right size.

config.json decides how much a model allocates: `n_layer: 10**6` or `block_size: 1e9` asked for gigabytes
and minutes before any check ran. So a model is first built on torch's meta device (shapes, no data)
under an element budget that stops the build as soon as it creates more numbers than allowed; its state
is then compared with the safetensors headers (shapes and dtypes, read without loading any tensor).
Only a config that passes both is built for real.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from zoo.errors import CheckpointError, ConfigError

# numbers a saved model may create beyond its saved tensors (buffers such as attention masks): as many again
# plus this; the shipped models create exactly what they save. Kept small, because a config that stops only
# at a large budget has still spent seconds building (a shipped GAN builds ~100 tracks a second on meta).
BUFFER_ALLOWANCE = 2 ** 24
# the safetensors dtypes musezoo reads, as torch names them
_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64", "I32": "int32",
           "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool", "U16": "uint16", "U32": "uint32",
           "U64": "uint64", "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def machine_elements() -> int:
    """Numbers a fresh model may hold on this machine: a quarter of its memory in fp32 (training needs the
    weights, their gradients and two optimizer moments)."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        memory = 16 * 2 ** 30
    return max(memory // 16, 2 ** 28)


def safetensors_header(path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) from a safetensors file's header (safetensors parses and checks the
    header and maps the file; no tensor is read)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            out = {}
            for name in f.keys():
                piece = f.get_slice(name)
                out[name] = (piece.get_dtype(), tuple(piece.get_shape()))
    except Exception as exc:  # safetensors raises several types for truncated/garbage files
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); it may be truncated, re-download it") from None
    if not all(dtype in _DTYPES for dtype, _ in out.values()):
        raise CheckpointError(f"{path}: holds a tensor type musezoo does not use; re-save the model")
    return out


def probe_build(cls, config, tokenizer, limit: int, what: str, hint: str):
    """Build cls(config, tokenizer) on the meta device, stopping once it creates more than `limit` numbers."""
    import torch
    from torch.overrides import TorchFunctionMode
    from torch.utils._device import _device_constructors

    constructors, used = _device_constructors(), 0

    class Budget(TorchFunctionMode):   # counts the numbers every tensor factory creates
        def __torch_function__(self, func, types, args=(), kwargs=None):
            nonlocal used
            out = func(*args, **(kwargs or {}))
            if func in constructors and hasattr(out, "numel"):
                used += out.numel()
                if used > limit:
                    raise ConfigError(f"{what} builds a model of more than {limit:,} numbers; {hint}")
            return out

    with torch.device("meta"), Budget():
        return cls(config, tokenizer) if tokenizer is not None else cls(config)


def check_buildable(cls, config, tokenizer=None, what: str = "this config") -> None:
    """A fresh model (zoo.create, zoo train) must fit the machine: refused before anything is allocated."""
    probe_build(cls, config, tokenizer, machine_elements(), what,
                "more than this machine can train or hold; lower its sizes (n_layer, n_embd, block_size ...)")


def check_against_weights(cls, config, tokenizer, folder, optional=()):
    """Before a saved model is built: its config builds (on meta) a model no bigger than its safetensors
    files plus buffers, and the built model's tensors have the shapes and dtypes of those files.
    Returns that model, still on the meta device, for the weights to be assigned to."""
    import torch

    from zoo.checkpoint import check_state

    folder = Path(folder)
    headers = {p.stem: safetensors_header(p) for p in sorted(folder.glob("*.safetensors"))}
    saved = sum(math.prod(shape) for h in headers.values() for _, shape in h.values())
    probe = probe_build(cls, config, tokenizer, 2 * saved + BUFFER_ALLOWANCE, f"{folder / 'config.json'}",
                        f"its safetensors files hold {saved:,}, so the config does not match the weights "
                        f"(re-download or re-save the model)")
    for stem, module in probe.state_files().items():
        if stem not in headers:
            if stem in optional:
                continue
            raise CheckpointError(f"{folder / (stem + '.safetensors')}: missing; re-download or re-save the model")
        fake = {name: torch.empty(shape, dtype=getattr(torch, _DTYPES[dtype]), device="meta")
                for name, (dtype, shape) in headers[stem].items()}
        check_state(module, fake, f"{stem}.safetensors")
    return probe
