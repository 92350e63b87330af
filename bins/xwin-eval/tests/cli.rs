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
