"""Timing shared by the Python reference benchmarks (no heavy imports)."""
import statistics
import time


def timed(repeats, fn, sync=lambda: None):
    """Median wall time of `fn` over `repeats` runs, after one warm-up; `sync` waits for
    asynchronous work (CUDA) before the clock is read."""
    fn()
    sync()
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t)
    return statistics.median(out)
