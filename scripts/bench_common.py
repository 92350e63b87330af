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


def train_flops_per_token(cfg, seq):
    """Model FLOPs of one training token at sequence length `seq`, as `xwin-bench` counts
    them: 6 per weight that multiplies (all but the embedding table; the LM head counts) plus
    causal attention's two products, 6·seq·(heads·head_dim) per layer."""
    h, layers, inter = cfg.hidden_size, cfg.num_hidden_layers, cfg.intermediate_size
    head_dim = getattr(cfg, "head_dim", None) or h // cfg.num_attention_heads
    q = cfg.num_attention_heads * head_dim
    kv = cfg.num_key_value_heads * head_dim
    layer = 2 * h * q + 2 * h * kv + 3 * h * inter
    return 6 * (layers * layer + cfg.vocab_size * h) + 6 * layers * seq * q
