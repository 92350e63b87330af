"""Reference for the reward model's training step, from torch/transformers.

Two reward models: the shared `tiny-llama-rm` fixture (untied embeddings) and one built on
the tied-embedding `gen/tied-mha-theta500k` base with a seeded score head (saved to
fixtures/train/rm_tied, pad id 0). For each: a batch of 3 pairs (chosen and rejected,
right-padded together, pad 0), the Bradley-Terry loss mean(-logsigmoid(r_w - r_l)), and the
parameters after one torch.optim.AdamW step (lr 1e-3, betas 0.9/0.999, eps 1e-6, no weight
decay; eps 1e-6 keeps every element's update a continuous function of its gradient).

Writes fixtures/train/rm_step.json and fixtures/train/rm_step_{untied,tied}/.
Run: python3 scripts/make_rm_fixtures.py (torch, transformers, safetensors)."""
import json
import os

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "fixtures")
OUT = os.path.join(FIX, "train")


def tied_rm():
    base = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "gen", "tied-mha-theta500k"),
                                            dtype=torch.float32)
    config = LlamaConfig.from_pretrained(os.path.join(FIX, "gen", "tied-mha-theta500k"))
    config.num_labels = 1
    config.pad_token_id = 0
    config.architectures = ["LlamaForSequenceClassification"]
    rm = LlamaForSequenceClassification(config)
    rm.model.load_state_dict(base.model.state_dict())
    torch.manual_seed(3)
    torch.nn.init.normal_(rm.score.weight, std=0.1)
    path = os.path.join(OUT, "rm_tied")
    rm.save_pretrained(path)
    return path


def pairs(vocab):
    g = torch.Generator().manual_seed(5)
    rows = []
    for _ in range(6):
        n = int(torch.randint(4, 11, (1,), generator=g))
        rows.append([1] + torch.randint(3, vocab, (n - 2,), generator=g).tolist() + [2])
    return rows[:3], rows[3:]


def step(path, name):
    rm = LlamaForSequenceClassification.from_pretrained(path, dtype=torch.float32,
                                                        attn_implementation="eager")
    rm.train()
    chosen, rejected = pairs(rm.config.vocab_size)
    rows = chosen + rejected
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    rewards = rm(input_ids=ids, attention_mask=mask).logits[:, 0]
    r_w, r_l = rewards[:3], rewards[3:]
    loss = -torch.nn.functional.logsigmoid(r_w - r_l).mean()
    opt = torch.optim.AdamW(rm.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in rm.parameters())).item()
    opt.step()
    rm.save_pretrained(os.path.join(OUT, f"rm_step_{name}"))
    return {"model": os.path.relpath(path, FIX), "chosen": chosen, "rejected": rejected,
            "rewards_chosen": r_w.tolist(), "rewards_rejected": r_l.tolist(),
            "loss": loss.item(), "grad_norm": grad_norm}


def main():
    torch.use_deterministic_algorithms(True)
    cases = {"untied": step(os.path.join(FIX, "tiny-llama-rm"), "untied"),
             "tied": step(tied_rm(), "tied")}
    json.dump({"generator": f"transformers {transformers.__version__}, torch {torch.__version__}; "
                            "scripts/make_rm_fixtures.py",
               "optimizer": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "weight_decay": 0.0},
               "cases": cases}, open(os.path.join(OUT, "rm_step.json"), "w"), indent=1)
    print(json.dumps({k: {"loss": v["loss"], "grad_norm": v["grad_norm"]} for k, v in cases.items()}))


if __name__ == "__main__":
    main()
