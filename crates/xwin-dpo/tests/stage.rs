//! The DPO stage from one config on the tiny fixtures: held-out reward accuracy and margins
//! rise; a rerun reuses the persisted reference log-probabilities; the calibrated rank is
//! chosen from the policy's own RM score; bad input is named.

use std::path::{Path, PathBuf};
use xwin_data::{ScoredResponse, XwinSet};
use xwin_dpo::{DpoConfig, run_dpo};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// An Xwin-Set over the first 40 demo prompts: the real reply ranked first, then two
/// degraded answers.
fn xwin_set(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join("data/demo/sft.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .take(40)
        .enumerate()
        .map(|(i, line)| {
            let c: serde_json::Value = serde_json::from_str(line).unwrap();
            let turns = c["conversations"].as_array().unwrap();
            let question = turns[0]["value"].as_str().unwrap();
            let reply = turns[1]["value"].as_str().unwrap();
            let responses = [
                (reply.to_string(), 3.0),
                ("I don't know.".to_string(), 1.0),
                ("No.".to_string(), 0.0),
            ]
            .into_iter()
            .enumerate()
            .map(|(k, (text, score))| ScoredResponse {
                text,
                score,
                rank: k + 1,
                index: Some(k),
            })
            .collect();
            let set = XwinSet {
                id: format!("q{i}"),
                prompt: xwin_data::Conversation::new(vec![xwin_data::Turn::human(question)]),
                reward_model: "rm".into(),
                responses,
            };
            serde_json::to_string(&set).unwrap()
        })
        .collect();
    let path = dir.join("xwin-set.jsonl");
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn config(dir: &Path, set: &Path, extra: &str) -> DpoConfig {
    let text = format!(
        r#"
output = {out:?}
[model]
path = {policy:?}
[data]
xwin_set = {set:?}
max_len = 256
eval_fraction = 0.25
{extra}
[batching]
epochs = 3
pairs_per_batch = 8
[train]
lr = 2e-3
schedule = "linear"
warmup = {{ steps = 1 }}
grad_accum = 1
max_grad_norm = 1.0
"#,
        out = dir.join("run").display().to_string(),
        policy = root().join("fixtures/tiny-llama").display().to_string(),
        set = set.display().to_string(),
    );
    let path = dir.join("dpo.toml");
    std::fs::write(&path, text).unwrap();
    xwin_train::read_config(&path).unwrap()
}

#[test]
fn held_out_preference_rises_and_a_rerun_reuses_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let set = xwin_set(dir.path());
    let cfg = config(dir.path(), &set, "[select]\nrejected_rank = 3");
    let s = run_dpo(&cfg, |_| {}).unwrap();
    assert_eq!(s.rejected_rank, Some(3));
    assert_eq!(s.train_pairs + s.eval_pairs, 40);
    assert_eq!(s.reference_computed, 40);
    let (before, after) = (s.eval_before.unwrap(), s.eval_after.unwrap());
    eprintln!("held-out before {before:?}\nafter {after:?}");
    assert_eq!(
        before["rewards/margins"], 0.0,
        "policy = reference at the start"
    );
    assert!((before["loss"] - 2f64.ln()).abs() < 1e-6);
    assert!(after["rewards/accuracy"] > 0.8, "{after:?}");
    assert!(after["rewards/margins"] > 0.5, "{after:?}");
    assert!(after["loss"] < before["loss"]);
    let artifact = dir.path().join("run/reference-logps.jsonl");
    assert_eq!(
        std::fs::read_to_string(&artifact).unwrap().lines().count(),
        40
    );

    // The same config again: nothing recomputed, the artifact unchanged.
    let again = run_dpo(&cfg, |_| {}).unwrap();
    assert_eq!(again.reference_computed, 0);
    assert_eq!(
        std::fs::read_to_string(&artifact).unwrap().lines().count(),
        40
    );

    // An artifact computed against another reference model is refused.
    let mut other = cfg.clone();
    other.reference.path = Some(root().join("fixtures/train/dpo_ref"));
    let err = run_dpo(&other, |_| {}).unwrap_err().to_string();
    assert!(err.contains("another reference model"), "{err}");

    // An artifact from elsewhere that lacks a pair: the pair is named.
    let partial = dir.path().join("partial.jsonl");
    let text = std::fs::read_to_string(&artifact).unwrap();
    let kept: Vec<&str> = text.lines().skip(1).collect();
    std::fs::write(&partial, kept.join("\n")).unwrap();
    let missing: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let id = missing["key"]
        .as_str()
        .unwrap()
        .split('#')
        .next()
        .unwrap()
        .to_string();
    let mut given = cfg.clone();
    given.output = dir.path().join("given");
    given.reference.logps = Some(partial);
    let err = run_dpo(&given, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains(&format!("pair {id}:")) && err.contains("missing"),
        "{err}"
    );
}

#[test]
fn the_rejected_rank_is_calibrated_to_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let set = xwin_set(dir.path());
    let extra = format!(
        "[calibrate]\nreward = {:?}\nprompts = {:?}\nprobe_prompts = 6\nmax_new_tokens = 8\n",
        root().join("fixtures/tiny-llama-rm").display().to_string(),
        root()
            .join("data/demo/prompts-heldout.jsonl")
            .display()
            .to_string(),
    );
    let mut cfg = config(dir.path(), &set, &extra);
    cfg.batching.epochs = 1;
    let s = run_dpo(&cfg, |_| {}).unwrap();
    let c = s.calibration.unwrap();
    assert_eq!(c.probe_samples, 6);
    assert_eq!(c.mean_by_rank, [3.0, 1.0, 0.0]);
    let want = xwin_dpo::closest_rank(&c.mean_by_rank, c.policy_mean).unwrap();
    assert_eq!((c.rank, s.rejected_rank), (want, Some(want)));
    assert!(dir.path().join("run/calibration.json").exists());
    assert!(dir.path().join("run/probe-xwin-set.jsonl").exists());
}

#[test]
fn bad_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let set = xwin_set(dir.path());
    let err = run_dpo(
        &config(dir.path(), &set, "[select]\nrejected_rank = 4"),
        |_| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("pair q0") && err.contains("rank 4 asked for, the prompt has 3"),
        "{err}"
    );

    // A pair file whose chosen equals its rejected.
    let pairs = dir.path().join("pairs.jsonl");
    std::fs::write(
        &pairs,
        "{\"id\":\"ok\",\"prompt\":\"Hi?\",\"chosen\":\"Hello!\",\"rejected\":\"No.\"}\n\
         {\"id\":\"same\",\"prompt\":\"Hi?\",\"chosen\":\"Hello!\",\"rejected\":\"Hello!\"}\n",
    )
    .unwrap();
    let mut cfg = config(dir.path(), &set, "");
    cfg.data.xwin_set = None;
    cfg.data.pairs = Some(pairs);
    cfg.data.eval_fraction = 0.0;
    let err = run_dpo(&cfg, |_| {}).unwrap_err().to_string();
    assert!(
        err.contains("record 2: pair same") && err.contains("same text"),
        "{err}"
    );
    cfg.data.skip_bad = true;
    let s = run_dpo(&cfg, |_| {}).unwrap();
    assert_eq!((s.train_pairs, s.dropped.bad), (1, 1));
}
