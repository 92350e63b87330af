"""PyTorch + transformers reference for `xwin-bench infer` (same config, same shapes).
Prints one JSON line. Usage: python3 scripts/bench_infer_torch.py [--repeats 5]"""
import argparse
import json

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from bench_common import timed


# (hidden, layers, MLP, heads) per `--size`, as `xwin_bench::BenchSize` spells them.
SIZES = {"21m": (256, 6, 688, 8), "143m": (768, 12, 2048, 12), "760m": (1536, 24, 4096, 16),
         "7b-2l": (4096, 2, 11008, 32)}


def config(size="21m"):
    hidden, layers, mlp, heads = SIZES[size]
    context = 4096 if size == "7b-2l" else 1024
    return LlamaConfig(vocab_size=32000, hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=context,
                       rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2)


def prompts(batch, length, vocab):
    return torch.tensor([[(b * 7919 + t * 104729) % (vocab - 3) + 3 for t in range(length)] for b in range(batch)])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--prefill-batch", type=int, default=4)
    p.add_argument("--prefill-seq", type=int, default=256)
    p.add_argument("--decode-batch", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu or cuda (float32 on both)")
    p.add_argument("--size", default="21m", choices=sorted(SIZES))
    a = p.parse_args()
    cfg = config(a.size)
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    model = LlamaForCausalLM(cfg).eval().to(device)
    ids = prompts(a.prefill_batch, a.prefill_seq, cfg.vocab_size).to(device)
    dec = prompts(a.decode_batch, a.prompt_len, cfg.vocab_size).to(device)
    with torch.inference_mode():
        prefill = timed(a.repeats, lambda: model(ids).logits, sync)
        decode = timed(a.repeats, lambda: model.generate(
            dec, attention_mask=torch.ones_like(dec), max_new_tokens=a.new_tokens,
            min_new_tokens=a.new_tokens, do_sample=False, pad_token_id=0), sync)
    print(json.dumps({
        "impl": f"transformers {__import__('transformers').__version__} / torch {torch.__version__}",
        "device": a.device,
        "threads": torch.get_num_threads(),
        "attn_implementation": model.config._attn_implementation,
        "params": sum(p.numel() for p in model.parameters()),
        "size": a.size,
        "prefill": {"batch": a.prefill_batch, "seq": a.prefill_seq, "median_s": prefill,
                    "tokens_per_s": a.prefill_batch * a.prefill_seq / prefill},
        "decode": {"batch": a.decode_batch, "prompt_len": a.prompt_len, "new_tokens": a.new_tokens,
                   "median_s": decode, "tokens_per_s": a.decode_batch * a.new_tokens / decode},
    }))


if __name__ == "__main__":
    main()
