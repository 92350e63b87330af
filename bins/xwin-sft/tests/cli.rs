//! `xwin-sft` end to end on the bundled demo: real training steps, metrics, HF export.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo_config(output: &std::path::Path, epochs: usize, extra: &str) -> String {
    let text = std::fs::read_to_string(root().join("configs/sft-tiny-demo.toml")).unwrap();
    let r = root();
    text.replace(
        "output = \"runs/sft-tiny-demo\"",
        &format!("output = {:?}{extra}", output.to_str().unwrap()),
    )
    .replace("\"fixtures/", &format!("\"{}/fixtures/", r.display()))
    .replace("\"data/", &format!("\"{}/data/", r.display()))
    .replace("epochs = 8", &format!("epochs = {epochs}"))
}

fn run(config: &str, dir: &std::path::Path) -> std::process::Output {
    let path = dir.join("sft.toml");
    std::fs::write(&path, config).unwrap();
    Command::new(env!("CARGO_BIN_EXE_xwin-sft"))
        .args(["--config", path.to_str().unwrap()])
        .output()
        .unwrap()
}

#[test]
fn demo_sft_lowers_the_loss_and_exports_a_loadable_model() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = run(&demo_config(&out_dir, 4, ""), dir.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let s = &summary["summary"];
    // 64 conversations: about a tenth held out for the evaluation loss.
    assert_eq!(s["conversations"], 59);
    assert_eq!(s["eval_conversations"], 5);
    // 10 micro-batches per epoch (256-token blocks), accumulation 1.
    assert_eq!(s["steps"], 40);
    let steps = metrics(&out_dir.join("metrics.jsonl"));
    let losses: Vec<f32> = steps.iter().map(|m| m.loss).collect();
    assert_eq!(losses.len(), 40);
    let first = losses[..10].iter().sum::<f32>() / 10.0;
    let last = losses[30..].iter().sum::<f32>() / 10.0;
    assert!(
        last < 0.6 * first,
        "mean loss of the first epoch {first}, of the last {last}"
    );
    // Evaluation ran every 8 steps and the held-out loss fell too.
    let evals: Vec<f64> = steps.iter().filter_map(|m| m.eval_loss).collect();
    assert_eq!(evals.len(), 5, "{steps:?}");
    assert!(evals[4] < 0.7 * evals[0], "{evals:?}");
    // The export is a HF checkpoint our loader (and transformers) reads.
    let device = burn::tensor::Device::flex();
    let model = xwin_model::load_causal_lm(out_dir.join("model"), &device).unwrap();
    assert_eq!(model.config().vocab_size, 512);
    assert!(out_dir.join("model/tokenizer.json").exists());
    // What transformers and vLLM read beside the weights: the base model's generation
    // config, and a tokenizer config with the special tokens and the Vicuna chat template.
    let read_json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("model").join(name)).unwrap())
            .unwrap()
    };
    assert_eq!(read_json("generation_config.json")["bos_token_id"], 1);
    let tokenizer_config = read_json("tokenizer_config.json");
    assert_eq!(tokenizer_config["eos_token"], "</s>");
    assert_eq!(tokenizer_config["bos_token"], "<s>");
    let template = tokenizer_config["chat_template"].as_str().unwrap();
    assert!(
        template.contains("USER: ") && template.contains(" ASSISTANT:"),
        "{template}"
    );
}

/// A second run on an output directory that a running one holds is refused, naming it.
#[test]
fn a_second_run_on_the_same_output_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let path = dir.path().join("sft.toml");
    std::fs::write(&path, demo_config(&out_dir, 8, "")).unwrap();
    let mut first = Command::new(env!("CARGO_BIN_EXE_xwin-sft"))
        .args(["--config", path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let metrics = out_dir.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "first run made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let second = run(&demo_config(&out_dir, 8, ""), dir.path());
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("in use by another run") && err.contains("pid"),
        "{err}"
    );
}

#[test]
fn blocks_longer_than_the_context_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        demo_config(&dir.path().join("run"), 1, "").replace("max_len = 256", "max_len = 512");
    let out = run(&config, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data.max_len = 512") && err.contains("256"),
        "{err}"
    );
}

#[test]
fn config_typo_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        demo_config(&dir.path().join("run"), 1, "").replace("micro_batch_size", "micro_bach_size");
    let out = run(&config, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sft.toml") && err.contains("micro_bach_size"),
        "{err}"
    );
}

