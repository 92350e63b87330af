//! `xwin-rm` end to end: the demo learns the bundled preference, a killed run resumes
//! exactly, `eval` prints the per-rating table, and bad input is named.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo config with absolute paths, writing to `output`, `epochs` passes.
fn demo_config(output: &Path, epochs: usize) -> String {
    let text = std::fs::read_to_string(root().join("configs/rm-tiny-demo.toml")).unwrap();
    let r = root().display().to_string();
    text.replace(
        "output = \"runs/rm-tiny-demo\"",
        &format!("output = {:?}", output.display().to_string()),
    )
    .replace("\"fixtures/", &format!("\"{r}/fixtures/"))
    .replace("\"data/", &format!("\"{r}/data/"))
    .replace("epochs = 6", &format!("epochs = {epochs}"))
}

/// How the demo config names its pairs file (to swap in another).
fn demo_pairs_entry() -> String {
    format!(
        "{:?}",
        root()
            .join("data/demo/rm-pairs.jsonl")
            .display()
            .to_string()
    )
}

fn run(config: &str, dir: &Path) -> Output {
    let path = dir.join("rm.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_xwin-rm"))
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap()
}

fn metrics(path: &Path) -> Vec<xwin_train::StepMetrics> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| xwin_train::StepMetrics {
            tokens_per_s: 0.0,
            ..serde_json::from_str(l).unwrap()
        })
        .collect()
}

#[test]
fn demo_learns_the_preference_and_eval_prints_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = run(&demo_config(&out_dir, 4), dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let eval = &summary["summary"]["eval"];
    let all = &eval["all"];
    let accuracy = all["correct"].as_f64().unwrap() / all["pairs"].as_f64().unwrap();
    assert!(accuracy > 0.85, "held-out accuracy {accuracy}: {eval}");
    // Clear cases are learnt at least as well as the nearly identical ones.
    let by = |r: &str| {
        let b = &eval["by_rating"][r];
        b["correct"].as_f64().unwrap() / b["pairs"].as_f64().unwrap()
    };
    assert!(by("significantly") >= by("negligibly"), "{eval}");
    // Named metrics reach metrics.jsonl: per-step accuracy and held-out accuracy by rating.
    let steps = metrics(&out_dir.join("metrics.jsonl"));
    assert!(
        steps
            .iter()
            .all(|m| m.metrics.contains_key("accuracy") && m.items > 0)
    );
    assert!(
        steps
            .last()
            .unwrap()
            .eval_metrics
            .contains_key("accuracy_significantly")
    );

    let model = out_dir.join("model");
    let eval = Command::new(env!("CARGO_BIN_EXE_xwin-rm"))
        .args(["eval", "--model", model.to_str().unwrap(), "--data"])
        .arg(root().join("data/demo/rm-pairs.jsonl"))
        .args(["--max-len", "256"])
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let table = String::from_utf8_lossy(&eval.stdout);
    for row in [
        "| significantly |",
        "| better |",
        "| slightly |",
        "| negligibly |",
        "| all |",
    ] {
        assert!(table.contains(row), "{table}");
    }
}

