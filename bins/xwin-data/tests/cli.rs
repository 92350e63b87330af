//! `xwin-data` run as a user runs it.

use std::path::PathBuf;
use std::process::Command;

fn tokenizer() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama/tokenizer.json")
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xwin-data"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn conversation_stats_table_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.jsonl");
    std::fs::write(
        &path,
        concat!(
            r#"{"conversations":[{"from":"human","value":"a b"},{"from":"gpt","value":"c"}]}"#, "\n",
            r#"{"conversations":[{"from":"human","value":"a"},{"from":"gpt","value":"b"},{"from":"human","value":"c"},{"from":"gpt","value":"d"}]}"#, "\n",
            "oops\n",
        ),
    )
    .unwrap();
    let (ok, _, err) = run(&[
        "stats",
        path.to_str().unwrap(),
        "--tokenizer",
        tokenizer().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("c.jsonl: line 3: <record>: invalid JSON"),
        "{err}"
    );
    let (ok, out, err) = run(&[
        "stats",
        path.to_str().unwrap(),
        "--tokenizer",
        tokenizer().to_str().unwrap(),
        "--skip-bad",
    ]);
    assert!(ok, "{err}");
    assert!(err.contains("skipped 1 bad records"), "{err}");
    assert!(out.contains("| conversations | 2 |"), "{out}");
    assert!(out.contains("| turns / conversation | 1.50 |"), "{out}");
    let (ok, out, _) = run(&[
        "stats",
        path.to_str().unwrap(),
        "--tokenizer",
        tokenizer().to_str().unwrap(),
        "--skip-bad",
        "--json",
    ]);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["conversations"], 2);
    assert_eq!(v["turns_per_conversation"]["mean"], 1.5);
}

#[test]
fn pair_stats_count_ratings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairs.jsonl");
    let pair = |rating: &str| {
        format!(
            r#"{{"id":"p","prompt":{{"conversations":[{{"from":"human","value":"q"}}]}},"response_a":"a","response_b":"b","winner":"a","rating":"{rating}","reason":"r","judge":{{"model":"m","template":"t","temperature":0.0,"key":"k"}},"shown_order":["a","b"]}}"#
        )
    };
    let lines = ["better", "better", "slightly", "significantly"]
        .map(pair)
        .join("\n");
    std::fs::write(&path, lines).unwrap();
    let (ok, out, err) = run(&["stats", path.to_str().unwrap(), "--pairs"]);
    assert!(ok, "{err}");
    assert!(out.contains("| better | 2 | 50.0 % |"), "{out}");
    assert!(out.contains("| negligibly | 0 | 0.0 % |"), "{out}");
    assert!(out.contains("| total | 4 | 100 % |"), "{out}");
}
