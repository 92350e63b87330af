"""PyTorch + transformers reference for `xwin-bench dpo`: one DPO training step on the same
21M config — LlamaForCausalLM over `pairs` chosen and `pairs` rejected rows in one forward,
the response (second half of each row) log-probabilities summed as TRL does (logits,
log_softmax, gather), precomputed reference log-probabilities, -logsigmoid(beta * delta)
averaged over pairs, backward, torch.optim.AdamW. Prints one JSON line."""
import argparse
import json

import torch
from transformers import LlamaForCausalLM

from bench_common import pair_step_report, timed
from bench_infer_torch import config, prompts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    a = p.parse_args()
    cfg = config()
    model = LlamaForCausalLM(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = prompts(2 * a.pairs, a.seq, cfg.vocab_size)
    mask = torch.zeros(2 * a.pairs, a.seq - 1)
    mask[:, a.seq // 2 - 1:] = 1.0
    ref = torch.tensor([[-500.0 - i, -501.0] for i in range(a.pairs)])

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=ids).logits[:, :-1]
        logps = (torch.log_softmax(logits, -1).gather(2, ids[:, 1:, None])[:, :, 0] * mask).sum(1)
        delta = (logps[:a.pairs] - ref[:, 0]) - (logps[a.pairs:] - ref[:, 1])
        loss = -torch.nn.functional.logsigmoid(0.1 * delta).mean()
        loss.backward()
        opt.step()

    s = timed(a.repeats, step)
    print(json.dumps(pair_step_report("dpo_step", model, a.pairs, a.seq, s)))


if __name__ == "__main__":
    main()