/// kill -9 mid-run and the same command again: every logged number equals the
/// uninterrupted run's.
#[test]
fn killed_run_resumes_as_if_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let config = |out: &Path| demo_config(out, 2).replace("every = 20", "every = 4");
    let whole = dir.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    assert!(run(&config(&whole.join("run")), &whole).status.success());
    let expected = metrics(&whole.join("run/metrics.jsonl"));

    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let path = cut.join("rm.toml");
    std::fs::write(&path, config(&cut.join("run"))).unwrap();
    xwin_testkit::process::kill_when(
        Command::new(env!("CARGO_BIN_EXE_xwin-rm")).args(["--config", path.to_str().unwrap()]),
        std::time::Duration::from_secs(120),
        || xwin_testkit::process::complete_lines(&cut.join("run/metrics.jsonl")) >= 9,
    );
    let out = run(&config(&cut.join("run")), &cut);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["summary"]["resumed_from"].as_u64().unwrap() >= 8);
    assert_eq!(metrics(&cut.join("run/metrics.jsonl")), expected);
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(root().join("data/demo/rm-pairs.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    let with = |name: &str, line2: String| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{first}\n{line2}\n")).unwrap();
        let config = demo_config(&dir.path().join(format!("out-{name}")), 1).replace(
            &demo_pairs_entry(),
            &format!("{:?}", path.display().to_string()),
        );
        let out = run(&config, dir.path());
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = with(
        "winner.jsonl",
        first
            .replace("\"winner\": \"a\"", "\"winner\": \"c\"")
            .replace("\"winner\": \"b\"", "\"winner\": \"c\""),
    );
    assert!(
        err.contains("winner.jsonl") && err.contains("line 2") && err.contains("winner"),
        "{err}"
    );
    let err = with(
        "missing.jsonl",
        first
            .replace("\"winner\": \"a\", ", "")
            .replace("\"winner\": \"b\", ", ""),
    );
    assert!(err.contains("line 2") && err.contains("winner"), "{err}");
    let empty = first.replace(
        "\"response_b\": \"I'm sorry, I can't help with that.\"",
        "\"response_b\": \" \"",
    );
    let err = with(
        "empty.jsonl",
        empty.replace("identity_0-significantly", "empty-one"),
    );
    assert!(
        err.contains("empty.jsonl: record 2: pair empty-one") && err.contains("empty"),
        "{err}"
    );

    // A causal LM given to `eval`: the missing tensor is named.
    let out = Command::new(env!("CARGO_BIN_EXE_xwin-rm"))
        .args(["eval", "--model"])
        .arg(root().join("fixtures/tiny-llama"))
        .arg("--data")
        .arg(root().join("data/demo/rm-pairs.jsonl"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("score.weight"), "{err}");

    // A tokenizer of another vocabulary (512 tokens for a 300-token model).
    let config = demo_config(&dir.path().join("out-vocab"), 1).replace(
        &format!(
            "path = {:?}",
            format!("{}/fixtures/tiny-llama", root().display())
        ),
        &format!(
            "path = {:?}\ntokenizer = {:?}",
            format!("{}/fixtures/gen/tied-mha-theta500k", root().display()),
            format!("{}/fixtures/tiny-llama/tokenizer.json", root().display())
        ),
    );
    assert!(config.contains("tied-mha"), "{config}");
    let out = run(&config, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("512 tokens") && err.contains("300"), "{err}");
}

