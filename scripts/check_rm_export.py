"""A reward model saved by xwin loads in transformers as LlamaForSequenceClassification and
gives the rewards transformers gave for the original (fixtures/tiny-llama-rm/expected.json).

Re-saves the fixture through `xwin-infer convert` (our loader and writer), then loads the
result with `AutoModelForSequenceClassification`. Tolerance 1e-5 (f32).
Run: python3 scripts/check_rm_export.py (needs torch, transformers; builds xwin-infer)."""
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForSequenceClassification

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
src = os.path.join(ROOT, "fixtures", "tiny-llama-rm")
exp = json.load(open(os.path.join(src, "expected.json")))
with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, "rm")
    subprocess.run(["cargo", "run", "-q", "-p", "xwin-infer", "--", "convert", "--model", src,
                    "--out", out], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    model = AutoModelForSequenceClassification.from_pretrained(out, dtype=torch.float32,
                                                               attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        rewards = model(input_ids=torch.tensor(exp["input_ids"]),
                        attention_mask=torch.tensor(exp["attention_mask"])).logits[:, 0]
worst = max(abs(a - b) for a, b in zip(rewards.tolist(), exp["rewards"]))
print(json.dumps({"rewards": rewards.tolist(), "expected": exp["rewards"], "max_abs": worst}))
sys.exit(0 if worst < 1e-5 else 1)
