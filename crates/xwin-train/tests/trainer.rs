//! Real training steps of a tiny Llama through the shared loop.

use burn::tensor::Device;
use xwin_data::Batch;
use xwin_model::{LlamaConfig, LlamaForCausalLM};
use xwin_train::{AdamWSettings, LoopConfig, Schedule, TrainError, Warmup, sft_loss, train};

fn tiny() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        ..LlamaConfig::llama2_7b()
    }
}

/// 16 "conversations": a prompt of 4 tokens and a reply of 6 that the loss trains on.
fn data() -> Vec<Batch> {
    (0..4)
        .map(|b| {
            let ids: Vec<Vec<u32>> = (0..4)
                .map(|i| {
                    let k = (b * 4 + i) as u32;
                    (0..10)
                        .map(|t| 3 + (k * 7 + t * (k % 5 + 1)) % 60)
                        .collect()
                })
                .collect();
            Batch {
                attention: vec![vec![true; 10]; 4],
                loss_mask: vec![(0..10).map(|t| t >= 4).collect(); 4],
                ids,
            }
        })
        .collect()
}

#[test]
fn tiny_model_overfits_16_conversations() {
    let device = Device::flex().autodiff();
    device.seed(42); // deterministic init: the test must not depend on luck
    let model = LlamaForCausalLM::random(&tiny(), &device);
    let batches = data();
    let config = LoopConfig {
        lr: 1e-2,
        schedule: Schedule::Cosine,
        warmup: Warmup::Steps(5),
        grad_accum: 2,
        max_grad_norm: Some(1.0),
        adamw: AdamWSettings::default(),
    };
    let mut losses = Vec::new();
    let trained = train(
        model,
        &config,
        120,
        |step, micro| batches[(step * 2 + micro) % 4].clone(),
        |m, b| sft_loss(m, b, &device),
        |s| losses.push(s.loss),
    )
    .map_err(|(_, e)| e)
    .unwrap();
    assert_eq!(losses.len(), 120);
    assert!(losses[0] > 3.5, "starts near ln(64) = 4.16: {}", losses[0]);
    let last = losses[115..].iter().sum::<f32>() / 5.0;
    assert!(
        last < 0.05,
        "loss after 120 steps: {last} (curve {:?})",
        &losses[..10]
    );
    // The trained model reproduces the replies greedily (checked on the last batch's loss).
    let final_loss = sft_loss(&trained, &batches[0], &device)
        .unwrap()
        .into_scalar::<f32>();
    assert!(final_loss < 0.05, "{final_loss}");
}

#[test]
fn non_finite_loss_stops_with_the_last_good_parameters() {
    let device = Device::flex().autodiff();
    device.seed(42); // deterministic init: the test must not depend on luck
    let model = LlamaForCausalLM::random(&tiny(), &device);
    let batches = data();
    let config = LoopConfig {
        lr: 1e-3,
        schedule: Schedule::Constant,
        warmup: Warmup::Steps(0),
        grad_accum: 1,
        max_grad_norm: None,
        adamw: AdamWSettings::default(),
    };
    let steps = std::cell::Cell::new(0);
    let result = train(
        model,
        &config,
        10,
        |step, _| batches[step % 4].clone(),
        |m, b| {
            sft_loss(m, b, &device).map(|l| {
                if steps.get() >= 3 {
                    l.mul_scalar(f32::NAN)
                } else {
                    l
                }
            })
        },
        |_| steps.set(steps.get() + 1),
    );
    let (model, err) = result.err().expect("must stop");
    assert!(
        matches!(err, TrainError::NonFinite { step: 3, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("step 3: loss is NaN"), "{err}");
    assert_eq!(steps.get(), 3);
    // The returned model is usable and finite.
    let l = sft_loss(&model, &batches[0], &device)
        .unwrap()
        .into_scalar::<f32>();
    assert!(l.is_finite());
}
