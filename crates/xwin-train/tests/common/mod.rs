//! Pieces the loop tests share: tiny models, loop settings, a run that collects losses.

#![allow(dead_code)] // each test file uses its own subset

use burn::module::Module;
use burn::tensor::Device;
use xwin_model::{LlamaConfig, LlamaForCausalLM, params::HfTensor};
use xwin_train::{AdamWSettings, LoopConfig, Objective, Run, Schedule, Warmup, train};

/// A Llama small enough to train in a test: hidden 32, 4 heads of 8.
pub fn tiny_llama(vocab_size: usize, layers: usize, kv_heads: usize) -> LlamaConfig {
    LlamaConfig {
        vocab_size,
        hidden_size: 32,
        intermediate_size: 64,
        num_hidden_layers: layers,
        num_attention_heads: 4,
        num_key_value_heads: kv_heads,
        head_dim: 8,
        ..LlamaConfig::llama2_7b()
    }
}

/// Loop settings with clipping at 1.0, the paper's AdamW, seed 0 and no evaluation.
pub fn loop_config(lr: f64, schedule: Schedule, warmup: Warmup, grad_accum: usize) -> LoopConfig {
    LoopConfig {
        lr,
        schedule,
        warmup,
        grad_accum,
        max_grad_norm: Some(1.0),
        adamw: AdamWSettings::default(),
        seed: 0,
        eval_every: None,
        lora: None,
        precision: Default::default(),
        loss_scale: None,
        gradient_checkpointing: false,
    }
}

/// Trains `steps` steps without files; the trained model and each step's loss.
pub fn train_in_memory<M: Module, O: Objective<M>>(
    model: M,
    config: &LoopConfig,
    steps: usize,
    device: &Device,
    objective: &mut O,
) -> (M, Vec<f32>) {
    let mut losses = Vec::new();
    let trained = train(
        model,
        config,
        &Run::in_memory(steps, device),
        objective,
        |s| losses.push(s.loss),
    )
    .map_err(|(_, e)| e)
    .expect("training runs");
    (trained.model, losses)
}

/// Every HF tensor of the model with its elements, by name, for exact comparisons.
pub fn hf_weights(m: &LlamaForCausalLM) -> Vec<(String, Vec<f32>)> {
    m.hf_tensors()
        .into_iter()
        .map(|(name, t)| {
            let v = match t {
                HfTensor::Linear(t) | HfTensor::Matrix(t) => t.try_to_vec_as::<f32>(),
                HfTensor::Vector(t) => t.try_to_vec_as::<f32>(),
            };
            (name, v.expect("f32 tensor"))
        })
        .collect()
}
