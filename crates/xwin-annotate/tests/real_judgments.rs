//! Parsers and prompt rendering against real GPT-4 judgments from `../shared/data`:
//! MT-bench single grades (FastChat), AlpacaEval's chain-of-thought ranking judge and its
//! logprob-weighted judge.

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use xwin_annotate::PromptTemplate;
use xwin_annotate::parse::{logprob_preference, parse_ordered_models, parse_single_rating};

fn jsonl(path: &PathBuf) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn json_array(path: &PathBuf) -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn by_question(path: &PathBuf) -> HashMap<i64, Value> {
    jsonl(path)
        .into_iter()
        .map(|v| (v["question_id"].as_i64().unwrap(), v))
        .collect()
}

#[test]
fn mt_bench_single_grades_parse_to_the_recorded_scores() {
    let Some(path) = xwin_testkit::shared_data("data/mt_bench/model_judgment/gpt-4_single.jsonl")
    else {
        return;
    };
    let rows = jsonl(&path);
    assert_eq!(rows.len(), 160);
    for row in &rows {
        let judgment = row["judgment"].as_str().unwrap();
        let recorded = row["score"].as_f64().unwrap();
        match parse_single_rating(judgment) {
            Ok(score) => assert_eq!(score, recorded, "question {}", row["question_id"]),
            // FastChat records -1 when its own parser failed; ours must fail there too.
            Err(e) => assert_eq!(recorded, -1.0, "question {}: {e}", row["question_id"]),
        }
    }
    // FastChat's marker for a failed API call is a failure, not a grade.
    assert!(parse_single_rating("$ERROR$").is_err());
}

#[test]
fn our_mt_bench_prompts_render_exactly_what_gpt4_was_sent() {
    let (Some(judgments), Some(questions), Some(answers), Some(refs)) = (
        xwin_testkit::shared_data("data/mt_bench/model_judgment/gpt-4_single.jsonl"),
        xwin_testkit::shared_data("data/mt_bench/question.jsonl"),
        xwin_testkit::shared_data("data/mt_bench/model_answer/phi-3-dpo.jsonl"),
        xwin_testkit::shared_data("data/mt_bench/reference_answer_gpt-4.jsonl"),
    ) else {
        return;
    };
    let (questions, answers, refs) = (
        by_question(&questions),
        by_question(&answers),
        by_question(&refs),
    );
    let single = PromptTemplate::builtin("mt-bench-single").unwrap();
    let math = PromptTemplate::builtin("mt-bench-single-math").unwrap();
    let mut checked = 0;
    for row in jsonl(&judgments) {
        let name = row["judge"][1].as_str().unwrap();
        let template = match name {
            "single-v1" => &single,
            "single-math-v1" => &math,
            _ => continue, // multi-turn prompts are not shipped yet
        };
        let id = row["question_id"].as_i64().unwrap();
        let question = questions[&id]["turns"][0].as_str().unwrap();
        let answer = answers[&id]["choices"][0]["turns"][0].as_str().unwrap();
        let reference = refs
            .get(&id)
            .map_or("", |r| r["choices"][0]["turns"][0].as_str().unwrap());
        let (system, user) = template
            .render(&[
                ("question", question),
                ("answer", answer),
                ("ref_answer_1", reference),
            ])
            .unwrap();
        assert_eq!(
            user,
            row["user_prompt"].as_str().unwrap(),
            "{name} question {id}"
        );
        assert_eq!(system, "You are a helpful assistant.");
        checked += 1;
    }
    assert_eq!(checked, 80);
}

#[test]
fn alpaca_eval_ranking_judgments_give_the_recorded_preferences() {
    let Some(path) = xwin_testkit::shared_data(
        "data/alpaca_eval/annotations/alpaca_eval_cot_gpt4_turbo_fn__alpaca-7b__first60.json",
    ) else {
        return;
    };
    let rows = json_array(&path);
    assert_eq!(rows.len(), 60);
    for (i, row) in rows.iter().enumerate() {
        let pref = parse_ordered_models(&row["raw_completion"], &row["referenced_models"]).unwrap();
        assert_eq!(pref, row["preference"].as_f64().unwrap(), "row {i}");
    }
}

#[test]
fn alpaca_eval_weighted_judgments_match_the_recorded_preferences() {
    let Some(path) = xwin_testkit::shared_data(
        "data/alpaca_eval/annotations/weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json",
    ) else {
        return;
    };
    let rows = json_array(&path);
    assert_eq!(rows.len(), 805);
    let (mut parsed, mut failures, mut swapped) = (0, 0, 0);
    for (i, row) in rows.iter().enumerate() {
        let raw = &row["raw_completion"];
        if raw.is_null() {
            // The judge call failed upstream: no verdict to parse, a failure for us.
            failures += 1;
            continue;
        }
        let top = &raw["logprobs"]["content"][0]["top_logprobs"];
        let p = logprob_preference(top, "m").unwrap();
        let recorded = row["preference"].as_f64().unwrap();
        // AlpacaEval shows the outputs in a random order it does not record: the preference
        // is 1 + P(m) as shown, or 2 − P(m) when the order was swapped.
        if (recorded - (1.0 + p)).abs() < 1e-6 {
            parsed += 1;
        } else {
            assert!(
                (recorded - (2.0 - p)).abs() < 1e-6,
                "row {i}: p(m) {p}, recorded {recorded}"
            );
            swapped += 1;
        }
    }
    assert_eq!((parsed + swapped, failures), (801, 4));
    assert!(
        swapped > 300 && parsed > 300,
        "{parsed} as shown, {swapped} swapped"
    );
}
