"""PyTorch + transformers reference for `xwin-bench rm`: one reward-model training step on
the same 21M config — LlamaForSequenceClassification (one label) over `pairs` chosen and
`pairs` rejected rows in one forward, -logsigmoid(r_w - r_l).mean(), backward,
torch.optim.AdamW. Prints one JSON line."""
import argparse
import json

import torch
from transformers import LlamaForSequenceClassification

from bench_common import pair_step_report, timed
from bench_infer_torch import config, prompts


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    a = p.parse_args()
    cfg = config()
    cfg.num_labels = 1
    cfg.pad_token_id = 0
    model = LlamaForSequenceClassification(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = prompts(2 * a.pairs, a.seq, cfg.vocab_size)

    def step():
        opt.zero_grad(set_to_none=True)
        rewards = model(input_ids=ids).logits[:, 0]
        loss = -torch.nn.functional.logsigmoid(rewards[:a.pairs] - rewards[a.pairs:]).mean()
        loss.backward()
        opt.step()

    s = timed(a.repeats, step)
    print(json.dumps(pair_step_report("rm_step", model, a.pairs, a.seq, s)))


if __name__ == "__main__":
    main()
