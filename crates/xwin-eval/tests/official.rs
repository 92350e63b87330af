//! Our aggregates on the official files equal what the official code prints on them
//! (`fixtures/eval/official.json`, made by `scripts/make_eval_reference.py` with alpaca_eval
//! 0.6.6's `get_winrate` and FastChat's `show_result`), to 0.01 and closer.

use serde_json::Value;
use std::path::PathBuf;
use xwin_eval::{pairwise_scores, read_annotations, read_judgments, single_scores, win_rate};
use xwin_testkit::shared_data;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn official() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/eval/official.json")).unwrap(),
    )
    .unwrap()
}

fn close(ours: f64, theirs: &Value, what: &str) {
    let theirs = theirs
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {theirs}"));
    assert!(
        (ours - theirs).abs() < 1e-9,
        "{what}: {ours} vs official {theirs}"
    );
}

#[test]
fn alpaca_win_rates_equal_alpaca_eval() {
    let reference = official();
    for (name, want) in reference["alpaca"].as_object().unwrap() {
        let Some(path) = shared_data(&format!("data/alpaca_eval/annotations/{name}")) else {
            return;
        };
        let got = win_rate(&read_annotations(&path).unwrap());
        close(got.win_rate, &want["win_rate"], name);
        close(got.standard_error, &want["standard_error"], name);
        close(got.discrete_win_rate, &want["discrete_win_rate"], name);
        for (k, v) in [
            ("n_wins", got.n_wins),
            ("n_wins_base", got.n_wins_base),
            ("n_draws", got.n_draws),
            ("n_total", got.n_total),
        ] {
            assert_eq!(v as u64, want[k].as_u64().unwrap(), "{name}: {k}");
        }
        let ci = got.interval.unwrap();
        assert!(ci.low <= got.win_rate && got.win_rate <= ci.high, "{ci:?}");
    }
}

/// The length-controlled win rate equals scikit-learn's unpenalised fit of the same design.
#[test]
fn length_controlled_fit_equals_scikit_learn() {
    let reference = official();
    for (name, want) in reference["alpaca_length_controlled_minimal_unpenalised"]
        .as_object()
        .unwrap()
    {
        let Some(path) = shared_data(&format!("data/alpaca_eval/annotations/{name}")) else {
            return;
        };
        let rows = xwin_eval::read_annotation_rows(&path).unwrap();
        let lc = xwin_eval::length_controlled(&rows).unwrap();
        assert_eq!(lc.n as u64, want["n"].as_u64().unwrap());
        for (ours, key) in [
            (lc.length_controlled_winrate, "length_controlled_winrate"),
            (lc.model_weight, "model_weight"),
            (lc.length_weight, "length_weight"),
        ] {
            let theirs = want[key].as_f64().unwrap();
            assert!(
                (ours - theirs).abs() < 1e-5,
                "{key}: {ours} vs scikit-learn {theirs}"
            );
        }
        eprintln!(
            "LC {:.4} % (raw {:.4} %)",
            lc.length_controlled_winrate,
            xwin_eval::score_file(&path).unwrap().win_rate
        );
    }
}

