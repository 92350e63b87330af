//! `xwin-annotate` as a process: the offline oracle on the demo pairs, and a real judge run
//! against the local OpenAI-compatible server that is killed (SIGKILL) and restarted.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use xwin_data::XwinPair;
use xwin_testkit::test_server::{Action, TestServer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xwin-annotate"))
}

fn pairs(path: &std::path::Path) -> Vec<XwinPair> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn oracle_prefers_the_real_replies_of_the_demo_pairs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("xwin-pairs.jsonl");
    let run = || {
        bin()
            .args(["--judge", "oracle", "--input"])
            .arg(root().join("data/demo/pairs.jsonl"))
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("significantly better") && table.contains("failed"),
        "{table}"
    );
    let judged = pairs(&out);
    assert_eq!(judged.len(), 24);
    let weak = [
        "Yes.",
        "I don't know.",
        "I'm sorry, I can't help with that.",
        "As an AI, I cannot answer that.",
    ];
    assert!(
        judged
            .iter()
            .all(|p| !weak.contains(&p.chosen()) && weak.contains(&p.rejected()))
    );
    // Rerun: nothing to do, nothing duplicated.
    let o = run();
    assert!(String::from_utf8_lossy(&o.stdout).contains("already done"));
    assert_eq!(pairs(&out).len(), 24);
}

#[test]
fn malformed_input_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, "{\"prompt\":{\"conversations\":[{\"from\":\"human\",\"value\":\"q\"}]},\"response_a\":\"a\",\"response_b\":\"b\"}\n{\"prompt\": 3}\n").unwrap();
    let o = bin()
        .args(["--judge", "oracle", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(dir.path().join("o.jsonl"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("in.jsonl") && err.contains("line 2") && err.contains("prompt"),
        "{err}"
    );
}

#[test]
fn killed_run_restarts_without_losing_or_duplicating() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(TestServer::start(Duration::from_millis(40), |r| {
            let letter = if r
                .user()
                .contains("[The Start of Assistant A's Answer]\nGOOD")
            {
                "A"
            } else {
                "B"
            };
            Action::Reply(format!("Clear.\n[[{letter}]]\nRating: [[better]]"))
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.jsonl");
    let lines: Vec<String> = (0..60)
        .map(|i| {
            let (a, b) = if i % 3 == 0 { ("GOOD", "bad") } else { ("bad", "GOOD") };
            serde_json::json!({"id": format!("p{i}"), "prompt": {"conversations": [{"from": "human", "value": format!("q{i}")}]},
                               "response_a": format!("{a} {i}"), "response_b": format!("{b} {i}")})
            .to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let out = dir.path().join("out.jsonl");
    let command = || {
        let mut c = bin();
        c.args([
            "--base-url",
            &server.base_url(),
            "--model",
            "judge-test",
            "--no-api-key",
            "--concurrency",
            "3",
            "--input",
        ])
        .arg(&input)
        .arg("--output")
        .arg(&out);
        c
    };
    xwin_testkit::process::kill_when(&mut command(), Duration::from_secs(60), || {
        xwin_testkit::process::complete_lines(&out) >= 12
    });
    let before = pairs(&out).len();
    assert!(before < 60, "{before}");
    let o = command().arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["summary"]["already_done"], before);
    let done = pairs(&out);
    let mut ids: Vec<&str> = done.iter().map(|p| p.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((done.len(), ids.len()), (60, 60));
    assert!(done.iter().all(|p| p.chosen().starts_with("GOOD")));
    // Requests: each item once, plus at most the ones in flight at the kill.
    assert!(server.requests() <= 60 + 3, "{}", server.requests());
}

/// `--template mt-bench-pair` judges in MT-bench's own verdict format (`[[A]]`/`[[B]]`/`[[C]]`):
/// winners are written with `rating: null`, ties go to the failures file as final. Before,
/// the CLI parsed every reply with the Xwin format and recorded them all as failures.
#[test]
fn mt_bench_pair_template_uses_its_own_verdict_format() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt
        .block_on(TestServer::start(Duration::ZERO, |r| {
            let user = r.user();
            let verdict = if user.contains("tie") {
                "[[C]]"
            } else if user.contains("[The Start of Assistant A's Answer]\nGOOD") {
                "[[A]]"
            } else {
                "[[B]]"
            };
            Action::Reply(format!("Explanation.\n{verdict}"))
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.jsonl");
    let lines: String = (0..6)
        .map(|i| {
            let q = if i == 5 { "tie question" } else { "question" };
            let (a, b) = if i % 2 == 0 {
                ("GOOD", "bad")
            } else {
                ("bad", "GOOD")
            };
            format!(
                "{}\n",
                serde_json::json!({"prompt": format!("{q} {i}"), "response_a": a, "response_b": b})
            )
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("out.jsonl");
    let o = bin()
        .args([
            "--base-url",
            &server.base_url(),
            "--model",
            "judge-test",
            "--no-api-key",
        ])
        .args(["--template", "mt-bench-pair", "--json", "--input"])
        .arg(&input)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["summary"]["judged"], 5);
    assert_eq!(summary["summary"]["ties"], 1);
    assert_eq!(summary["summary"]["failures"], 0);
    let judged = pairs(&out);
    assert!(
        judged
            .iter()
            .all(|p| p.chosen() == "GOOD" && p.rating.is_none())
    );
}
