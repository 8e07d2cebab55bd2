"""Progress output: bars only on a terminal, plain lines otherwise."""

from __future__ import annotations

import contextlib
import sys


def interactive() -> bool:
    """True when both stdout and stderr are terminals (bars would not garble a pipe or a log)."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def bar(total: int | None = None, desc: str = "", initial: int = 0, unit: str = "it", leave: bool = True):
    """A tqdm bar on stderr, disabled when not on a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not interactive(), dynamic_ncols=True, file=sys.stderr,
                unit=unit, leave=leave)


@contextlib.contextmanager
def status(message: str):
    """Say what slow thing is happening, on a terminal only."""
    if interactive():
        print(f"{message}…", file=sys.stderr, flush=True)
    yield
