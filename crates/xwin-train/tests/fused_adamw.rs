//! The fused CPU AdamW (`FusedAdamW`) equals burn's AdamW bit for bit over several steps, with
//! and without weight decay, on a real model's parameters and gradients; and an optimizer
//! state saved by burn's AdamW continues under the fused one exactly as under burn's.

use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use xwin_model::params::HfTensor;
use xwin_model::{LlamaConfig, LlamaForCausalLM};
use xwin_train::FusedAdamW;

mod common;

fn tiny_config() -> LlamaConfig {
    common::tiny_llama(64, 2, 2)
}

fn grads(model: &LlamaForCausalLM, step: usize, device: &Device) -> GradientsParams {
    let ids: Vec<Vec<u32>> = (0..2)
        .map(|r| {
            (0..12)
                .map(|t| ((r * 5 + t * 7 + step * 3) % 64) as u32)
                .collect()
        })
        .collect();
    let tensor = model.ids_tensor(&ids, device).expect("ids");
    let layout = xwin_model::BatchLayout::contiguous(2, 12, 0);
    let logits = model.forward(tensor, &layout, None);
    // A loss whose gradient differs every step and reaches every parameter; its weights come
    // from a formula, not the device's RNG, which tests running in parallel would share.
    let dims = logits.dims();
    let w: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|i| (((i * 7919 + step * 104_729) % 2003) as f32 - 1001.0) / 500.0)
        .collect();
    let w = Tensor::<3>::from_data(TensorData::new(w, dims), device);
    GradientsParams::from_grads((logits * w).sum().backward(), model)
}

fn params(model: &LlamaForCausalLM) -> Vec<Vec<f32>> {
    model
        .hf_tensors()
        .into_iter()
        .map(|(_, t)| match t {
            HfTensor::Linear(t) | HfTensor::Matrix(t) => t.try_into_vec_as::<f32>().unwrap(),
            HfTensor::Vector(t) => t.try_into_vec_as::<f32>().unwrap(),
        })
        .collect()
}

/// Elements that differ and the largest difference, over every parameter.
fn differences(a: &[Vec<f32>], b: &[Vec<f32>]) -> (usize, f32) {
    let pairs = a.iter().flatten().zip(b.iter().flatten());
    let differing = pairs
        .clone()
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    let max = pairs
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) });
    (differing, max)
}

/// burn's AdamW with the fused one's settings (burn's own defaults are ε 1e-5, decay 1e-4).
fn burn_adamw() -> AdamWConfig {
    AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(0.0)
}

fn run(
    mut optim: ModuleOptimizer,
    mut model: LlamaForCausalLM,
    steps: std::ops::Range<usize>,
    device: &Device,
) -> (LlamaForCausalLM, ModuleOptimizer) {
    for step in steps {
        let g = grads(&model, step, device);
        model = optim.step(1e-2, model, g);
    }
    (model, optim)
}

#[test]
fn equals_burn_adamw_bit_for_bit() {
    let device = Device::flex().autodiff();
    for decay in [0.0, 0.1] {
        let model = LlamaForCausalLM::random(&tiny_config(), &device);
        let burn_optim = burn_adamw().with_weight_decay(decay).init();
        let fused = ModuleOptimizer::from(FusedAdamW::new(0.9, 0.999, 1e-8, decay));
        let (a, _) = run(burn_optim, model.clone(), 0..4, &device);
        let (b, _) = run(fused, model.clone(), 0..4, &device);
        let (pa, pb, p0) = (params(&a), params(&b), params(&model));
        assert_ne!(differences(&pa, &p0).0, 0, "the steps changed nothing");
        let (n, max) = differences(&pa, &pb);
        assert_eq!(
            n, 0,
            "weight decay {decay}: {n} elements differ, by up to {max}"
        );
    }
}

#[test]
fn continues_a_state_saved_by_burn_adamw() {
    let device = Device::flex().autodiff();
    let model = LlamaForCausalLM::random(&tiny_config(), &device);
    let (model, optim) = run(burn_adamw().init(), model, 0..2, &device);
    let burn_again = burn_adamw().init().load_record(optim.to_record());
    let fused = ModuleOptimizer::from(FusedAdamW::new(0.9, 0.999, 1e-8, 0.0))
        .load_record(optim.to_record());
    let (a, _) = run(burn_again, model.clone(), 2..4, &device);
    let (b, _) = run(fused, model, 2..4, &device);
    let (n, max) = differences(&params(&a), &params(&b));
    assert_eq!(n, 0, "{n} elements differ, by up to {max}");
}
