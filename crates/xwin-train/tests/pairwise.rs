//! The pairwise (reward-model) objective through the same loop: a scalar head on the final
//! hidden states, loss −log σ(r(chosen) − r(rejected)).

mod common;

use burn::module::Module;
use burn::nn::{Initializer, Linear, LinearConfig};
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Tensor};
use common::{loop_config, tiny_llama, train_in_memory};
use xwin_model::{BatchLayout, LlamaForCausalLM, ModelError};
use xwin_train::{FnObjective, Schedule, Warmup};

#[derive(Module, Debug)]
struct ScalarHead {
    base: LlamaForCausalLM,
    score: Linear,
}

impl ScalarHead {
    /// Reward of each sequence: the head applied to the last token's hidden state.
    fn rewards(&self, ids: &[Vec<u32>], device: &Device) -> Result<Tensor<1>, ModelError> {
        let (b, s) = (ids.len(), ids[0].len());
        let t = self.base.ids_tensor(ids, device)?;
        let hidden = self
            .base
            .hidden_states(t, &BatchLayout::contiguous(b, s, 0), None);
        let h = hidden.dims()[2];
        let last = hidden.slice([0..b, s - 1..s, 0..h]).reshape([b, h]);
        Ok(self.score.forward(last).reshape([b]))
    }
}

struct Pairs {
    chosen: Vec<Vec<u32>>,
    rejected: Vec<Vec<u32>>,
}

fn pairwise_loss(m: &ScalarHead, p: &Pairs, device: &Device) -> Result<Tensor<1>, ModelError> {
    let margin = m.rewards(&p.chosen, device)? - m.rewards(&p.rejected, device)?;
    Ok(log_sigmoid(margin).mean().neg())
}

#[test]
fn scalar_head_learns_preferences_through_the_shared_loop() {
    let device = Device::flex().autodiff();
    device.seed(42); // deterministic init: the test must not depend on luck
    let config = tiny_llama(32, 1, 4);
    let model = ScalarHead {
        base: LlamaForCausalLM::random(&config, &device),
        // HF initialises the score head with normal(0, 0.02): margins start near 0.
        score: LinearConfig::new(32, 1)
            .with_bias(false)
            .with_initializer(Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            })
            .init(&device),
    };
    // Chosen replies end with token 7, rejected ones with token 9; prompts vary.
    let pairs = |offset: u32| Pairs {
        chosen: (0..8)
            .map(|i| vec![1, 3 + (i + offset) % 20, 5, 7])
            .collect(),
        rejected: (0..8)
            .map(|i| vec![1, 3 + (i + offset) % 20, 5, 9])
            .collect(),
    };
    let train_set = [pairs(0), pairs(8)];
    let settings = loop_config(5e-3, Schedule::Cosine, Warmup::Fraction(0.03), 2);
    let mut objective = FnObjective {
        batch: |_, micro: usize| &train_set[micro],
        loss: |m: &ScalarHead, p: &&Pairs| pairwise_loss(m, p, &device),
    };
    let (trained, losses) = train_in_memory(model, &settings, 40, &device, &mut objective);
    assert!(
        (losses[0] - std::f32::consts::LN_2).abs() < 0.2,
        "starts near ln 2: {}",
        losses[0]
    );
    assert!(losses[39] < 0.05, "final loss {}", losses[39]);
    // Held-out prompts: the head ranks every chosen reply above its rejected one.
    let test = pairs(3);
    let eval = Device::flex().autodiff();
    let r_w = trained
        .rewards(&test.chosen, &eval)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    let r_l = trained
        .rewards(&test.rejected, &eval)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert!(
        r_w.iter().zip(&r_l).all(|(w, l)| w > l),
        "{r_w:?} vs {r_l:?}"
    );
}

/// Sequence log-probabilities of the reply tokens (positions ≥ `prompt`).
fn reply_logps(
    m: &LlamaForCausalLM,
    ids: &[Vec<u32>],
    prompt: usize,
    device: &Device,
) -> Result<Tensor<1>, ModelError> {
    let (b, s) = (ids.len(), ids[0].len());
    let t = m.ids_tensor(ids, device)?;
    let logits = m.forward(t.clone(), &BatchLayout::contiguous(b, s, 0), None);
    let mask: Vec<f32> = (0..b * s)
        .map(|i| f32::from(u8::from(i % s >= prompt)))
        .collect();
    let mask = Tensor::<2>::from_data(burn::tensor::TensorData::new(mask, [b, s]), device);
    Ok(xwin_model::masked_logprob_sum(logits, t, mask))
}

/// The third kind of objective: one that needs a frozen reference model (DPO,
/// −log σ(β[(π_w − ref_w) − (π_l − ref_l)])). The reference is a `valid()` copy held by the
/// objective; its log-probs enter as constants. At step 1 policy == reference, so the loss is
/// exactly ln 2; training lowers it while the reference stays unchanged.
#[test]
fn frozen_reference_objective_trains_through_the_shared_loop() {
    let device = Device::flex().autodiff();
    let config = tiny_llama(32, 1, 2);
    let policy = LlamaForCausalLM::random(&config, &device);
    let reference = policy.valid();
    let inner = device.clone().inner();
    let pairs = Pairs {
        chosen: (0..8).map(|i| vec![1, 3 + i, 5, 7, 8]).collect(),
        rejected: (0..8).map(|i| vec![1, 3 + i, 5, 9, 10]).collect(),
    };
    let beta = 0.5;
    let ref_logps = |ids: &[Vec<u32>]| -> Vec<f32> {
        reply_logps(&reference, ids, 3, &inner)
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    let (ref_w, ref_l) = (ref_logps(&pairs.chosen), ref_logps(&pairs.rejected));
    let constant = |v: &[f32]| Tensor::<1>::from_floats(v, &device);
    let mut objective = FnObjective {
        batch: |_, _| &pairs,
        loss: |m: &LlamaForCausalLM, p: &&Pairs| -> Result<Tensor<1>, ModelError> {
            let pi_w = reply_logps(m, &p.chosen, 3, &device)?;
            let pi_l = reply_logps(m, &p.rejected, 3, &device)?;
            let margin = (pi_w - constant(&ref_w)) - (pi_l - constant(&ref_l));
            Ok(log_sigmoid(margin.mul_scalar(beta)).mean().neg())
        },
    };
    let settings = loop_config(5e-3, Schedule::Constant, Warmup::Steps(0), 1);
    let (trained, losses) = train_in_memory(policy, &settings, 30, &device, &mut objective);
    assert!(
        (losses[0] - std::f32::consts::LN_2).abs() < 1e-6,
        "policy == reference at step 1: {}",
        losses[0]
    );
    assert!(losses[29] < 0.2, "final loss {}", losses[29]);
    // The reference did not move; the policy did.
    assert_eq!(ref_logps(&pairs.chosen), ref_w);
    let moved = reply_logps(&trained.valid(), &pairs.chosen, 3, &inner)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert!(
        moved.iter().zip(&ref_w).all(|(a, b)| a > b),
        "{moved:?} vs {ref_w:?}"
    );
}
