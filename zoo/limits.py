"""The ranges every number a user gives must fall in, checked before any model is loaded or built.

One place for the CLI, the Python API (Model.generate, see zoo.model) and training, so the documented
ranges (docs/reliability.md, "Limits") are the ones enforced. Each bound is far above real use and far
below what exhausts a machine: `--num 10**6` or `--length 10**9` asked for gigabytes and ran for hours.
"""

from __future__ import annotations

import dataclasses
import math

from zoo.errors import ConfigError

MAX_NUM = 1_000               # pieces per `generate` call (one file each)
MAX_EVAL_NUM = 100_000        # pieces `zoo eval` generates, in batches
MAX_BATCH = 4_096             # pieces per generate() call in `zoo eval`, and training batch size
MAX_LENGTH = 100_000          # new tokens per piece: ~10^3 s of music; time grows with it, memory little
MAX_SEED = 2 ** 32 - 1        # numpy's legacy seeding (used in training) takes 0..2**32-1
MAX_TOP_K = 1_000_000
TEMPERATURE = (1e-3, 1e3)     # or exactly 0 (greedy): 1e-40 overflowed the logits, 1e300 underflowed them
MIN_TOP_P = 1e-6              # up to 1; far below this every token but the first is dropped anyway
MAX_STEPS = 10 ** 9
MAX_GRAD_ACCUM = 1_024        # micro-batches per optimizer step, each a forward and a backward pass (10**9: never ends)
MAX_KEEP_CHECKPOINTS = 1_000
MAX_WHOLE_NUMBER = 10 ** 9    # any other whole-number option, a plugin's own included (counts, intervals, sizes)


def _finite(value) -> bool:
    """An int or float (not a bool), neither inf nor NaN."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(value, name: str, lo: int, hi: int, allow_none: bool = False) -> None:
    """An integer (not a bool or a float) in [lo, hi], else a ConfigError saying the range."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{name} must be a whole number from {lo:,} to {hi:,}, got {value!r}")


def check_whole_numbers(config, bounds: dict[str, tuple[int, int]]) -> None:
    """Every whole-number field of a config dataclass within its bounds; a field without bounds (a plugin's
    own, say) within +-MAX_WHOLE_NUMBER, so no integer option is unbounded."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if isinstance(value, int) and not isinstance(value, bool):
            if field.name in bounds:
                check_int(value, field.name, *bounds[field.name])
            elif abs(value) > MAX_WHOLE_NUMBER:
                raise ConfigError(f"{field.name} must be a whole number of at most {MAX_WHOLE_NUMBER:,}, "
                                  f"got {value!r}")


def check_seed(seed, name: str = "seed") -> None:
    check_int(seed, name, 0, MAX_SEED, allow_none=True)


def check_num(num, name: str = "num", hi: int = MAX_NUM) -> None:
    check_int(num, name, 1, hi)


def check_sampling(temperature=None, top_k=None, top_p=None, length=None) -> None:
    """Sampling options of sequence models; None means the model's default."""
    low, high = TEMPERATURE
    if temperature is not None and not (_finite(temperature) and (temperature == 0 or low <= temperature <= high)):
        raise ConfigError(f"temperature must be 0 (greedy) or from {low:g} to {high:g}, got {temperature!r}")
    check_int(top_k, "top_k", 1, MAX_TOP_K, allow_none=True)
    if top_p is not None and not (_finite(top_p) and MIN_TOP_P <= top_p <= 1):
        raise ConfigError(f"top_p must be from {MIN_TOP_P:g} to 1, got {top_p!r}")
    check_int(length, "length", 1, MAX_LENGTH, allow_none=True)

# -- the Hugging Face Hub (zoo.hubnet) --------------------------------------------------------------
# huggingface_hub's timeouts are per socket read: a server sending a byte every few seconds, or a body
# without end, held `zoo pull` forever. Each zoo Hub call (pull, push) gets one deadline instead.
HUB_TIMEOUT_S = 60.0          # default of $ZOO_HUB_TIMEOUT: the deadline of one call, before any file data
HUB_TIMEOUT_RANGE = (1.0, 86_400.0)
HUB_MIN_RATE = 128 * 1024     # bytes/s: the deadline grows by one second per 128 KiB that arrives (never declared)
MAX_HUB_ANSWER_BYTES = 16 * 1024 * 1024   # one API answer (JSON), config.json or manifest.json
HUB_MAX_BYTES = 64 * 1024 ** 3            # default of $ZOO_HUB_MAX_BYTES: the files of one pull, as the Hub declares them
HUB_MAX_BYTES_LIMIT = 1024 ** 5           # the most $ZOO_HUB_MAX_BYTES may say (1 PiB)
MAX_HUB_FILES = 1_000                      # files one manifest may list
