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


def pair_step_report(name, model, pairs, seq, seconds):
    """The JSON object of a pairwise training step (chosen and rejected rows of `seq` tokens,
    `pairs` of each) that took `seconds`, under the key `name` (e.g. `rm_step`)."""
    import resource

    import torch
    import transformers
    return {
        "impl": f"transformers {transformers.__version__} / torch {torch.__version__}",
        "threads": torch.get_num_threads(), "attn_implementation": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()), "pairs": pairs, "seq": seq,
        name: {"median_s": seconds, "tokens_per_s": 2 * pairs * seq / seconds, "pairs_per_s": pairs / seconds},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
