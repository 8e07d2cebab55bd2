"""Run every MIDI-reading path on every file of a corpus, in one bounded process.

    python -m tests.hostile.probe CORPUS_DIR RESULTS.jsonl [--mem-mb N] [--per-file-s S]

Each file gets one JSON line per path: {"file", "path", "outcome", "message", "seconds"},
outcome "ok" (a valid result), "zoo-error" (a zoo.errors.ZooError: the clean error a
user sees), "other-error" (any other exception: a bug), "timeout". A "start" line is
flushed before each step, so if the process dies (segfault, OOM kill, hang killed by
the parent) the parent still knows which file and path did it. The address space is
capped with RLIMIT_AS so a memory blow-up shows as MemoryError, not as a dead machine.
Python-level loops are bounded by SIGALRM; native code that never returns is bounded
by the parent's subprocess timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time
import warnings
from pathlib import Path


class Timeout(BaseException):
    """Raised by SIGALRM; a BaseException so that `except Exception` in the code under test cannot swallow it."""


def _alarm(signum, frame):
    raise Timeout()


def _mt_encode_path(path):
    from zoo_music_transformer.tokenizer import PerformanceTokenizer

    ids = PerformanceTokenizer().encode(path)
    assert ids.dtype.is_floating_point is False and ids.dim() == 1
    return f"{len(ids)} tokens"


def _read(path):
    from zoo.midi import read_midi

    return read_midi(path)


def _mt_encode_midi(path):
    from zoo_music_transformer.tokenizer import PerformanceTokenizer

    ids = PerformanceTokenizer().encode(_read(path))
    return f"{len(ids)} tokens"


def _musegan_encode_midi(path):
    from zoo_musegan.tokenizer import PianoRollTokenizer

    roll = PianoRollTokenizer().encode(_read(path))
    assert roll.dim() == 5
    return f"roll {tuple(roll.shape)}"


def _read_midi(path):
    m = _read(path)
    return f"{sum(len(i.notes) for i in m.instruments)} notes, end {m.get_end_time():.1f} s"


PATHS = {
    "read_midi": _read_midi,                  # zoo.midi.read_midi: prompts, `zoo plot`, anything in the core
    "mt.encode(path)": _mt_encode_path,       # music-transformer prompt / data path (symusic)
    "mt.encode(midi)": _mt_encode_midi,       # music-transformer tokenizer on a PrettyMIDI
    "musegan.encode(midi)": _musegan_encode_midi,
}


def run(corpus: Path, out, per_file_s: float, only: list[str] | None = None) -> None:
    signal.signal(signal.SIGALRM, _alarm)
    warnings.simplefilter("ignore")
    files = sorted(os.listdir(os.fsencode(corpus)))
    for raw in files:
        path = Path(os.fsdecode(os.path.join(os.fsencode(corpus), raw)))
        fname = os.fsdecode(raw)
        for pname, fn in PATHS.items():
            if only and pname not in only:
                continue
            base = {"file": fname, "path": pname}
            out.write(json.dumps({**base, "outcome": "start"}) + "\n")
            out.flush()
            t0 = time.monotonic()
            signal.setitimer(signal.ITIMER_REAL, per_file_s)
            try:
                msg, outcome = fn(path), "ok"
            except Timeout:
                msg, outcome = f"over {per_file_s} s", "timeout"
            except BaseException as exc:  # classify everything, including MemoryError
                from zoo.errors import ZooError

                outcome = "zoo-error" if isinstance(exc, ZooError) else "other-error"
                msg = f"{type(exc).__name__}: {exc}"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            out.write(json.dumps({**base, "outcome": outcome, "message": msg,
                                  "seconds": round(time.monotonic() - t0, 3)}) + "\n")
            out.flush()


def limit_memory(mb: int) -> None:
    """Cap this process's address space (torch's import alone maps ~1-2 GB of it)."""
    limit = mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("results")
    p.add_argument("--mem-mb", type=int, default=3072)
    p.add_argument("--per-file-s", type=float, default=10.0)
    p.add_argument("--only", action="append")
    a = p.parse_args(argv)
    import torch  # noqa: F401  (import before the cap: it maps a lot of address space once)

    limit_memory(a.mem_mb)
    with open(a.results, "w") as out:
        run(Path(a.corpus), out, a.per_file_s, a.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
