//! The shortened demo pipeline end to end through the library: every stage runs and the
//! report has the held-out table; a rerun with nothing changed runs nothing; a changed DPO β
//! reruns DPO, its evaluation and the report only; a config typo names the stage and field
//! before anything runs; a failing stage leaves the earlier artifacts and says why in status.

use xwin_pipeline::config::wire;
use xwin_pipeline::{Event, PipelineConfig, status};
use xwin_tests::short_config;

/// Runs the pipeline; returns the stages that ran (not skipped).
fn run(config: &PipelineConfig) -> Vec<String> {
    let mut ran = Vec::new();
    xwin_pipeline::run(config, |e| {
        if let Event::Started { stage, .. } = e {
            ran.push(stage);
        }
    })
    .expect("pipeline runs");
    ran
}

fn states(config: &PipelineConfig) -> Vec<(String, String)> {
    status(config)
        .unwrap()
        .into_iter()
        .map(|s| (s.stage, s.state))
        .collect()
}

#[test]
fn runs_end_to_end_then_skips_and_reruns_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = short_config(dir.path());
    assert!(states(&config).iter().all(|(_, s)| s == "to do"));
    let ran = run(&config);
    assert_eq!(ran, xwin_pipeline::STAGES.map(String::from).to_vec());
    assert!(
        states(&config).iter().all(|(_, s)| s == "done"),
        "{:?}",
        states(&config)
    );
    let report = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    for needle in [
        "Held-out demo tasks",
        "| SFT |",
        "| RS |",
        "| DPO |",
        "Reward model",
        "Stages",
    ] {
        assert!(report.contains(needle), "report lacks {needle}:\n{report}");
    }
    let results = |stage: &str| std::fs::read(dir.path().join(stage).join("results.json")).unwrap();
    let (sft_results, dpo_results) = (results("eval-sft"), results("eval-dpo"));

    let start = std::time::Instant::now();
    assert!(run(&config).is_empty(), "nothing changed, nothing runs");
    assert!(
        start.elapsed().as_secs() < 10,
        "a no-op rerun took {:?}",
        start.elapsed()
    );

    wire(&mut config.dpo, "loss.beta", 0.3.into());
    assert_eq!(states(&config)[7], ("dpo".to_string(), "stale".to_string()));
    assert_eq!(run(&config), ["dpo", "eval-dpo", "report"]);
    assert_eq!(
        results("eval-sft"),
        sft_results,
        "upstream evaluation untouched"
    );
    assert_ne!(
        results("eval-dpo"),
        dpo_results,
        "another β, another policy"
    );
}

#[test]
fn a_typo_names_the_stage_and_field_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = short_config(dir.path());
    wire(&mut config.rm, "train.lrr", 1.0.into());
    let err = xwin_pipeline::run(&config, |_| {}).unwrap_err().to_string();
    assert!(err.contains("stage rm") && err.contains("lrr"), "{err}");
    assert!(!dir.path().join("sft").exists(), "nothing ran");

    let mut files = short_config(dir.path());
    files.data.demo_task = None;
    files.data.sft = Some(dir.path().join("missing.jsonl"));
    files.data.pair_prompts = files.data.sft.clone();
    files.data.rs_prompts = files.data.sft.clone();
    let err = xwin_pipeline::run(&files, |_| {}).unwrap_err().to_string();
    assert!(err.contains("missing.jsonl"), "{err}");
}

#[test]
fn a_failing_stage_keeps_earlier_artifacts_and_status_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = short_config(dir.path());
    // Rank 0 passes parsing but the RS stage refuses it.
    wire(&mut config.rs, "select.rank", 0.into());
    let err = xwin_pipeline::run(&config, |_| {}).unwrap_err().to_string();
    assert!(err.starts_with("stage rs:"), "{err}");
    let rows = status(&config).unwrap();
    let state = |name: &str| rows.iter().find(|r| r.stage == name).unwrap().clone();
    assert_eq!(state("rm").state, "done");
    assert!(dir.path().join("rm/model/model.safetensors").exists());
    let rs = state("rs");
    assert_eq!(rs.state, "failed");
    assert!(rs.error.unwrap().contains("select.rank"));
    assert_eq!(state("dpo").state, "to do");
}

#[test]
fn two_runs_on_one_output_do_not_both_write_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = short_config(dir.path());
    let _first =
        xwin_data::OutputLock::acquire(xwin_data::lock_path_for(dir.path(), true)).unwrap();
    let err = xwin_pipeline::run(&config, |_| {}).unwrap_err();
    assert!(
        matches!(
            err,
            xwin_pipeline::PipelineError::Data(xwin_data::DataError::Locked { .. })
        ),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "the second run wrote nothing"
    );
}