#[test]
fn missing_data_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        demo_config(&dir.path().join("run"), 1, "").replace("demo/sft.jsonl", "demo/nope.jsonl");
    let out = run(&config, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nope.jsonl"), "{err}");
}

#[test]
fn shipped_configs_parse_with_the_paper_settings() {
    for name in ["sft-tiny-demo", "sft-llama2-7b"] {
        let text = std::fs::read_to_string(root().join(format!("configs/{name}.toml"))).unwrap();
        let config: xwin_train::SftConfig =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name == "sft-llama2-7b" {
            assert_eq!(config.train.lr, 2e-5);
            assert_eq!(config.batching.epochs, 3);
            assert_eq!(config.data.max_len, 4096);
            assert_eq!(config.train.adamw, xwin_train::AdamWSettings::default());
            assert_eq!(config.train.schedule, xwin_train::Schedule::Cosine);
        }
    }
}

/// The run's `metrics.jsonl`, one record per step.
fn metrics(path: &std::path::Path) -> Vec<xwin_train::StepMetrics> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn losses(path: &std::path::Path) -> Vec<(usize, f32)> {
    metrics(path).iter().map(|m| (m.step, m.loss)).collect()
}

/// kill -9 in the middle of a run, rerun the same command: the loss curve equals that of a
/// run never stopped, step for step and bit for bit.
#[test]
fn killed_run_resumes_as_if_never_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let config = |out: &str| {
        demo_config(&dir.path().join(out), 4, "")
            .replace("every = 16", "every = 4")
            .replace("eval_every = 8", "eval_every = 1000")
    };
    let whole = dir.path().join("whole");
    std::fs::create_dir_all(&whole).unwrap();
    let out = run(&config("whole/run"), &whole);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = losses(&whole.join("run/metrics.jsonl"));
    assert_eq!(expected.len(), 40);

    let cut = dir.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let path = cut.join("sft.toml");
    std::fs::write(&path, config("cut/run")).unwrap();
    let metrics = cut.join("run/metrics.jsonl");
    // Kill between checkpoints, once a few have been written.
    xwin_testkit::process::kill_when(
        Command::new(env!("CARGO_BIN_EXE_xwin-sft")).args(["--config", path.to_str().unwrap()]),
        std::time::Duration::from_secs(120),
        || std::fs::read_to_string(&metrics).map_or(0, |t| t.lines().count()) >= 14,
    );
    let before = losses(&metrics).len();
    assert!((14..40).contains(&before), "{before}");

    let out = run(&config("cut/run"), &cut);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let resumed = summary["summary"]["resumed_from"].as_u64().unwrap();
    assert!(resumed >= 12 && resumed.is_multiple_of(4), "{resumed}");
    assert_eq!(losses(&metrics), expected, "resumed from step {resumed}");
    // Only the newest two checkpoints are kept, the last one at the end.
    let mut kept: Vec<String> = std::fs::read_dir(cut.join("run/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(kept, ["step-00000036", "step-00000040"]);
}

#[test]
fn checkpoint_of_another_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let config = demo_config(&out_dir, 1, "").replace("every = 16", "every = 2");
    assert!(run(&config, dir.path()).status.success());
    // Same output directory, different learning rate: resuming would mix two runs.
    let out = run(&config.replace("lr = 3e-3", "lr = 1e-3"), dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("different run") && err.contains("step-00000010"),
        "{err}"
    );
}

/// The same config over other base weights (same path, same architecture) is another run:
/// its checkpoint is refused instead of silently mixing two models.
#[test]
fn checkpoint_over_other_base_weights_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    std::fs::create_dir_all(&base).unwrap();
    for file in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(
            root().join("fixtures/tiny-llama").join(file),
            base.join(file),
        )
        .unwrap();
    }
    let config = demo_config(&dir.path().join("run"), 1, "")
        .replace("every = 16", "every = 2")
        .replace(
            &format!(
                "{:?}",
                root().join("fixtures/tiny-llama").display().to_string()
            ),
            &format!("{:?}", base.display().to_string()),
        );
    assert!(config.contains(base.to_str().unwrap()), "{config}");
    assert!(run(&config, dir.path()).status.success());
    std::fs::copy(
        root().join("fixtures/train/after_adamw/model.safetensors"),
        base.join("model.safetensors"),
    )
    .unwrap();
    let out = run(&config, dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("different run") && err.contains("base model"),
        "{err}"
    );
}
