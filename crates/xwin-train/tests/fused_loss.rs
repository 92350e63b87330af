//! The fused LM-head loss gives the composite path's loss and every parameter's gradient,
//! for a separate head and for a head tied to the embedding, with ragged masks and padding.

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor};
use std::path::PathBuf;
use xwin_data::Batch;
use xwin_model::{LlamaForCausalLM, load_causal_lm};
use xwin_testkit::reference::sft_loss_composite;
use xwin_train::sft_loss;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Three rows of different lengths (right-padded), replies at different offsets.
fn batch(vocab: u32) -> Batch {
    let lens = [12usize, 9, 5];
    let ids = lens
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            (0..12)
                .map(|t| {
                    if t < n {
                        1 + (r as u32 * 37 + t as u32 * 11) % (vocab - 1)
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect();
    Batch {
        attention: lens
            .iter()
            .map(|&n| (0..12).map(|t| t < n).collect())
            .collect(),
        loss_mask: lens
            .iter()
            .enumerate()
            .map(|(r, &n)| (0..12).map(|t| t >= 2 + r && t < n).collect())
            .collect(),
        ids,
    }
}

/// Every gradient as a flat vector, in visiting order.
fn flat_grads(model: &LlamaForCausalLM, grads: &GradientsParams) -> Vec<Vec<f32>> {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        out: Vec<Vec<f32>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let g = self
                .grads
                .get::<D>(param.id)
                .expect("every parameter has a gradient");
            self.out.push(g.into_data().try_into_vec::<f32>().unwrap());
        }
    }
    let mut c = Collect {
        grads,
        out: Vec::new(),
    };
    model.visit(&mut c);
    c.out
}

fn compare(dir: &str) {
    let device = Device::flex().autodiff();
    let model = load_causal_lm(fixtures().join(dir), &device).unwrap();
    let b = batch(model.config().vocab_size as u32);
    let fused = sft_loss(&model, &b, &device).unwrap();
    let composite = sft_loss_composite(&model, &b, &device).unwrap();
    let (lf, lc) = (
        fused.clone().into_scalar::<f32>(),
        composite.clone().into_scalar::<f32>(),
    );
    assert!((lf - lc).abs() < 1e-5, "{dir}: loss {lf} vs {lc}");
    let gf = flat_grads(
        &model,
        &GradientsParams::from_grads(fused.backward(), &model),
    );
    let gc = flat_grads(
        &model,
        &GradientsParams::from_grads(composite.backward(), &model),
    );
    assert_eq!(gf.len(), gc.len());
    let mut worst = 0.0f32;
    for (a, b) in gf.iter().zip(&gc) {
        for (x, y) in a.iter().zip(b) {
            worst = xwin_testkit::nan_max(worst, (x - y).abs());
        }
    }
    assert!(worst < 1e-5, "{dir}: max |Δgrad| {worst}");
    // And without autodiff the fused path returns the same value.
    let plain = Device::flex();
    let frozen = load_causal_lm(fixtures().join(dir), &plain).unwrap();
    let v = sft_loss(&frozen, &b, &plain).unwrap().into_scalar::<f32>();
    assert!((v - lc).abs() < 1e-5, "{dir}: inference {v} vs {lc}");
}

#[test]
fn fused_equals_composite_with_a_separate_head() {
    compare("tiny-llama");
}

#[test]
fn fused_equals_composite_with_a_tied_head() {
    compare("gen/tied-mha-theta500k");
}

/// Per-row log-probability sums (DPO's quantity) through the fused head equal the composite
/// path's, and a loss attached afterwards from the sums and its derivatives gives every
/// parameter the composite path's gradient.
fn compare_sequence_logprobs(dir: &str) {
    let device = Device::flex().autodiff();
    let model = load_causal_lm(fixtures().join(dir), &device).unwrap();
    let b = batch(model.config().vocab_size as u32);
    // A weighted sum with weights of both signs, as DPO pushes chosen up and rejected down.
    let weights = [0.7f32, -1.3, 0.4];
    let layout = xwin_model::BatchLayout::from_attention_mask(&b.attention).unwrap();
    let ids = model.ids_tensor(&b.ids, &device).unwrap();
    let logits = model.forward(ids.clone(), &layout, None);
    let mask: Vec<f32> = b
        .loss_mask
        .iter()
        .flatten()
        .map(|&m| f32::from(u8::from(m)))
        .collect();
    let mask = Tensor::<2>::from_data(burn::tensor::TensorData::new(mask, [3, 12]), &device);
    let sums = xwin_model::masked_logprob_sum(logits, ids, mask);
    let composite = (sums.clone() * Tensor::<1>::from_floats(weights, &device)).sum();
    let composite_sums = sums.into_data().try_into_vec::<f32>().unwrap();

    let hidden = model.hidden_states(model.ids_tensor(&b.ids, &device).unwrap(), &layout, None);
    let fused = xwin_model::sequence_logprobs(&model, hidden, &b.ids, &b.loss_mask).unwrap();
    for (r, (a, c)) in fused.sums.iter().zip(&composite_sums).enumerate() {
        assert!((*a as f32 - c).abs() < 1e-4, "{dir}: row {r}: {a} vs {c}");
    }
    let value: f64 = fused
        .sums
        .iter()
        .zip(weights)
        .map(|(s, w)| s * f64::from(w))
        .sum();
    let attached = fused.attach_loss(value as f32, &weights).unwrap();
    let (lf, lc) = (
        attached.clone().into_scalar::<f32>(),
        composite.clone().into_scalar::<f32>(),
    );
    assert!((lf - lc).abs() < 1e-4, "{dir}: loss {lf} vs {lc}");
    let gf = flat_grads(
        &model,
        &GradientsParams::from_grads(attached.backward(), &model),
    );
    let gc = flat_grads(
        &model,
        &GradientsParams::from_grads(composite.backward(), &model),
    );
    let mut worst = 0.0f32;
    for (a, b) in gf.iter().zip(&gc) {
        for (x, y) in a.iter().zip(b) {
            worst = xwin_testkit::nan_max(worst, (x - y).abs());
        }
    }
    assert!(worst < 1e-5, "{dir}: max |Δgrad| {worst}");
}

#[test]
fn sequence_logprobs_equal_composite_with_a_separate_head() {
    compare_sequence_logprobs("tiny-llama");
}

#[test]
fn sequence_logprobs_equal_composite_with_a_tied_head() {
    compare_sequence_logprobs("gen/tied-mha-theta500k");
}
