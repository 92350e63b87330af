"""PyTorch + transformers reference for `xwin-bench train`: one full step (forward with
labels, backward, torch.optim.AdamW) on the same 21M config and batch; tokens/s and peak RSS.
Prints one JSON line."""
import argparse
import json
import resource

import torch
from transformers import LlamaForCausalLM

from bench_common import timed
from bench_infer_torch import SIZES, config, prompts


def step_args():
    """The command line both training references take."""
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--size", default="21m", choices=sorted(SIZES))
    return p.parse_args()


def training_step(batch, seq, size="21m"):
    """The benchmark model in training mode, its input ids and one full step (forward with
    labels, backward, torch.optim.AdamW with the paper's settings)."""
    cfg = config(size)
    model = LlamaForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = prompts(batch, seq, cfg.vocab_size)

    def step():
        opt.zero_grad(set_to_none=True)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()

    return model, ids, step


def main():
    a = step_args()
    model, _, step = training_step(a.batch, a.seq, a.size)
    s = timed(a.repeats, step)
    print(json.dumps({
        "impl": f"transformers {__import__('transformers').__version__} / torch {torch.__version__}",
        "threads": torch.get_num_threads(), "attn_implementation": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()), "size": a.size, "batch": a.batch, "seq": a.seq,
        "train_step": {"median_s": s, "tokens_per_s": a.batch * a.seq / s},
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
