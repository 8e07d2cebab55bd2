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
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1,
                "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


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
    if not all(dtype in _DTYPE_BYTES for dtype, _ in out.values()):
        raise CheckpointError(f"{path}: holds a tensor type musezoo does not use; re-save the model")
    return out


class _ElementBudget:
    """A torch function mode that counts the numbers every tensor factory creates and stops past `limit`."""

    def __init__(self, limit: int, what: str, hint: str):
        from torch.overrides import TorchFunctionMode
        from torch.utils._device import _device_constructors

        budget = self

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                if func in budget.constructors and hasattr(out, "numel"):
                    budget.used += out.numel()
                    if budget.used > budget.limit:
                        raise ConfigError(f"{budget.what} builds a model of more than {budget.limit:,} numbers; "
                                          f"{budget.hint}")
                return out

        self.constructors = _device_constructors()
        self.limit, self.what, self.hint, self.used, self.mode = limit, what, hint, 0, Mode()


def probe_build(cls, config, tokenizer, limit: int, what: str, hint: str):
    """Build cls(config, tokenizer) on the meta device, stopping once it creates more than `limit` numbers."""
    import torch

    budget = _ElementBudget(limit, what, hint)
    with torch.device("meta"), budget.mode:
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
        fake = {name: torch.empty(shape, dtype=_torch_dtype(dtype), device="meta")
                for name, (dtype, shape) in headers[stem].items()}
        check_state(module, fake, f"{stem}.safetensors")
    return probe


def _torch_dtype(name: str):
    import torch

    return {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
            "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
            "BOOL": torch.bool, "U16": torch.uint16, "U32": torch.uint32, "U64": torch.uint64,
            "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2}[name]
