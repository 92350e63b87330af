"""Reference for one DPO training step, from torch/transformers.

Policy: fixtures/tiny-llama. Reference: the same model with every weight perturbed by
0.02·N(0, 1) (seed 11), saved to fixtures/train/dpo_ref. A batch of 3 pairs: a prompt (BOS +
random ids) followed by a chosen or a rejected response ending in EOS, chosen rows then
rejected rows, right-padded with 0; each response's log-probability is the sum of
log_softmax over its tokens (the prompt is not scored). Loss, per pair averaged over the
batch: -logsigmoid(beta * delta) + alpha * (-policy_chosen / chosen_tokens), beta 0.1,
alpha 0.3 (the SFT / RPO term as xwin defines it), delta = (pc - rc) - (pr - rr). Then one
torch.optim.AdamW step (lr 1e-3, betas 0.9/0.999, eps 1e-6, no weight decay).

Writes fixtures/train/dpo_step.json and fixtures/train/dpo_step/ (the policy after the step).
Run: python3 scripts/make_dpo_fixtures.py (torch, transformers, safetensors)."""
import json
import os

import torch
import transformers
from transformers import LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "fixtures")
OUT = os.path.join(FIX, "train")
BETA, ALPHA = 0.1, 0.3


def reference():
    model = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "tiny-llama"), dtype=torch.float32)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    path = os.path.join(OUT, "dpo_ref")
    model.save_pretrained(path)
    return path


def pairs(vocab):
    g = torch.Generator().manual_seed(7)
    out = []
    for _ in range(3):
        prompt = [1] + torch.randint(3, vocab, (int(torch.randint(2, 6, (1,), generator=g)),), generator=g).tolist()
        side = lambda: torch.randint(3, vocab, (int(torch.randint(1, 6, (1,), generator=g)),), generator=g).tolist() + [2]
        out.append({"prompt": prompt, "chosen": side(), "rejected": side()})
    return out


def logps(model, ids, attention, starts):
    logits = model(input_ids=ids, attention_mask=attention).logits
    lp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:, None])[:, :, 0]
    mask = torch.zeros_like(lp)
    for r, (start, end) in enumerate(starts):
        mask[r, start - 1:end - 1] = 1.0
    return (lp * mask).sum(1), mask.sum(1)


def main():
    torch.use_deterministic_algorithms(True)
    ref_path = reference()
    policy = LlamaForCausalLM.from_pretrained(os.path.join(FIX, "tiny-llama"), dtype=torch.float32,
                                              attn_implementation="eager")
    ref = LlamaForCausalLM.from_pretrained(ref_path, dtype=torch.float32, attn_implementation="eager")
    data = pairs(policy.config.vocab_size)
    rows = [p["prompt"] + p["chosen"] for p in data] + [p["prompt"] + p["rejected"] for p in data]
    starts = [(len(p["prompt"]), len(p["prompt"]) + len(p[k])) for k in ("chosen", "rejected") for p in data]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    attention = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    with torch.no_grad():
        ref_lp, _ = logps(ref, ids, attention, starts)
    policy.train()
    pol_lp, counts = logps(policy, ids, attention, starts)
    pc, pr = pol_lp[:3], pol_lp[3:]
    rc, rr = ref_lp[:3], ref_lp[3:]
    delta = (pc - rc) - (pr - rr)
    loss = (-torch.nn.functional.logsigmoid(BETA * delta) + ALPHA * (-pc / counts[:3])).mean()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0)
    loss.backward()
    grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in policy.parameters())).item()
    opt.step()
    policy.save_pretrained(os.path.join(OUT, "dpo_step"))
    out = {"generator": f"transformers {transformers.__version__}, torch {torch.__version__}; "
                        "scripts/make_dpo_fixtures.py",
           "beta": BETA, "sft_weight": ALPHA,
           "optimizer": {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-6, "weight_decay": 0.0},
           "pairs": data, "policy_logps": pol_lp.tolist(), "reference_logps": ref_lp.tolist(),
           "loss": loss.item(), "grad_norm": grad_norm}
    json.dump(out, open(os.path.join(OUT, "dpo_step.json"), "w"), indent=1)
    print(json.dumps({"loss": out["loss"], "grad_norm": grad_norm, "policy_logps": out["policy_logps"]}))


if __name__ == "__main__":
    main()
