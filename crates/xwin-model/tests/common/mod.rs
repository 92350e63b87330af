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

/// The tiny-llama fixture on an autodiff device in `precision`; with `tied`, the same
/// checkpoint loaded as a tied-embedding model (its `lm_head` skipped), so that every call
/// gives the same weights (burn's random numbers are process-global: a seeded random init
/// races with the other tests of the file).
pub fn tiny_llama(tied: bool, precision: xwin_model::Precision) -> xwin_model::LlamaForCausalLM {
    let device = burn::tensor::Device::flex().autodiff();
    let src = fixtures().join("tiny-llama");
    let model = if tied {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        config["tie_word_embeddings"] = Value::Bool(true);
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        std::fs::copy(
            src.join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        xwin_model::load_causal_lm(dir.path(), &device).unwrap()
    } else {
        xwin_model::load_causal_lm(&src, &device).unwrap()
    };
    model.with_precision(precision)
}

/// Each parameter's gradient by HF name, in HF's layout (linear weights `[out, in]`).
pub fn grads_by_name(
    model: &xwin_model::LlamaForCausalLM,
    grads: &burn::tensor::Gradients,
) -> Vec<(String, Vec<f32>)> {
    use xwin_model::params::HfTensor;
    model
        .hf_tensors()
        .into_iter()
        .map(|(name, t)| {
            let g = match t {
                HfTensor::Linear(w) => w.grad(grads).unwrap().transpose().try_to_vec_as(),
                HfTensor::Matrix(m) => m.grad(grads).unwrap().try_to_vec_as(),
                HfTensor::Vector(v) => v.grad(grads).unwrap().try_to_vec_as(),
            };
            (name, g.unwrap())
        })
        .collect()
}
