#!/usr/bin/env bash
# Steps 1–4 on the bundled tiny demo (CPU, about a minute): SFT, reward model, 16 samples per
# prompt from the SFT policy, Xwin-Set and the RS finetune, both policies sampled on 32
# held-out prompts and scored by the reward model (the RS policy's mean score, best-of-1,
# against the SFT policy's), then DPO of the RS policy on the Xwin-Set with the calibrated
# rejected rank (held-out reward accuracy and margins before and after). Each step resumes
# when rerun.
set -euo pipefail
export RUST_LOG="${RUST_LOG:-warn}"
cd "$(dirname "$0")/.."
cargo build -q -p xwin-sft -p xwin-rm-cli -p xwin-sample-cli -p xwin-rs-cli -p xwin-dpo-cli
bin=target/debug
$bin/xwin-sft --config configs/sft-tiny-demo.toml >/dev/null
$bin/xwin-rm --config configs/rm-tiny-demo.toml >/dev/null
# Prompts whose history leaves no room for 32 new tokens in the 256-token context are skipped
# and listed in runs/rs-tiny-demo-samples.jsonl.failures.jsonl.
$bin/xwin-sample --model runs/sft-tiny-demo/model --prompts data/demo/sft.jsonl \
    --first-replies 3 --n 16 --max-new-tokens 32 --skip-long \
    --output runs/rs-tiny-demo-samples.jsonl >/dev/null
$bin/xwin-rs --config configs/rs-tiny-demo.toml >/dev/null
for policy in sft rs; do
    $bin/xwin-sample --model "runs/$policy-tiny-demo/model" --prompts data/demo/prompts-heldout.jsonl \
        --n 8 --max-new-tokens 32 --seed 5 --output "runs/heldout-$policy-samples.jsonl" >/dev/null
    $bin/xwin-rm score --model runs/rm-tiny-demo/model --input "runs/heldout-$policy-samples.jsonl" \
        --output "runs/heldout-$policy-xwin-set.jsonl" --max-len 256 >/dev/null
done
echo "RM score of the RS training samples by rank (paper Fig. 5):"
$bin/xwin-rs stats --xwin-set runs/rs-tiny-demo/xwin-set.jsonl
for policy in sft rs; do
    echo "Held-out prompts, $policy policy (every sample is a best-of-1 draw):"
    $bin/xwin-rs stats --xwin-set "runs/heldout-$policy-xwin-set.jsonl" | grep "responses"
done
echo "DPO of the RS policy (chosen = top-1, rejected = the calibrated rank), held-out pairs:"
$bin/xwin-dpo --config configs/dpo-tiny-demo.toml 2>&1 >/dev/null | grep "^|"
