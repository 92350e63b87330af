//! One DPO step through the shared loop against torch (`fixtures/train/dpo_step*`, made by
//! `scripts/make_dpo_fixtures.py`): reference log-probabilities from a different model, the
//! policy's, the sigmoid loss with the SFT term, the gradient norm and every parameter after
//! one AdamW step.

use burn::tensor::Device;
use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use xwin_data::TokenizedConversation;
use xwin_dpo::{
    DpoObjective, LossConfig, ReferenceIdentity, TokenPair, dpo_batches, reference_logps,
};
use xwin_model::load_causal_lm;
use xwin_testkit::assert_close;
use xwin_train::{AdamWSettings, EpochPlan, LoopConfig, Run, Schedule, Warmup, train};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The fixture's pairs: prompt + response, the response marked.
fn pairs(exp: &Value) -> Vec<TokenPair> {
    let ids = |v: &Value| -> Vec<u32> { serde_json::from_value(v.clone()).unwrap() };
    exp["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let prompt = ids(&p["prompt"]);
            let side = |k: &str| {
                let response = ids(&p[k]);
                TokenizedConversation {
                    ids: prompt.iter().chain(&response).copied().collect(),
                    mask: (0..prompt.len() + response.len())
                        .map(|t| t >= prompt.len())
                        .collect(),
                    round_starts: vec![],
                }
            };
            TokenPair {
                id: format!("p{i}"),
                chosen: side("chosen"),
                rejected: side("rejected"),
            }
        })
        .collect()
}

#[test]
fn dpo_step_equals_torch() {
    dpo_step(false);
}

/// With activation checkpointing: held to the same tolerances.
#[test]
fn checkpointed_dpo_step_equals_torch() {
    dpo_step(true);
}

fn dpo_step(gradient_checkpointing: bool) {
    let exp: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("train/dpo_step.json")).unwrap(),
    )
    .unwrap();
    let pairs = pairs(&exp);
    let plain = Device::flex();
    let reference = load_causal_lm(fixtures().join("train/dpo_ref"), &plain).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let identity = ReferenceIdentity {
        model: "dpo_ref".into(),
        template: "none".into(),
        precision: Default::default(),
    };
    let (logps, computed) = reference_logps(
        &reference,
        &identity,
        &pairs.iter().collect::<Vec<_>>(),
        Some(&dir.path().join("ref.jsonl")),
        2,
        1 << 16,
        &plain,
        |_| {},
    )
    .unwrap();
    assert_eq!(computed, 3);
    let want: Vec<f32> = serde_json::from_value(exp["reference_logps"].clone()).unwrap();
    let ours: Vec<f32> = pairs
        .iter()
        .map(|p| logps[&p.key()].0 as f32)
        .chain(pairs.iter().map(|p| logps[&p.key()].1 as f32))
        .collect();
    assert_close("reference log-probs", &ours, &want, 1e-4);

    let device = plain.clone().autodiff();
    let policy = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    // One micro-batch of all three pairs in the fixture's order.
    let order: HashMap<String, (f64, f64)> = logps;
    let mut batches = dpo_batches(
        &pairs,
        &order,
        3,
        1 << 16,
        xwin_data::Padding::to_longest(0),
        0,
    )
    .unwrap();
    assert_eq!(batches.len(), 1);
    let batch = batches.remove(0);
    let loss = LossConfig {
        beta: exp["beta"].as_f64().unwrap(),
        sft_weight: exp["sft_weight"].as_f64().unwrap(),
        ..LossConfig::default()
    };
    let config = LoopConfig {
        lr: 1e-3,
        schedule: Schedule::Constant,
        warmup: Warmup::Steps(0),
        grad_accum: 1,
        max_grad_norm: None,
        adamw: AdamWSettings {
            eps: 1e-6,
            ..AdamWSettings::default()
        },
        seed: 0,
        eval_every: None,
        lora: None,
        precision: Default::default(),
        loss_scale: None,
        gradient_checkpointing,
    };
    let mut objective = DpoObjective::new(
        vec![batch],
        Vec::new(),
        EpochPlan::in_order(1, 1, 1),
        loss,
        device.clone(),
    );
    let mut log = Vec::new();
    let trained = train(
        policy,
        &config,
        &Run::in_memory(1, &device),
        &mut objective,
        |m| log.push(m.clone()),
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let want_loss = exp["loss"].as_f64().unwrap() as f32;
    assert_close("loss", &[log[0].loss], &[want_loss], 1e-5);
    let norm = exp["grad_norm"].as_f64().unwrap() as f32;
    assert_close("grad norm", &[log[0].grad_norm as f32], &[norm], 1e-5);
    assert_eq!(log[0].items, 3, "the loss is the mean over pairs");
    let logp_chosen: f64 = serde_json::from_value::<Vec<f64>>(exp["policy_logps"].clone()).unwrap()
        [..3]
        .iter()
        .sum::<f64>()
        / 3.0;
    assert!((log[0].metrics["logps/chosen"] - logp_chosen).abs() < 1e-4);
    let after = load_causal_lm(fixtures().join("train/dpo_step"), &plain).unwrap();
    let (a, b) = (trained.model.hf_tensors(), after.hf_tensors());
    let worst = xwin_testkit::assert_params_close("after one step", &a, &b, 1e-5);
    eprintln!(
        "DPO step: |Δloss| {:.2e}, max |Δparam| after one AdamW step {worst:.2e}",
        (log[0].loss - want_loss).abs()
    );
}
