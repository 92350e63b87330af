#!/usr/bin/env bash
# Evaluation of the demo policies (after scripts/recipe_demo.sh), offline: AlpacaEval (first
# 100 instructions, the oracle judge against text-davinci-003) and MT-bench (first 16
# questions, single grading by the oracle, 3 runs) for SFT, RS and DPO; paired comparisons;
# best-of-n from the RS Xwin-Set; one report with every table and plot. Reads the AlpacaEval
# and MT-bench files from ../shared/data (licensed data stays out of the repository).
set -euo pipefail
export RUST_LOG="${RUST_LOG:-warn}"
cd "$(dirname "$0")/.."
shared="${XWIN_SHARED_DIR:-../shared}/data"
cargo build -q -p xwin-eval-cli
bin=target/debug/xwin-eval
M="$shared/mt_bench"
for policy in sft rs dpo; do
    $bin alpaca --reference "$shared/alpaca_eval/reference_text_davinci_003.json" --limit 100 \
        --model "runs/$policy-tiny-demo/model" --max-new-tokens 64 --judge oracle \
        --out "runs/eval/alpaca-$policy" >/dev/null
    $bin mt-bench --questions "$M/question.jsonl" --judge-prompts "$M/judge_prompts.jsonl" \
        --reference-answers "$M/reference_answer_gpt-4.jsonl" --model "runs/$policy-tiny-demo/model" \
        --model-id "$policy" --limit 16 --max-new-tokens 48 --judge oracle --runs 3 \
        --out "runs/eval/mt-bench" >/dev/null
done
echo "RS against SFT, DPO against RS (AlpacaEval, paired):"
$bin compare --a runs/eval/alpaca-rs/annotations.json --b runs/eval/alpaca-sft/annotations.json
$bin compare --a runs/eval/alpaca-dpo/annotations.json --b runs/eval/alpaca-rs/annotations.json
$bin report --alpaca SFT=runs/eval/alpaca-sft/annotations.json --alpaca RS=runs/eval/alpaca-rs/annotations.json \
    --alpaca DPO=runs/eval/alpaca-dpo/annotations.json \
    --mt-bench runs/eval/mt-bench/model_judgment/oracle_single-run1.jsonl --questions "$M/question.jsonl" \
    --xwin-set runs/rs-tiny-demo/xwin-set.jsonl --rm-eval runs/rm-tiny-demo/eval.json \
    --conversations data/demo/sft.jsonl --tokenizer fixtures/tiny-llama/tokenizer.json \
    --out runs/eval/report
