#!/usr/bin/env bash
# Runs xwin's benchmark and the PyTorch reference side by side on this machine and prints
# one JSON object with both results and the ratios (xwin / PyTorch; > 1 means xwin is faster).
# ROUNDS (default 3) alternates the two sides that many times: the machines are shared and
# noisy (a side's own time moves by 30 % between minutes), so each ratio is the median of the
# per-round ratios, each round comparing runs made back to back; every round is printed too.
# SIZE (train and infer only: 21m, 143m, 760m, 7b-2l) picks the model on both sides.
# ARGS: more flags that both sides take (e.g. ARGS="--new-tokens 512" for infer).
# Needs: python3 with torch and transformers (pip install torch transformers).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-infer}"
repeats="${REPEATS:-5}"
rounds="${ROUNDS:-3}"
size=()
if [ -n "${SIZE:-}" ]; then size=(--size "$SIZE"); fi
read -r -a extra <<< "${ARGS:-}"
cargo build -q -p xwin-bench
runs=()
for _ in $(seq "$rounds"); do
    runs+=("$(./target/debug/xwin-bench "$what" --repeats "$repeats" "${size[@]}" "${extra[@]}")")
    runs+=("$(python3 "scripts/bench_${what//-/_}_torch.py" --repeats "$repeats" "${size[@]}" "${extra[@]}")")
done
python3 - "${runs[@]}" <<'PY'
import json, statistics, sys
docs = [json.loads(a) for a in sys.argv[1:]]
pairs = list(zip(docs[0::2], docs[1::2]))
def timed(d):
    return {k for k, v in d.items() if isinstance(v, dict) and "tokens_per_s" in v}
rounds = [{k: ours[k]["tokens_per_s"] / theirs[k]["tokens_per_s"]
           for k in timed(ours) & timed(theirs)} for ours, theirs in pairs]
ratios = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
ours, theirs = pairs[len(pairs) // 2]
print(json.dumps({"xwin": ours, "pytorch": theirs, "rounds": rounds,
                  "ratio_xwin_over_pytorch": ratios}, indent=2))
PY
