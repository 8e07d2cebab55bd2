"""Device choice: "auto" means CUDA, then MPS, then CPU."""

from __future__ import annotations

from zoo.errors import ConfigError


def resolve_device(device="auto"):
    """A torch.device for "auto", "cpu", "cuda", "cuda:1", "mps" (clear error if unavailable)."""
    import torch

    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but MPS is not available here; use --device cpu")
    return dev


def resolve_dtype(dtype):
    """A torch dtype from None, a torch.dtype or a name like "float16"/"bf16"."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if str(dtype) not in names:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[str(dtype)]
