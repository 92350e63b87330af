"""Reference numbers for xwin-train from torch/transformers: the masked SFT loss on the
tiny-llama fixture (labels -100 outside the mask) and the parameters after one
torch.optim.AdamW step (betas 0.9/0.999, eps 1e-8, weight decay 0, lr 1e-3).
Writes fixtures/train/sft_step.json and fixtures/train/after_adamw/model.safetensors."""
import json
import os

import torch
from transformers import LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..")
src = os.path.join(ROOT, "fixtures", "tiny-llama")
out = os.path.join(ROOT, "fixtures", "train")
os.makedirs(out, exist_ok=True)

model = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
model.train()
exp = json.load(open(os.path.join(src, "expected.json")))
ids = torch.tensor(exp["input_ids"])
# Loss mask: train on tokens 6..11 of row 0 and 3..8 of row 1 (like two assistant replies).
mask = torch.zeros_like(ids, dtype=torch.bool)
mask[0, 6:12] = True
mask[1, 3:9] = True
labels = ids.masked_fill(~mask, -100)
loss = model(input_ids=ids, labels=labels).loss
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
opt.zero_grad()
loss.backward()
grad_norm = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters())).item()
# Gradients too: where |g| is far below eps the first Adam step g/(|g|+eps) amplifies float
# rounding in g, so the parity test needs to know where that happens.
from safetensors.torch import save_file
save_file({n: p.grad.contiguous() for n, p in model.named_parameters()}, os.path.join(out, "grads.safetensors"))
opt.step()
model.save_pretrained(os.path.join(out, "after_adamw"))
json.dump({
    "generator": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}",
    "input_ids": exp["input_ids"],
    "loss_mask": mask.int().tolist(),
    "sft_loss": loss.item(),
    "grad_norm": grad_norm,
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
}, open(os.path.join(out, "sft_step.json"), "w"), indent=1)
print("loss", loss.item(), "grad_norm", grad_norm)
