"""5. CLI start-up, wall time of a fresh process: `zoo --help` and `zoo list`, beside Python itself and `import torch`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def _wall(cmd) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ})
    dt = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd} failed: {proc.stderr[-500:]}")
    return dt


def run(bench):
    zoo = str(Path(sys.executable).with_name("zoo"))
    py = sys.executable
    cases = [("python -c pass (interpreter alone)", [py, "-c", "pass"]),
             ("python -c 'import torch'", [py, "-c", "import torch"]),
             ("zoo --help", [zoo, "--help"]),
             ("zoo list", [zoo, "list"])]
    rows = []
    for label, cmd in cases:
        rows.append({"impl": label, "s": bench.median(lambda: _wall(cmd), f"cli {label}", timed=False)})
    torch_s = rows[1]["s"]
    for r in rows:
        r["ratio"] = r["s"] / torch_s   # share of an `import torch`
    return {"rows": rows, "notes": ["ratio: wall time / the wall time of `python -c 'import torch'`"]}
