"""Reference aggregates from the official evaluation code, for xwin-eval's scoring tests.

- AlpacaEval: `alpaca_eval.metrics.winrate.get_winrate` (alpaca_eval 0.6.6 from PyPI) on the
  annotation files in ../shared/data/alpaca_eval/annotations.
- MT-bench: FastChat's `fastchat/llm_judge/show_result.py` (fschat 0.2.36 from PyPI):
  `display_result_single` on ../shared/data/mt_bench/model_judgment/gpt-4_single.jsonl, and
  `display_result_pairwise` (baseline and all-pairs modes) on a pairwise judgment file this
  script writes in FastChat's format (fixtures/eval/pairwise_judgments.jsonl: every outcome
  kind, including errors and order-inconsistent verdicts), since no official pairwise file
  is in ../shared.

The tables show_result prints are captured as DataFrames (its module-level `print` is
replaced) rather than parsed from text. Also the official code on files xwin-eval wrote (fixtures/eval/ours/: an `alpaca` run and
an `mt-bench` run with single and pairwise grading, on synthetic instructions, through the
offline oracle): read with alpaca_eval's own loader and FastChat's `pd.read_json`, they give
the aggregates xwin-eval reports, so the official tools can re-score our runs.
Writes fixtures/eval/official.json.
Run: pip install alpaca_eval==0.6.6 fschat==0.2.36 pandas; python3 scripts/make_eval_reference.py"""
import argparse
import json
import os
import random

import pandas as pd
from alpaca_eval.metrics.winrate import get_winrate
from fastchat.llm_judge import show_result

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHARED = os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "fixtures", "eval")


def plain(v):
    return v.item() if hasattr(v, "item") else v


def alpaca(name):
    path = os.path.join(SHARED, "alpaca_eval", "annotations", name)
    out = get_winrate(pd.DataFrame(json.load(open(path))))
    return {k: plain(v) for k, v in out.items()}


def length_controlled(name):
    """alpaca_eval's `length_controlled_minimal` design (tanh of the standardised length
    difference, a model term, no intercept), its continuous-target trick (each row twice, with
    label 1 weighted by p and label 0 by 1 - p), fitted without a penalty by scikit-learn."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    rows = json.load(open(os.path.join(SHARED, "alpaca_eval", "annotations", name)))
    df = pd.DataFrame(rows)
    delta = df["output_1"].str.len() - df["output_2"].str.len()
    x = np.tanh(delta / delta.std())
    y = df["preference"].astype(float).replace({0.0: 1.5}) - 1
    keep = y.notna()
    X = np.stack([x[keep], np.ones(keep.sum())], axis=1)
    X2 = np.concatenate([X, X])
    labels = np.concatenate([np.ones(keep.sum()), np.zeros(keep.sum())])
    weights = np.concatenate([y[keep], 1 - y[keep]])
    model = LogisticRegression(penalty=None, fit_intercept=False, tol=1e-12, max_iter=10000)
    model.fit(X2, labels, sample_weight=weights)
    length_weight, model_weight = model.coef_[0]
    return {"length_controlled_winrate": float(100 / (1 + np.exp(-model_weight))),
            "model_weight": float(model_weight), "length_weight": float(length_weight),
            "n": int(keep.sum())}


def ours():
    from alpaca_eval import utils
    base = os.path.join(OUT, "ours")
    annotations = utils.load_or_convert_to_dataframe(os.path.join(base, "annotations.json"))
    outputs = utils.load_or_convert_to_dataframe(os.path.join(base, "model_outputs.json"))
    assert {"instruction", "output", "generator"} <= set(outputs.columns)
    alpaca_score = {k: plain(v) for k, v in get_winrate(annotations).items()}
    single_path = os.path.join(base, "oracle_single.jsonl")
    t1, t2, avg = captured(show_result.display_result_single, input_file=single_path)
    single_models = {}
    for (model, _), row in t1.iterrows():
        single_models.setdefault(model, {})["turn1"] = float(row["score"])
    for (model, _), row in t2.iterrows():
        single_models.setdefault(model, {})["turn2"] = float(row["score"])
    for model, row in avg.iterrows():
        single_models.setdefault(model, {})["overall"] = float(row["score"])
    return {"alpaca": alpaca_score, "mt_bench_single": {"models": single_models},
            "mt_bench_pairwise": pairwise(os.path.join(base, "oracle_pair.jsonl"), "synthetic-baseline")}


def captured(fn, **kwargs):
    tables = []
    show_result.print = lambda *a, **k: tables.extend(x for x in a if isinstance(x, pd.DataFrame))
    fn(argparse.Namespace(bench_name="mt_bench", judge_model="gpt-4", model_list=None, **kwargs))
    return tables


def single():
    path = os.path.join(SHARED, "mt_bench", "model_judgment", "gpt-4_single.jsonl")
    t1, t2, avg = captured(show_result.display_result_single, input_file=path)
    models = {}
    for (model, _), row in t1.iterrows():
        models.setdefault(model, {})["turn1"] = float(row["score"])
    for (model, _), row in t2.iterrows():
        models.setdefault(model, {})["turn2"] = float(row["score"])
    for model, row in avg.iterrows():
        models.setdefault(model, {})["overall"] = float(row["score"])
    return {"models": models}


def pairwise_file():
    rng = random.Random(0)
    names = ["xwin-dpo", "xwin-rs", "gpt-3.5-turbo"]
    outcomes = ["model_1", "model_2", "tie", "error"]
    rows = []
    for q in range(81, 161):
        for turn in (1, 2):
            a, b = rng.sample(names, 2)
            g1 = rng.choices(outcomes, weights=[5, 4, 2, 0.3])[0]
            g2 = g1 if rng.random() < 0.8 else rng.choice(outcomes[:3])
            rows.append({"question_id": q, "model_1": a, "model_2": b, "g1_winner": g1,
                         "g2_winner": g2, "judge": ["gpt-4", "pair-v2" if turn == 1 else "pair-v2-multi-turn"],
                         "g1_user_prompt": "...", "g1_judgment": "...", "g2_user_prompt": "...",
                         "g2_judgment": "...", "turn": turn, "tstamp": 0.0})
    path = os.path.join(OUT, "pairwise_judgments.jsonl")
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def pairwise(path, baseline):
    (table,) = captured(show_result.display_result_pairwise, input_file=path, baseline_model=baseline)
    return {"models": {m: {k: plain(v) for k, v in row.items()} for m, row in table.iterrows()}}


def main():
    os.makedirs(OUT, exist_ok=True)
    pair_path = pairwise_file()
    out = {
        "generator": "alpaca_eval 0.6.6 get_winrate; fschat 0.2.36 show_result; scripts/make_eval_reference.py",
        "alpaca": {
            "weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json": alpaca("weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json"),
            "alpaca_eval_cot_gpt4_turbo_fn__alpaca-7b__first60.json": alpaca("alpaca_eval_cot_gpt4_turbo_fn__alpaca-7b__first60.json"),
        },
        "alpaca_length_controlled_minimal_unpenalised": {
            "weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json": length_controlled("weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json"),
        },
        "mt_bench_single": {"gpt-4_single.jsonl": single()},
        "ours": ours(),
        "mt_bench_pairwise": {
            "baseline gpt-3.5-turbo": pairwise(pair_path, "gpt-3.5-turbo"),
            "all pairs": pairwise(pair_path, None),
        },
    }
    json.dump(out, open(os.path.join(OUT, "official.json"), "w"), indent=1)
    print(json.dumps(out, indent=1)[:3000])


if __name__ == "__main__":
    main()
