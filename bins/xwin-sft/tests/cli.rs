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
    assert_eq!(s["conversations"], 64);
    assert_eq!(s["steps"], 32);
    let metrics = std::fs::read_to_string(out_dir.join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["loss"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert_eq!(losses.len(), 32);
    let first = losses[..8].iter().sum::<f64>() / 8.0;
    let last = losses[24..].iter().sum::<f64>() / 8.0;
    assert!(
        last < 0.6 * first,
        "mean loss of the first epoch {first}, of the last {last}"
    );
    // The export is a HF checkpoint our loader (and transformers) reads.
    let device = burn::tensor::Device::flex();
    let model = xwin_model::load_causal_lm(out_dir.join("model"), &device).unwrap();
    assert_eq!(model.config().vocab_size, 512);
    assert!(out_dir.join("model/tokenizer.json").exists());
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
