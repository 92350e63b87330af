"""Bundled reward-model demo pairs (data/demo/rm-pairs.jsonl, Xwin-Pair records).

For each of the 64 demo conversations: the prompt is the conversation up to its last user
turn, the chosen response is its real last reply, and four rejected responses degrade it by
decreasing margins, labelled with the paper's four ratings:
  significantly: a canned refusal          better:     "I don't know."
  slightly:      the reply cut to its first half      negligibly: the reply with one word dropped
The preference is learnable from the text alone (a refusal or a stub never wins; a full reply
beats its truncation), and gets harder down the scale, as the paper's Table 3 shows for real
judgments. Seeded; run: python3 scripts/make_rm_demo.py"""
import hashlib
import json
import os
import random

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
rng = random.Random(7)
out = []
for line in open(os.path.join(ROOT, "data", "demo", "sft.jsonl")):
    conv = json.loads(line)
    turns = conv["conversations"]
    last = max(i for i, t in enumerate(turns) if t["from"] == "gpt")
    prompt, reply = turns[:last], turns[last]["value"]
    words = reply.split()
    dropped = list(words)
    if len(dropped) > 2:
        del dropped[rng.randrange(1, len(dropped))]
    rejected = {
        "significantly": "I'm sorry, I can't help with that.",
        "better": "I don't know.",
        "slightly": " ".join(words[: max(1, len(words) // 2)]),
        "negligibly": " ".join(dropped),
    }
    for rating, bad in rejected.items():
        if bad == reply:
            continue
        chosen_first = rng.random() < 0.5
        a, b = (reply, bad) if chosen_first else (bad, reply)
        key = hashlib.sha256(f"{conv['id']}|{rating}".encode()).hexdigest()[:16]
        out.append({
            "id": f"{conv['id']}-{rating}",
            "prompt": {"conversations": prompt},
            "response_a": a,
            "response_b": b,
            "winner": "a" if chosen_first else "b",
            "rating": rating,
            "reason": "bundled demo: the real reply against a degraded one",
            "judge": {"model": "rule", "template": "scripts/make_rm_demo.py", "temperature": 0.0, "key": key},
            "shown_order": ["a", "b"],
        })
with open(os.path.join(ROOT, "data", "demo", "rm-pairs.jsonl"), "w") as f:
    for r in out:
        f.write(json.dumps(r) + "\n")
print(len(out), "pairs")