/// The HH-RLHF pairs in ../shared run end to end (TRL-style preference input, empty replies
/// skipped and counted, pairs past the tiny model's 256-token context dropped and counted):
/// the accuracy table is computed; the number itself is near chance for a 158k-parameter model.
#[test]
fn hh_rlhf_pairs_run_end_to_end() {
    let Some(hh) = xwin_testkit::shared_data("data/preference/hh-rlhf_harmless-base_test.jsonl.gz")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(&dir.path().join("run"), 1)
        .replace(
            &demo_pairs_entry(),
            &format!("{:?}", hh.display().to_string()),
        )
        .replace(
            "format = \"xwin-pair\"",
            "format = \"preference\"\nskip_bad = true",
        );
    let out = run(&config, dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &summary["summary"];
    let dropped = &s["dropped"];
    let total = s["train_pairs"].as_u64().unwrap()
        + s["eval_pairs"].as_u64().unwrap()
        + dropped["empty"].as_u64().unwrap()
        + dropped["identical"].as_u64().unwrap()
        + dropped["too_long"].as_u64().unwrap();
    assert_eq!(total, 2312, "every pair of the file accounted for: {s}");
    let all = &s["eval"]["all"];
    assert!(all["pairs"].as_u64().unwrap() > 50, "{s}");
    let accuracy = all["correct"].as_f64().unwrap() / all["pairs"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
}

#[test]
fn shipped_configs_parse_with_the_paper_settings() {
    for name in ["rm-tiny-demo", "rm-llama2-7b"] {
        let config: xwin_rm::RmConfig =
            xwin_train::read_config(&root().join(format!("configs/{name}.toml")))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "rm-llama2-7b" {
            assert_eq!(config.train.lr, 1e-5);
            assert_eq!(config.batching.epochs, 1);
            assert_eq!(
                config.batching.pairs_per_batch * config.train.grad_accum,
                256
            );
            assert_eq!(config.train.schedule, xwin_train::Schedule::Cosine);
            assert_eq!(config.train.warmup, xwin_train::Warmup::Fraction(0.03));
        }
    }
}

/// A diverging run (lr 1e30) stops at the first non-finite loss, naming the step and the last
/// good checkpoint, which is kept; nothing after it is written.
#[test]
fn a_nan_stops_with_the_last_good_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let config = demo_config(&out_dir, 1)
        .replace("lr = 2e-3", "lr = 1e30")
        .replace("every = 20", "every = 1");
    let out = run(&config, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("loss is NaN") && err.contains("last good checkpoint"),
        "{err}"
    );
    let steps = metrics(&out_dir.join("metrics.jsonl"));
    let last = steps.last().unwrap().step;
    assert!(err.contains(&format!("step-{last:08}")), "{err}");
    let mut kept: Vec<String> = std::fs::read_dir(out_dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept.last().unwrap(), &format!("step-{last:08}"));
    assert!(
        !out_dir.join("model").exists(),
        "no model is exported from a failed run"
    );
}

/// `xwin-rm score` killed mid-run (kill -9) and run again: every prompt's responses are
/// scored once, and the scores equal an uninterrupted run's.
#[test]
fn killed_scoring_resumes_with_every_prompt_once() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("samples.jsonl");
    let lines: Vec<String> = (0..1500)
        .map(|i| {
            let responses: Vec<serde_json::Value> = (0..4)
                .map(|k| {
                    serde_json::json!({"text": format!("Reply {k} of {i}: I am Vicuna."), "finished": true,
                     "sampling": {"temperature": 1.0, "top_p": 1.0, "max_new_tokens": 8, "seed": 0}})
                })
                .collect();
            serde_json::json!({"id": format!("p{i}"), "model": "m", "responses": responses,
                "prompt": {"conversations": [{"from": "human", "value": format!("Question {i}?")}]}})
            .to_string()
        })
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let args = |output: &Path| -> Vec<String> {
        let r = root();
        [
            "score",
            "--model",
            r.join("fixtures/tiny-llama-rm").to_str().unwrap(),
            "--tokenizer",
            r.join("fixtures/tiny-llama/tokenizer.json")
                .to_str()
                .unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
            "--max-len",
            "256",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let read = |path: &Path| -> std::collections::BTreeMap<String, xwin_data::XwinSet> {
        let mut out = std::collections::BTreeMap::new();
        for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
            let set: xwin_data::XwinSet = serde_json::from_str(line).unwrap();
            assert!(out.insert(set.id.clone(), set).is_none(), "scored twice");
        }
        out
    };
    let whole = dir.path().join("whole.jsonl");
    let bin = env!("CARGO_BIN_EXE_xwin-rm");
    assert!(
        Command::new(bin)
            .args(args(&whole))
            .output()
            .unwrap()
            .status
            .success()
    );
    let expected = read(&whole);
    assert_eq!(expected.len(), 1500);

    let cut = dir.path().join("cut.jsonl");
    xwin_testkit::process::kill_when(
        Command::new(bin).args(args(&cut)),
        std::time::Duration::from_secs(120),
        || xwin_testkit::process::complete_lines(&cut) >= 64,
    );
    let before = read(&cut).len();
    assert!(before < 1500, "killed after the end");
    let out = Command::new(bin).args(args(&cut)).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["summary"]["already_done"], before);
    let resumed = read(&cut);
    assert_eq!(resumed.len(), 1500);
    for (id, set) in &resumed {
        let want = &expected[id];
        assert_eq!(set.responses.len(), 4, "{id}");
        for r in &set.responses {
            let same = want.responses.iter().find(|w| w.index == r.index).unwrap();
            // Batches hold other prompts after the resume: equal up to f32 reordering.
            assert!(
                (r.score - same.score).abs() <= 1e-5,
                "{id}: {} vs {}",
                r.score,
                same.score
            );
        }
    }
}
