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


_PARSED: dict = {}


def _read(path):
    """zoo.midi.read_midi, parsed once per file and shared by the paths that take a PrettyMIDI."""
    from zoo.errors import ZooError
    from zoo.midi import read_midi

    if path not in _PARSED:
        _PARSED.clear()
        try:
            _PARSED[path] = read_midi(path)
        except ZooError as exc:
            _PARSED[path] = exc
    if isinstance(_PARSED[path], ZooError):
        raise _PARSED[path]
    return _PARSED[path]


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


def _plot(path):
    from zoo_render import plot_pianoroll

    out = Path(os.environ["PROBE_TMP"]) / "plot.png"
    plot_pianoroll(path, out, dpi=20)  # a small raster: reading and bounding the input is what is tested
    assert out.stat().st_size > 0
    return "plotted"


def _cli_generate(path):
    """`zoo generate MODEL --prompt FILE` through zoo.cli.main (the console script's function), in-process."""
    import contextlib
    import io

    from zoo.cli import main

    out = Path(os.environ["PROBE_TMP"]) / "gen.mid"
    out.unlink(missing_ok=True)
    err, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(stdout):
        rc = main(["generate", os.environ["PROBE_MODEL"], "--prompt", str(path), "-o", str(out),
                   "--length", "4", "--device", "cpu", "--seed", "1"])
    lines = err.getvalue().strip().splitlines()
    if rc == 0 and out.is_file():
        return "wrote MIDI"
    if rc == 2 and len(lines) == 1 and lines[0].startswith("zoo: error:") and not out.exists():
        from zoo.errors import ZooError

        raise ZooError(lines[0])  # the clean outcome, reported like the others
    raise AssertionError(f"exit {rc}, output {'left' if out.exists() else 'absent'}, stderr: {err.getvalue()[-800:]}")


PATHS = {
    "read_midi": _read_midi,                  # zoo.midi.read_midi: prompts, `zoo plot`, anything in the core
    "mt.encode(path)": _mt_encode_path,       # music-transformer prompt / data path (symusic)
    "mt.encode(midi)": _mt_encode_midi,       # music-transformer tokenizer on a PrettyMIDI
    "musegan.encode(midi)": _musegan_encode_midi,
    "zoo plot": _plot,                        # zoo_render.plot_pianoroll, what `zoo plot` runs
    "zoo generate --prompt": _cli_generate,   # zoo.cli.main with a tiny music-transformer
}


def _mt_folder(corpus: Path):
    from zoo_music_transformer.data import midi_folder_corpus

    c = midi_folder_corpus(corpus, workers=1)
    return {"used": sorted(c.names), "skipped": sorted(c.skipped), "stats": c.stats()}


def _musegan_folder(corpus: Path):
    from zoo_chorales.data import load_midi_folder

    d = load_midi_folder(corpus)
    used = sorted({n for names in d.sources.values() for n in names})
    return {"used": used, "skipped": sorted(n for v in d.stats["skipped_by_reason"].values() for n in v),
            "stats": {k: v for k, v in d.stats.items() if k != "skipped_by_reason"}}


def _cli_eval(corpus: Path):
    """`zoo eval MODEL --data CORPUS` through zoo.cli.main, in-process: exit code and stderr."""
    import contextlib
    import io

    from zoo.cli import main

    os.environ["ZOO_CACHE_DIR"] = str(Path(os.environ["PROBE_TMP"]) / "eval-cache")  # read the files afresh
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(["eval", os.environ["PROBE_MODEL"], "--data", str(corpus), "--num", "2", "--batch-size", "2",
                   "--length", "4", "--device", "cpu"])
    return {"rc": rc, "stderr": err.getvalue()[-3000:], "stdout": out.getvalue()[-3000:]}


DATASETS = {"mt.midi_folder_corpus": _mt_folder, "musegan.load_midi_folder": _musegan_folder,
            "zoo eval --data": _cli_eval}


def probe_one(out, base: dict, fn, arg, limit_s: float) -> None:
    """Run fn(arg) under a time limit and write its start and its classified outcome as JSON lines."""
    out.write(json.dumps({**base, "outcome": "start"}) + "\n")
    out.flush()
    t0 = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        msg, outcome = fn(arg), "ok"
    except Timeout:
        msg, outcome = f"over {limit_s} s", "timeout"
    except BaseException as exc:  # classify everything, including MemoryError
        from zoo.errors import ZooError

        outcome = "zoo-error" if isinstance(exc, ZooError) else "other-error"
        msg = f"{type(exc).__name__}: {exc}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    out.write(json.dumps({**base, "outcome": outcome, "message": msg,
                          "seconds": round(time.monotonic() - t0, 3)}) + "\n")
    out.flush()


def run_datasets(corpus: Path, out, limit_s: float) -> None:
    """Each plugin's MIDI-folder loader over the whole corpus: it must skip and count the bad files."""
    for dname, fn in DATASETS.items():
        probe_one(out, {"file": "*", "path": dname}, fn, corpus, limit_s)


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
            probe_one(out, {"file": fname, "path": pname}, fn, path, per_file_s)


def limit_memory(mb: int) -> None:
    """Cap this process's address space at what it maps now plus `mb` MiB (a CUDA build of torch maps
    several GB at import, a CPU build ~1 GB, so the cap is relative)."""
    mapped = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                mapped = int(line.split()[1]) * 1024
    limit = mapped + mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("corpus")
    p.add_argument("results")
    p.add_argument("--mem-mb", type=int, default=2048, help="address space allowed beyond what torch maps")
    p.add_argument("--per-file-s", type=float, default=10.0)
    p.add_argument("--only", action="append")
    p.add_argument("--datasets-s", type=float, default=0, help="also run the folder loaders, bounded by this many s")
    a = p.parse_args(argv)
    import torch  # noqa: F401  (import before the cap: it maps a lot of address space once)

    limit_memory(a.mem_mb)
    with open(a.results, "w") as out:
        run(Path(a.corpus), out, a.per_file_s, a.only)
        if a.datasets_s:
            run_datasets(Path(a.corpus), out, a.datasets_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
