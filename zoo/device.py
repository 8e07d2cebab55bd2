"""Device choice: "auto" means CUDA, then MPS, then CPU."""

from __future__ import annotations

import os

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
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    # torch knows many more device types (xpu, hip, vulkan, lazy, hpu, meta ...): the zoo runs on these three;
    # meta holds no data, and cpu:5 does not exist, but both failed later blaming the weights file
    if dev.type not in ("cpu", "cuda", "mps") or (dev.type in ("cpu", "mps") and dev.index not in (None, 0)):
        raise ConfigError(f"device {device!r} is not supported; use auto, cpu, cuda, cuda:N or mps")
    if dev.type == "cuda" and dev.index is not None and torch.cuda.is_available() \
            and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                          f"use cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available here; use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device 'mps' asked for, but MPS is not available here; use --device cpu")
    return dev


def resolve_dtype(dtype):
    """A torch dtype from None, a torch.dtype or a name like "float16"/"bf16"."""
    import torch

    names = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
             "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if dtype is None or dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        return dtype
    if isinstance(dtype, torch.dtype):   # int8 or bool weights: a traceback deep inside the first forward
        raise ConfigError(f"dtype {dtype} cannot hold weights; use one of torch.float32, torch.float16, "
                          f"torch.bfloat16 (or {', '.join(names)})")
    if str(dtype) not in names:
        raise ConfigError(f"unknown dtype {dtype!r}; use one of {', '.join(names)}")
    return names[str(dtype)]


def cpu_bf16_pays() -> tuple[bool, str]:
    """Whether bf16 autocast speeds up training on this CPU, and why (measured, docs/benchmarks.md)."""
    import torch

    # AMX tiles (Intel Sapphire Rapids and later) trained the transformer plugin 1.6x faster in bf16 than fp32;
    # without them bf16 was slower: 0.66x with AVX512-BF16 only (AMD Zen 4), 0.05x with AVX2 only
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        amx = bool(probe()) if probe else False
    except Exception:  # an old or odd torch build: assume none
        amx = False
    # ATEN_CPU_CAPABILITY=avx2 on an AMX machine leaves the bf16 kernels unusable ("pack_vnni2 is only
    # supported when avx512 is supported"): the kernels torch runs count, not only the silicon
    kernels = torch.backends.cpu.get_cpu_capability().upper()
    if amx and (kernels.startswith("AVX512") or kernels.startswith("AMX")):
        return True, "bf16 autocast (the CPU has AMX)"
    return False, "fp32 (this CPU has no AMX; bf16 autocast would be slower here)"


def set_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None: $ZOO_THREADS, else half the logical CPUs); returns the number used."""
    import torch

    if threads is None:
        value = os.environ.get("ZOO_THREADS")
        if value and (not value.isdigit() or not 1 <= int(value) <= 1024):
            raise ConfigError(f"ZOO_THREADS must be a whole number from 1 to 1024, got {value!r}")
        # half: most machines count two hardware threads per core, and on a busy 2-core machine 2 torch threads
        # ran 3-15x slower than 1 (measured; quiet, they gave only ~1.4x)
        threads = int(value) if value else max(1, (os.cpu_count() or 2) // 2)
    if not isinstance(threads, int) or not 1 <= threads <= 1024:
        raise ConfigError(f"--threads must be a whole number from 1 to 1024, got {threads!r}")
    torch.set_num_threads(threads)
    return threads
