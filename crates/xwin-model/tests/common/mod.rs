//! Shared helpers for xwin-model's integration tests.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// `fixtures/` at the workspace root (HF reference models copied into the repo).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Every causal-LM fixture directory: the shared tiny-llama and the generated variants.
pub fn causal_fixtures() -> Vec<PathBuf> {
    let mut dirs = vec![fixtures().join("tiny-llama")];
    let mut generated: Vec<PathBuf> = std::fs::read_dir(fixtures().join("gen"))
        .expect("fixtures/gen exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    generated.sort();
    dirs.extend(generated);
    dirs
}

pub fn expected(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

pub fn ids(value: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).expect("token id lists")
}

pub fn floats3(value: &Value) -> Vec<Vec<Vec<f32>>> {
    serde_json::from_value(value.clone()).expect("3-d float array")
}

#[allow(unused_imports)] // each test file uses its own subset
pub use xwin_testkit::max_abs_diff;

/// Logits of one fixed 6-token prompt: a quick fingerprint of a model's weights.
pub fn probe_logits(
    model: &xwin_model::LlamaForCausalLM,
    device: &burn::tensor::Device,
) -> Vec<f32> {
    let ids = vec![vec![1u32, 45, 200, 17, 99, 5]];
    let t = model.ids_tensor(&ids, device).unwrap();
    model
        .forward(t, &xwin_model::BatchLayout::contiguous(1, 6, 0), None)
        .try_into_vec_as::<f32>()
        .unwrap()
}
