//! kill -9 during reward-model training and during sampling, then a rerun: the same final
//! numbers as an uninterrupted run (each stage resumes inside itself). The pipeline runs in a
//! child process: this test binary again, told by an environment variable to run it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use xwin_tests::short_config;

const CHILD: &str = "XWIN_PIPELINE_CHILD_OUTPUT";

/// In the child: runs the shortened pipeline into `$XWIN_PIPELINE_CHILD_OUTPUT`.
#[test]
fn child_runs_the_pipeline_when_asked() {
    if let Ok(out) = std::env::var(CHILD) {
        xwin_pipeline::run(&short_config(Path::new(&out)), |_| {}).expect("child pipeline");
    }
}

fn child(output: &Path) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "child_runs_the_pipeline_when_asked",
        "--test-threads",
        "1",
    ])
    .env(CHILD, output);
    c
}

fn run_to_end(output: &Path) {
    let status = child(output).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "pipeline child failed");
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn final_numbers(output: &Path) -> Vec<Vec<u8>> {
    ["eval-sft", "eval-rs", "eval-dpo"]
        .iter()
        .map(|s| std::fs::read(output.join(s).join("results.json")).unwrap())
        .collect()
}

#[test]
fn killed_during_rm_training_and_sampling_resumes_to_the_same_report_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole");
    run_to_end(&whole);

    let killed = dir.path().join("killed");
    // During pair sampling: some prompts written, not all.
    let pairs = killed.join("pairs/samples.jsonl");
    xwin_testkit::process::kill_when(&mut child(&killed), Duration::from_secs(600), || {
        lines(&pairs) >= 32
    });
    assert!(lines(&pairs) < 400, "killed before the stage ended");
    // During reward-model training: after its first checkpoint.
    let checkpoints = killed.join("rm/checkpoints");
    xwin_testkit::process::kill_when(&mut child(&killed), Duration::from_secs(600), || {
        std::fs::read_dir(&checkpoints).is_ok_and(|mut d| d.next().is_some())
    });
    assert!(!killed.join("rm/manifest.json").exists());
    run_to_end(&killed);
    assert_eq!(final_numbers(&killed), final_numbers(&whole));
}
