"""Reference for the training loop over whole optimizer steps, from Hugging Face's Trainer.

4 optimizer steps of the tiny-llama fixture, gradient accumulation 2 over right-padded
micro-batches of 2 rows with unequal trained-token counts, 1 warm-up step (lr 0 at the first
step) then cosine, gradient clipping that clips two of the four steps, AdamW with weight decay 0.1 in the Trainer's
parameter groups (no decay on norms and biases).

The numbers come from `transformers.Trainer` itself (sequential sampler, so the micro-batch
order is known); a plain torch loop that spells the same semantics out (token-weighted
accumulation via num_items_in_batch, clip_grad_norm_, torch.optim.AdamW,
get_cosine_schedule_with_warmup) must end on the same parameters, and gives the step-1
gradients (unclipped, elementwise) that the Trainer does not expose.

Adam's epsilon is 1e-6 rather than 1e-8: with 1e-8, elements whose gradient is a cancelling
sum far below epsilon get an update of about ±lr decided by float rounding, which no two
implementations share; 1e-6 keeps every element's update a continuous function of its
gradient, so the comparison can be elementwise over every parameter.

Writes fixtures/train/multi_step.json, fixtures/train/multi_step_grads.safetensors (step 1,
HF names and layout) and fixtures/train/multi_step_final/ (parameters after step 4).
Run: python3 scripts/make_multistep_fixture.py (torch, transformers, safetensors)."""
import copy
import json
import math
import os

import torch
import transformers
from safetensors.torch import save_file
from torch.utils.data import SequentialSampler
from transformers import (LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments,
                          get_cosine_schedule_with_warmup)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SRC = os.path.join(ROOT, "fixtures", "tiny-llama")
OUT = os.path.join(ROOT, "fixtures", "train")

SETTINGS = dict(micro_batch_size=2, grad_accum=2, steps=4, lr=2e-3, warmup_steps=1,
                weight_decay=0.1, max_grad_norm=6.0, beta1=0.9, beta2=0.999, eps=1e-6)
S = SETTINGS


def make_rows():
    """16 rows: a prompt (not trained) then a reply (trained), lengths 5..16."""
    g = torch.Generator().manual_seed(11)
    rows = []
    for _ in range(S["micro_batch_size"] * S["grad_accum"] * S["steps"]):
        n = int(torch.randint(5, 17, (1,), generator=g))
        prompt = int(torch.randint(1, n - 1, (1,), generator=g))
        ids = [1] + torch.randint(3, 512, (n - 1,), generator=g).tolist()
        mask = [0] * prompt + [1] * (n - prompt)
        rows.append((ids, mask))
    return rows


