#!/usr/bin/env bash
# Runs xwin's benchmark and the PyTorch reference side by side on this machine and prints
# one JSON object with both results and the ratios (xwin / PyTorch; > 1 means xwin is faster).
# Needs: python3 with torch and transformers (pip install torch transformers).
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-infer}"
repeats="${REPEATS:-5}"
cargo build -q -p xwin-bench
ours=$(./target/debug/xwin-bench "$what" --repeats "$repeats")
theirs=$(python3 "scripts/bench_${what//-/_}_torch.py" --repeats "$repeats")
python3 - "$ours" "$theirs" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
ratios = {k: ours[k]["tokens_per_s"] / theirs[k]["tokens_per_s"]
          for k in ours if isinstance(ours[k], dict) and "tokens_per_s" in ours[k] and k in theirs}
print(json.dumps({"xwin": ours, "pytorch": theirs, "ratio_xwin_over_pytorch": ratios}, indent=2))
PY
