"""Mixed-precision references for xwin from torch.autocast on the CPU (HF's Llama, eager
attention): the tiny-llama fixture on a right-padded batch, in float32 and under autocast
bf16 and f16. Per precision: the logits, the masked SFT loss (labels -100 outside the mask)
and every parameter's gradient; and six AdamW steps on that batch (lr 1e-3, betas 0.9/0.999,
eps 1e-8, no weight decay, no clipping): f32, bf16 autocast, and f16 autocast with
torch.amp.GradScaler (init 2**16, growth_interval 2000).

Writes fixtures/train/mixed.json and fixtures/train/mixed_grads.safetensors (f32 tensors named
"<precision>/<HF name>", plus "<precision>/logits")."""
import json
import os

import torch
from safetensors.torch import save_file
from transformers import LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..")
src = os.path.join(ROOT, "fixtures", "tiny-llama")
out = os.path.join(ROOT, "fixtures", "train")

exp = json.load(open(os.path.join(src, "expected.json")))
ids = torch.tensor(exp["input_ids"])
# Row 1 is right-padded after 9 tokens; loss on tokens 6..11 of row 0 and 3..8 of row 1.
attention = torch.ones_like(ids)
attention[1, 9:] = 0
mask = torch.zeros_like(ids, dtype=torch.bool)
mask[0, 6:12] = True
mask[1, 3:9] = True
labels = ids.masked_fill(~mask, -100)
DTYPES = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}


def load():
    m = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32, attn_implementation="eager")
    m.train()
    return m


def forward(model, dtype):
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        out = model(input_ids=ids, attention_mask=attention, labels=labels)
    return out.logits.float(), out.loss


tensors, record = {}, {}
for name, dtype in DTYPES.items():
    model = load()
    logits, loss = forward(model, dtype)
    loss.backward()
    tensors[f"{name}/logits"] = logits.detach().contiguous()
    for n, p in model.named_parameters():
        tensors[f"{name}/{n}"] = p.grad.detach().float().contiguous()
    record[name] = {"loss": loss.item()}

for name, dtype in DTYPES.items():
    torch.manual_seed(0)
    model = load()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16, growth_interval=2000) if name == "f16" else None
    losses, scales = [], []
    for _ in range(6):
        opt.zero_grad()
        _, loss = forward(model, dtype)
        losses.append(loss.item())
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scales.append(scaler.get_scale())
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
    record[name]["curve"] = losses
    if scales:
        record[name]["scales"] = scales

save_file(tensors, os.path.join(out, "mixed_grads.safetensors"))
json.dump({
    "generator": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, autocast on the CPU",
    "input_ids": exp["input_ids"],
    "attention_mask": attention.tolist(),
    "loss_mask": mask.int().tolist(),
    "adamw": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0},
    "precisions": record,
}, open(os.path.join(out, "mixed.json"), "w"), indent=1)
print(json.dumps(record, indent=1))