def collate(rows):
    """Right padding with pad id 0, labels -100 outside the trained tokens."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for r, (i, m) in enumerate(rows):
        ids[r, :len(i)] = torch.tensor(i)
        attention[r, :len(i)] = 1
        labels[r, :len(i)] = torch.tensor([t if k else -100 for t, k in zip(i, m)])
    return {"input_ids": ids, "attention_mask": attention, "labels": labels}


def load():
    torch.manual_seed(0)
    m = LlamaForCausalLM.from_pretrained(SRC, dtype=torch.float32, attn_implementation="eager")
    m.train()
    return m


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class Sequential(Trainer):
    def _get_train_sampler(self, train_dataset=None):
        return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)


class Log(TrainerCallback):
    def __init__(self):
        self.logs = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.logs.append(dict(logs))


def run_trainer(rows, tmp):
    model = load()
    args = TrainingArguments(
        output_dir=tmp, per_device_train_batch_size=S["micro_batch_size"],
        gradient_accumulation_steps=S["grad_accum"], max_steps=S["steps"],
        learning_rate=S["lr"], lr_scheduler_type="cosine", warmup_steps=S["warmup_steps"],
        weight_decay=S["weight_decay"], max_grad_norm=S["max_grad_norm"],
        adam_beta1=S["beta1"], adam_beta2=S["beta2"], adam_epsilon=S["eps"],
        optim="adamw_torch", logging_steps=1, report_to=[], use_cpu=True, save_strategy="no",
        dataloader_drop_last=False, seed=0, logging_nan_inf_filter=False)
    log = Log()
    trainer = Sequential(model=model, args=args, train_dataset=Rows(rows), data_collator=collate,
                         callbacks=[log])
    decay = set(trainer.get_decay_parameter_names(model))
    trainer.train()
    return model, log.logs, decay


def run_manual(rows, decay_names):
    model = load()
    params = dict(model.named_parameters())
    groups = [
        {"params": [p for n, p in params.items() if n in decay_names], "weight_decay": S["weight_decay"]},
        {"params": [p for n, p in params.items() if n not in decay_names], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=S["lr"], betas=(S["beta1"], S["beta2"]), eps=S["eps"])
    sched = get_cosine_schedule_with_warmup(opt, S["warmup_steps"], S["steps"])
    mbs, accum = S["micro_batch_size"], S["grad_accum"]
    steps, first_grads = [], None
    for step in range(S["steps"]):
        window = [collate(rows[(step * accum + k) * mbs:(step * accum + k + 1) * mbs]) for k in range(accum)]
        items = sum(int((b["labels"][:, 1:] != -100).sum()) for b in window)
        lr = sched.get_last_lr()[0]
        loss_total = 0.0
        for b in window:
            loss = model(**b, num_items_in_batch=items).loss
            loss.backward()
            loss_total += loss.item()
        if step == 0:
            first_grads = {n: p.grad.detach().clone().contiguous() for n, p in params.items()}
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), S["max_grad_norm"]).item()
        opt.step()
        sched.step()
        opt.zero_grad()
        steps.append({"loss": loss_total, "grad_norm": norm, "lr": lr, "items": items})
    return model, steps, first_grads


def main():
    torch.use_deterministic_algorithms(True)
    rows = make_rows()
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        hf_model, logs, decay = run_trainer(rows, tmp)
    manual, steps, grads = run_manual(rows, decay)
    no_decay = sorted(n for n, _ in manual.named_parameters() if n not in decay)
    assert all(p.dim() == 1 for n, p in manual.named_parameters() if n in no_decay), no_decay
    assert all(p.dim() == 2 for n, p in manual.named_parameters() if n in decay)
    worst = max((a - b).abs().max().item()
                for a, b in zip(hf_model.parameters(), manual.parameters()))
    assert worst < 1e-6, f"manual loop differs from Trainer by {worst}"
    assert len(logs) == S["steps"], logs
    for ours, theirs in zip(steps, logs):
        assert math.isclose(ours["loss"], theirs["loss"], rel_tol=1e-5), (ours, theirs)
        assert math.isclose(ours["grad_norm"], theirs["grad_norm"], rel_tol=1e-5), (ours, theirs)
    clipped = [s["grad_norm"] > S["max_grad_norm"] for s in steps]
    assert any(clipped) and not all(clipped), f"clipping must clip some steps and not others: {clipped}"
    counts = [int((collate(rows[k * 2:k * 2 + 2])["labels"][:, 1:] != -100).sum()) for k in range(8)]
    assert len(set(counts)) > 2, counts
    save_file(grads, os.path.join(OUT, "multi_step_grads.safetensors"))
    manual.save_pretrained(os.path.join(OUT, "multi_step_final"))
    micro = []
    for k in range(S["steps"] * S["grad_accum"]):
        b = collate(rows[k * 2:k * 2 + 2])
        micro.append({
            "input_ids": b["input_ids"].tolist(),
            "attention_mask": b["attention_mask"].tolist(),
            "loss_mask": (b["labels"] != -100).int().tolist(),
        })
    json.dump({
        "generator": f"transformers {transformers.__version__}, torch {torch.__version__}; "
                     "scripts/make_multistep_fixture.py",
        "settings": SETTINGS,
        "no_decay": no_decay,
        "micro_batches": micro,
        "trained_tokens_per_micro_batch": counts,
        "steps": steps,
        "trainer_logs": logs,
        "manual_vs_trainer_max_abs": worst,
    }, open(os.path.join(OUT, "multi_step.json"), "w"), indent=1)
    print(json.dumps({"steps": steps, "counts": counts, "manual_vs_trainer": worst}, indent=1))


if __name__ == "__main__":
    main()
