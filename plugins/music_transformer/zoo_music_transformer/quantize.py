"""int8 decoding for `generate(quantize=...)`: the decoder's nn.Linear layers with int8 weights.

Decoding one token per step is memory-bound: every step reads every weight once. With int8 weights
(one scale per output channel) a step reads a quarter of fp32's bytes, and fbgemm's dynamic int8
matrix product (torch.ao.quantization.quantize_dynamic: each call quantizes its activations per
tensor, multiplies in int8 with int32 sums, and scales back to fp32) is fast on AVX2 and AVX-512.
On a CPU without AMX it decoded the book config 2-3x faster than fp32 and the small shipped model
1.2-1.6x, for the same music (docs/benchmarks.md and the plugin README have the measurements), so
"auto" picks it there. With AMX the fast path is the
compiled bf16 step (decode.py), and on a GPU fp32, so "auto" keeps fp32 on both.

Generation only: generate() decodes with a quantized copy; the model itself (training, saving,
NLL) keeps its fp32 weights. The copy is made once per model and made again when a parameter
changes (training, load_state_dict).
"""

from __future__ import annotations

import copy
import sys
import warnings
import weakref

import torch
from torch import nn

from zoo.device import cpu_bf16_pays
from zoo.errors import ConfigError

CHOICES = ("auto", "int8", "none")

_copies = weakref.WeakKeyDictionary()   # model -> (its parameters' identities and versions, its int8 copy)
_said = set()                           # one-line notes already printed in this process


def int8_kernels() -> bool:
    """True when torch's quantized engine runs fbgemm's int8 kernels (an x86 CPU: engine x86 or fbgemm)."""
    try:
        from torch.ao.quantization import quantize_dynamic  # noqa: F401  (deprecated in torch; may go one day)
    except ImportError:
        return False
    return torch.backends.quantized.engine in ("x86", "fbgemm")


def choose(quantize: str, device: torch.device, weights: torch.dtype, compile: bool) -> tuple[str, str]:
    """The decoding precision for quantize ("auto", "int8" or "none"): ("int8" or "none", a one-line note
    saying why, "" when there is nothing to say). A ConfigError when "int8" cannot run here."""
    if quantize not in CHOICES:
        raise ConfigError(f"quantize must be one of {', '.join(CHOICES)}, got {quantize!r}")
    if quantize == "int8":
        if device.type != "cpu" or not int8_kernels():
            raise ConfigError("--quantize int8 runs on an x86 CPU (fbgemm's kernels); use --quantize none here")
        if weights != torch.float32:
            raise ConfigError(f"--quantize int8 quantizes fp32 weights, not {str(weights).replace('torch.', '')}; "
                              "leave out --dtype")
        if compile:
            raise ConfigError("--quantize int8 and --compile do not combine; choose one")
        return "int8", ""
    if quantize == "none" or compile or device.type != "cpu" or weights != torch.float32 or not int8_kernels():
        return "none", ""
    if cpu_bf16_pays()[0]:
        return "none", ""   # AMX: fp32 eager as before, or the compiled bf16 step; int8 was not measured there
    return "int8", ("this CPU has no AMX, where int8 weights decoded 1.2-3x faster than fp32 (more for larger "
                    "models) for the same music, with no compile to wait for")


def say_once(note: str) -> None:
    """Print a one-line note on stderr, once per process (zoo eval calls generate many times)."""
    if note and note not in _said:
        _said.add(note)
        print(note, file=sys.stderr, flush=True)


def int8_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose nn.Linear layers hold int8 weights (per output channel) for fbgemm's
    dynamic int8 products; cached, and made again when any parameter was replaced or changed in place."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    state = tuple((id(p), p._version) for p in model.parameters())
    seen = _copies.get(model)
    if seen is None or seen[0] != state:
        quantized = copy.deepcopy(model).eval()
        with warnings.catch_warnings():   # torch's deprecation notes (torchao is the successor) on every call
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions", category=UserWarning)
            quantize_dynamic(quantized, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
        _copies[model] = (state, quantized)
    return _copies[model][1]
