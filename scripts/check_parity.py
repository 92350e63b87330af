"""Runs `xwin-infer` on every fixture and compares logits and greedy tokens with the
transformers reference numbers in fixtures/*/expected.json. Prints JSON; exit 1 on mismatch.
Usage: python3 scripts/check_parity.py BIN [--device wgpu]"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(__file__), "..")


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {out.stderr}")
    return json.loads(out.stdout)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bin")
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    fixtures = ["tiny-llama"] + ["gen/" + d for d in sorted(os.listdir(os.path.join(ROOT, "fixtures/gen")))]
    report, ok = {}, True
    for name in fixtures:
        d = os.path.join(ROOT, "fixtures", name)
        exp = json.load(open(os.path.join(d, "expected.json")))
        args = [x for ids in exp["input_ids"] for x in ("--ids", ",".join(map(str, ids)))]
        got = run([a.bin, "logits", "--model", d, "--device", a.device, *args])["logits"]
        diff = max(abs(g - w) for gs, ws in zip(got, exp["logits"]) for gr, wr in zip(gs, ws) for g, w in zip(gr, wr))
        want = exp.get("greedy_new_tokens") or exp["greedy"]["new_tokens"]
        gen = run([a.bin, "generate", "--model", d, "--device", a.device, *args,
                   "--max-new-tokens", str(len(want[0]))])["ids"]
        report[name] = {"max_abs_logit_diff": diff, "greedy_equal": gen == want}
        ok &= diff < 1e-4 and gen == want
    print(json.dumps({"device": a.device, "ok": ok, "fixtures": report}, indent=1))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
