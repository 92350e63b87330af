"""PyTorch + transformers reference for `xwin-bench train`: one full step (forward with
labels, backward, torch.optim.AdamW) on the same 21M config and batch; tokens/s and peak RSS.
Prints one JSON line."""
import argparse
import json
import resource

import torch
from transformers import LlamaForCausalLM

from bench_common import timed, train_flops_per_token
from bench_infer_torch import SIZES, config, prompts


def step_args():
    """The command line both training references take."""
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--size", default="21m", choices=sorted(SIZES))
    p.add_argument("--device", default="cpu", help="cpu or cuda (float32 weights on both)")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast (mixed precision)")
    p.add_argument("--peak-tflops", type=float, help="the device's peak, for model FLOP utilisation")
    return p.parse_args()


def training_step(batch, seq, size="21m", device="cpu", bf16=False):
    """The benchmark model in training mode, its input ids and one full step (forward with
    labels, backward, torch.optim.AdamW with the paper's settings), on `device`, optionally
    under bf16 autocast."""
    cfg = config(size)
    model = LlamaForCausalLM(cfg).train().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = prompts(batch, seq, cfg.vocab_size).to(device)
    kind = torch.device(device).type

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()

    return model, ids, step


def main():
    a = step_args()
    model, _, step = training_step(a.batch, a.seq, a.size, a.device, a.bf16)
    cuda = torch.device(a.device).type == "cuda"
    s = timed(a.repeats, step, torch.cuda.synchronize if cuda else (lambda: None))
    peak = {"peak_gpu_mib": torch.cuda.max_memory_allocated() / 2**20} if cuda else {}
    tflops = train_flops_per_token(model.config, a.seq) * a.batch * a.seq / s / 1e12
    print(json.dumps({
        "device": a.device, "bf16_autocast": a.bf16, **peak,
        "impl": f"transformers {__import__('transformers').__version__} / torch {torch.__version__}",
        "threads": torch.get_num_threads(), "attn_implementation": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()), "size": a.size, "batch": a.batch, "seq": a.seq,
        "train_step": {"median_s": s, "tokens_per_s": a.batch * a.seq / s},
        "model_tflops_per_s": tflops, "mfu": tflops / a.peak_tflops if a.peak_tflops else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))


if __name__ == "__main__":
    main()
