"""Peak memory of a checkpoint save under torchrun, per rank: run it with 2 processes, e.g.

    torchrun --nproc_per_node 2 benchmarks/bench_ckpt_memory.py --config configs/music_transformer_book.json \\
        --data DIR --out /tmp/ckpt-mem --set distributed=fsdp

Every save_checkpoint is timed while a thread samples this process's resident memory (VmRSS) every 2 ms;
each rank prints its RSS before the save and the highest RSS during it. Before each save, malloc_trim(0) hands
the memory the step freed (activations) back to the OS: otherwise the save reuses that freed heap and its
own allocations never show in RSS. Arguments are `zoo train`'s
(the architecture defaults to music-transformer)."""

from __future__ import annotations

import os
import sys
import threading
import time

import zoo.train.loop as loop


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measured(save):
    def wrapper(run, trainer, step, state):
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        before, peak, done = rss_mb(), [0.0], threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb())
                time.sleep(0.002)

        sampler = threading.Thread(target=sample)
        sampler.start()
        t0 = time.monotonic()
        try:
            return save(run, trainer, step, state)
        finally:
            done.set()
            sampler.join()
            peak[0] = max(peak[0], rss_mb())
            print(f"ckpt-memory rank {trainer.rank} step {step}: RSS before {before:.0f} MB, peak during the save "
                  f"{peak[0]:.0f} MB (+{peak[0] - before:.0f} MB), {time.monotonic() - t0:.2f} s", file=sys.stderr,
                  flush=True)
    return wrapper


if __name__ == "__main__":
    loop.save_checkpoint = measured(loop.save_checkpoint)
    from zoo.cli import main

    args = sys.argv[1:]
    if not args or args[0].startswith("-"):
        args = ["music-transformer", *args]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main(["train", *args]))
