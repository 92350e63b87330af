//! `xwin-eval` scoring commands print the official key names and numbers.

use std::process::Command;
use xwin_testkit::shared_data;

fn json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_xwin-eval"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn scores_print_the_official_keys() {
    let Some(annotations) = shared_data(
        "data/alpaca_eval/annotations/weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json",
    ) else {
        return;
    };
    let a = json(&[
        "alpaca-score",
        "--annotations",
        annotations.to_str().unwrap(),
        "--json",
    ]);
    for key in [
        "win_rate",
        "standard_error",
        "n_wins",
        "n_wins_base",
        "n_draws",
        "n_total",
    ] {
        assert!(a.get(key).is_some(), "{key}: {a}");
    }
    assert!((a["win_rate"].as_f64().unwrap() - 1.9621476654161492).abs() < 1e-9);
    let single = shared_data("data/mt_bench/model_judgment/gpt-4_single.jsonl").unwrap();
    let s = json(&[
        "mt-bench-score",
        "--judgments",
        single.to_str().unwrap(),
        "--mode",
        "single",
        "--json",
    ]);
    assert_eq!(s["models"]["phi-3-dpo"]["overall"].as_f64(), Some(8.2));
    let pairs = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/eval/pairwise_judgments.jsonl");
    let p = json(&[
        "mt-bench-score",
        "--judgments",
        pairs.to_str().unwrap(),
        "--mode",
        "pairwise",
        "--json",
    ]);
    for key in [
        "win",
        "loss",
        "tie",
        "win_rate",
        "loss_rate",
        "win_rate_adjusted",
    ] {
        assert!(p["models"]["xwin-dpo"].get(key).is_some(), "{key}");
    }
    let questions = shared_data("data/mt_bench/question.jsonl").unwrap();
    let dir = std::env::temp_dir().join(format!("xwin-eval-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unknown = dir.join("j.jsonl");
    std::fs::write(
        &unknown,
        "{\"question_id\": 999, \"model\": \"m\", \"score\": 5, \"turn\": 1}\n",
    )
    .unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_xwin-eval"))
        .args([
            "mt-bench-score",
            "--judgments",
            unknown.to_str().unwrap(),
            "--mode",
            "single",
        ])
        .args(["--questions", questions.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        !bad.status.success() && err.contains("line 1") && err.contains("question_id 999"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Best-of-n on an Xwin-Set whose scores favour longer answers: the RM score and the oracle's
/// win rate against the reference both rise with n, and each point is written in
/// alpaca_eval's format.
#[test]
fn best_of_n_curve_against_a_reference() {
    let Some(reference) = shared_data("data/alpaca_eval/reference_text_davinci_003.json") else {
        return;
    };
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&reference).unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("xwin-eval-bon-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let small = dir.join("reference.json");
    std::fs::write(&small, serde_json::to_string(&all[..6]).unwrap()).unwrap();
    let lines: Vec<String> = all[..6]
        .iter()
        .enumerate()
        .map(|(p, r)| {
            let reference_words = r["output"].as_str().unwrap().split_whitespace().count();
            let responses: Vec<serde_json::Value> = (0..4)
                .map(|k| {
                    // Sample k has (k + 1) quarters of the reference's length; the RM likes length.
                    let words = (reference_words * (k + 1) / 4).max(1);
                    serde_json::json!({"text": vec!["word"; words].join(" "), "score": words as f32,
                                       "rank": 0, "index": (k + p) % 4})
                })
                .collect();
            serde_json::json!({"id": format!("p{p}"), "reward_model": "rm", "responses": responses,
                "prompt": {"conversations": [{"from": "human", "value": r["instruction"]}]}})
            .to_string()
        })
        .collect();
    let set = dir.join("set.jsonl");
    std::fs::write(&set, lines.join("\n")).unwrap();
    let out = dir.join("out");
    let curve = json(&[
        "best-of-n",
        "--xwin-set",
        set.to_str().unwrap(),
        "--reference",
        small.to_str().unwrap(),
        "--judge",
        "oracle",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let points = curve["curve"].as_array().unwrap();
    assert_eq!(
        points
            .iter()
            .map(|p| p["n"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 4]
    );
    let scores: Vec<f64> = points
        .iter()
        .map(|p| p["mean_rm_score"].as_f64().unwrap())
        .collect();
    let wins: Vec<f64> = points
        .iter()
        .map(|p| p["win_rate"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
    assert!(
        wins.windows(2).all(|w| w[0] <= w[1]) && wins[2] > wins[0],
        "{wins:?}"
    );
    assert!(points.iter().all(|p| p["judged"] == 6));
    assert!(out.join("best-of-4/annotations.json").exists());
    std::fs::remove_dir_all(dir).ok();
}

/// Exact match on the verifiable demo task runs end to end and reports every kind.
#[test]
fn exact_match_on_the_demo_task() {
    let dir = std::env::temp_dir().join(format!("xwin-eval-em-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let tasks = dir.join("tasks.jsonl");
    let lines: Vec<String> = xwin_data::demo_tasks(20, 4)
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    std::fs::write(&tasks, lines.join("\n")).unwrap();
    let model = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama");
    let out = dir.join("out");
    let s = json(&[
        "exact-match",
        "--tasks",
        tasks.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--max-new-tokens",
        "8",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(s["n"], 20);
    assert_eq!(s["by_kind"].as_object().unwrap().len(), 5);
    let accuracy = s["accuracy"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&accuracy));
    std::fs::remove_dir_all(dir).ok();
}
