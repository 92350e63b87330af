//! The SFT loss and one AdamW step against torch/transformers (fixtures/train, made by
//! scripts/make_train_fixtures.py).

use burn::optim::GradientsParams;
use burn::tensor::Device;
use serde_json::Value;
use std::path::PathBuf;
use xwin_data::Batch;
use xwin_model::{load_causal_lm, params::HfTensor};
use xwin_train::{AdamWSettings, sft_loss};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn batch() -> (Batch, Value) {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("train/sft_step.json")).unwrap(),
    )
    .unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(exp["input_ids"].clone()).unwrap();
    let mask: Vec<Vec<u8>> = serde_json::from_value(exp["loss_mask"].clone()).unwrap();
    let batch = Batch {
        attention: ids.iter().map(|r| vec![true; r.len()]).collect(),
        ids,
        loss_mask: mask
            .iter()
            .map(|r| r.iter().map(|&m| m == 1).collect())
            .collect(),
    };
    (batch, exp)
}

#[test]
fn masked_sft_loss_equals_transformers() {
    let device = Device::flex();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let (batch, exp) = batch();
    let loss = sft_loss(&model, &batch, &device)
        .unwrap()
        .into_scalar::<f32>();
    let want = exp["sft_loss"].as_f64().unwrap() as f32;
    assert!(
        (loss - want).abs() < 1e-4,
        "loss {loss} vs transformers {want}"
    );
}

#[test]
fn one_adamw_step_changes_every_parameter_as_torch_does() {
    let device = Device::flex().autodiff();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let (batch, exp) = batch();
    let loss = sft_loss(&model, &batch, &device).unwrap();
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    let norm = xwin_train::optim::grad_norm(&model, &grads);
    let want_norm = exp["grad_norm"].as_f64().unwrap();
    assert!(
        (norm - want_norm).abs() < 1e-3 * want_norm,
        "grad norm {norm} vs {want_norm}"
    );
    let mut optim = AdamWSettings::default().build();
    let updated = optim.step(1e-3, model, grads);
    let reference = load_causal_lm(fixtures().join("train/after_adamw"), &Device::flex()).unwrap();
    let ours = updated.hf_tensors();
    let theirs = reference.hf_tensors();
    assert_eq!(ours.len(), theirs.len());
    let host = |t: &HfTensor| match t {
        HfTensor::Linear(t) | HfTensor::Matrix(t) => t.try_to_vec_as::<f32>().unwrap(),
        HfTensor::Vector(t) => t.try_to_vec_as::<f32>().unwrap(),
    };
    // The first Adam step is lr * g / (|g| + eps): where torch's |g| is far below eps = 1e-8
    // (a sum of ~1e-3 terms cancelling), float rounding in g decides the update, so those
    // few elements are counted, not compared.
    let grads_bytes = std::fs::read(fixtures().join("train/grads.safetensors")).unwrap();
    let torch_grads = safetensors::SafeTensors::deserialize(&grads_bytes).unwrap();
    let mut ill_conditioned = 0;
    let mut compared = 0;
    for ((name, a), (other, b)) in ours.iter().zip(&theirs) {
        assert_eq!(name, other);
        let a_tensor = |all: &[(String, HfTensor)], n: &str| {
            all.iter()
                .find(|(x, _)| x == n)
                .map(|(_, t)| t.clone())
                .unwrap()
        };
        let (a, b) = (host(a), host(b));
        let g: Vec<f32> = torch_grads
            .tensor(name)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let g = burn_layout(g, a_tensor(&ours, name));
        let mut diff = 0.0f32;
        for ((x, y), g) in a.iter().zip(&b).zip(&g) {
            if g.abs() != 0.0 && g.abs() < 1e-7 {
                ill_conditioned += 1;
                continue;
            }
            compared += 1;
            diff = xwin_testkit::nan_max(diff, (x - y).abs());
        }
        assert!(diff < 1e-5, "{name}: max |Δ| = {diff}");
    }
    assert!(
        ill_conditioned <= 4,
        "{ill_conditioned} elements with 0 < |g| < 1e-7"
    );
    assert_eq!(
        compared + ill_conditioned,
        updated.config().num_parameters()
    );
}

/// HF stores Linear weights as `[out, in]`; burn (and `HfTensor::Linear` values) as `[in, out]`.
fn burn_layout(hf: Vec<f32>, tensor: HfTensor) -> Vec<f32> {
    match &tensor {
        HfTensor::Linear(_) => {
            let [out, inp] = [tensor.hf_shape()[0], tensor.hf_shape()[1]];
            (0..hf.len())
                .map(|i| hf[(i % out) * inp + i / out])
                .collect()
        }
        _ => hf,
    }
}
