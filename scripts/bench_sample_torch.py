"""PyTorch + transformers reference for `xwin-bench sample`: best-of-N sampling with
`generate(num_return_sequences=N)` on the same config and shapes (transformers expands each
prompt to N rows before the prefill). Prints one JSON line.
Usage: python3 scripts/bench_sample_torch.py [--repeats 5]"""
import argparse
import json

import torch
from transformers import LlamaForCausalLM

from bench_common import timed
from bench_infer_torch import config, prompts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--prompts", type=int, default=4)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--n", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu or cuda (float32 on both)")
    a = p.parse_args()
    cfg = config()
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = LlamaForCausalLM(cfg).eval().to(device)
    ids = prompts(a.prompts, a.prompt_len, cfg.vocab_size).to(device)
    torch.manual_seed(1)
    with torch.inference_mode():
        seconds = timed(a.repeats, lambda: model.generate(
            ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=1.0, top_k=0,
            top_p=1.0, num_return_sequences=a.n, max_new_tokens=a.new_tokens,
            min_new_tokens=a.new_tokens, pad_token_id=0), sync)
    generated = a.prompts * a.n * a.new_tokens
    print(json.dumps({
        "impl": f"transformers {__import__('transformers').__version__} / torch {torch.__version__}",
        "device": a.device,
        "threads": torch.get_num_threads(),
        "params": sum(p.numel() for p in model.parameters()),
        "shape": {"prompts": a.prompts, "prompt_len": a.prompt_len, "n": a.n, "new_tokens": a.new_tokens},
        "best_of_n": {"median_s": seconds, "tokens_per_s": generated / seconds},
    }))


if __name__ == "__main__":
    main()