#[test]
fn mt_bench_single_equals_show_result() {
    let Some(path) = shared_data("data/mt_bench/model_judgment/gpt-4_single.jsonl") else {
        return;
    };
    let questions = shared_data("data/mt_bench/question.jsonl").unwrap();
    let ids = std::fs::read_to_string(questions)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["question_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let got = single_scores(&read_judgments(&path, Some(&ids)).unwrap());
    let want = &official()["mt_bench_single"]["gpt-4_single.jsonl"]["models"];
    assert_eq!(got.len(), want.as_object().unwrap().len());
    for (model, score) in &got {
        close(score.turn1.unwrap(), &want[model]["turn1"], model);
        close(score.turn2.unwrap(), &want[model]["turn2"], model);
        close(score.overall, &want[model]["overall"], model);
        eprintln!(
            "{model}: turn 1 {:.4}, turn 2 {:.4}, overall {:.4} over {} ratings",
            score.turn1.unwrap(),
            score.turn2.unwrap(),
            score.overall,
            score.n_ratings
        );
    }
}

#[test]
fn mt_bench_pairwise_equals_show_result() {
    let path = root().join("fixtures/eval/pairwise_judgments.jsonl");
    let judgments = read_judgments(&path, None).unwrap();
    let reference = official();
    for (key, baseline) in [
        ("baseline gpt-3.5-turbo", Some("gpt-3.5-turbo")),
        ("all pairs", None),
    ] {
        let want = &reference["mt_bench_pairwise"][key]["models"];
        let got = pairwise_scores(&judgments, baseline);
        assert_eq!(got.len(), want.as_object().unwrap().len(), "{key}");
        for (model, s) in &got {
            let w = &want[model];
            for (k, v) in [("win", s.win), ("loss", s.loss), ("tie", s.tie)] {
                assert_eq!(v as f64, w[k].as_f64().unwrap(), "{key} {model} {k}");
            }
            close(s.win_rate, &w["win_rate"], model);
            close(s.loss_rate, &w["loss_rate"], model);
            close(s.win_rate_adjusted, &w["win_rate_adjusted"], model);
        }
    }
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.jsonl");
    std::fs::write(
        &path,
        "{\"question_id\": 81, \"model\": \"m\", \"score\": 7, \"turn\": 1}\n\
         {\"question_id\": 999, \"model\": \"m\", \"score\": 7, \"turn\": 1}\n",
    )
    .unwrap();
    let ids = (81..=160).collect();
    let err = read_judgments::<xwin_eval::SingleJudgment>(&path, Some(&ids))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("question_id 999"),
        "{err}"
    );
    // Unrated (−1) judgments are excluded and counted.
    std::fs::write(
        &path,
        "{\"question_id\": 81, \"model\": \"m\", \"score\": 7, \"turn\": 1}\n\
         {\"question_id\": 82, \"model\": \"m\", \"score\": -1, \"turn\": 2}\n",
    )
    .unwrap();
    let s = &single_scores(&read_judgments(&path, Some(&ids)).unwrap())["m"];
    assert_eq!(
        (s.overall, s.turn2, s.n_ratings, s.n_unrated),
        (7.0, None, 1, 1)
    );
    // Annotations: a missing preference is dropped and counted.
    let ann = dir.path().join("a.json");
    std::fs::write(
        &ann,
        r#"[{"preference": 2}, {"preference": null}, {"preference": 1.5}, {}]"#,
    )
    .unwrap();
    let w = win_rate(&read_annotations(&ann).unwrap());
    assert_eq!((w.n_total, w.n_dropped, w.n_draws, w.n_wins), (2, 2, 1, 1));
    assert_eq!(w.win_rate, 75.0);
}

/// Files xwin-eval wrote (`fixtures/eval/ours/`), read by the official loaders and scored by
/// the official code in `scripts/make_eval_reference.py`, give what our scorers give.
#[test]
fn the_official_code_rescores_our_files_to_our_numbers() {
    let reference = official();
    let ours = &reference["ours"];
    let dir = root().join("fixtures/eval/ours");
    let a = win_rate(&read_annotations(&dir.join("annotations.json")).unwrap());
    close(a.win_rate, &ours["alpaca"]["win_rate"], "alpaca win rate");
    close(
        a.standard_error,
        &ours["alpaca"]["standard_error"],
        "alpaca s.e.",
    );
    assert_eq!(
        a.n_total as u64,
        ours["alpaca"]["n_total"].as_u64().unwrap()
    );
    let outputs = xwin_eval::read_outputs(&dir.join("model_outputs.json")).unwrap();
    assert_eq!(outputs.len(), 30);
    let single = single_scores(&read_judgments(&dir.join("oracle_single.jsonl"), None).unwrap());
    for (model, s) in &single {
        let want = &ours["mt_bench_single"]["models"][model];
        close(s.turn1.unwrap(), &want["turn1"], model);
        close(s.turn2.unwrap(), &want["turn2"], model);
        close(s.overall, &want["overall"], model);
    }
    let pairs = read_judgments(&dir.join("oracle_pair.jsonl"), None).unwrap();
    for (model, s) in pairwise_scores(&pairs, Some("synthetic-baseline")) {
        let want = &ours["mt_bench_pairwise"]["models"][&model];
        assert_eq!(
            [s.win, s.loss, s.tie].map(|v| v as f64),
            [
                want["win"].as_f64().unwrap(),
                want["loss"].as_f64().unwrap(),
                want["tie"].as_f64().unwrap()
            ]
        );
        close(s.win_rate_adjusted, &want["win_rate_adjusted"], &model);
    }
}
