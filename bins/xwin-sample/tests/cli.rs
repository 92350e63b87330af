//! `xwin-sample` end to end: kill -9 mid-run and the same command again give the artifact
//! of an uninterrupted run, every (prompt, sample) exactly once; bad input is named.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `count` one-question conversations.
fn prompts(dir: &Path, count: usize) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let lines: Vec<String> = (0..count)
        .map(|i| {
            format!(r#"{{"id":"q{i}","conversations":[{{"from":"human","value":"Question number {i}: who are you?"}}]}}"#)
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn args(prompts: &Path, output: &Path, n: &str) -> Vec<String> {
    let model = root().join("fixtures/tiny-llama");
    [
        "--model",
        model.to_str().unwrap(),
        "--prompts",
        prompts.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--n",
        n,
        "--max-new-tokens",
        "24",
        "--temperature",
        "1.0",
        "--seed",
        "9",
        "--batch-rows",
        "16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn sample(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xwin-sample"))
        .args(args)
        .output()
        .unwrap()
}

/// Records by id; panics on a repeated id.
fn records(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        assert!(out.insert(id.clone(), v).is_none(), "{id} written twice");
    }
    out
}

#[test]
fn killed_run_resumes_to_the_uninterrupted_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = prompts(dir.path(), 400);
    let whole = dir.path().join("whole.jsonl");
    let out = sample(&args(&prompts, &whole, "8"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = records(&whole);
    assert_eq!(expected.len(), 400);

    let cut = dir.path().join("cut.jsonl");
    xwin_testkit::process::kill_when(
        Command::new(env!("CARGO_BIN_EXE_xwin-sample")).args(args(&prompts, &cut, "8")),
        Duration::from_secs(120),
        || xwin_testkit::process::complete_lines(&cut) >= 40,
    );
    let before = records(&cut).len();
    assert!(before < 400, "killed after the end");
    let out = sample(&args(&prompts, &cut, "8"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["summary"]["already_done"], before);
    let resumed = records(&cut);
    for (id, record) in &resumed {
        assert_eq!(record["responses"].as_array().unwrap().len(), 8, "{id}");
    }
    assert_eq!(resumed, expected);
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = prompts(dir.path(), 3);
    let out = sample(&args(&prompts, &dir.path().join("a.jsonl"), "0"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("n must be at least 1"), "{err}");

    let mut long = args(&prompts, &dir.path().join("b.jsonl"), "2");
    let i = long.iter().position(|a| a == "--max-new-tokens").unwrap();
    long[i + 1] = "250".into();
    let out = sample(&long);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("prompt q0") && err.contains("context of 256"),
        "{err}"
    );
    assert_eq!(records(&dir.path().join("b.jsonl")).len(), 0);

    let out = Command::new(env!("CARGO_BIN_EXE_xwin-sample"))
        .args([
            "--prompts",
            prompts.to_str().unwrap(),
            "--output",
            "x.jsonl",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("--model DIR"),
        "{err}"
    );
}
