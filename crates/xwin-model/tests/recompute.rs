//! Activation checkpointing (`backward_recomputing_layers`) against one plain backward: the
//! same loss and every parameter's gradient elementwise within 1e-5 of the tensor's largest
//! entry, untied and tied heads, f32 and bf16, with a right-padded row; one pass per layer
//! plus the head's and the embedding's.

mod common;

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Device, Int, Tensor};
use xwin_model::{
    BatchLayout, LlamaForCausalLM, Precision, backward_recomputing_layers, lm_head_nll_sum,
    load_causal_lm,
};

/// Token ids, attention mask and loss mask, `[row][position]`.
type Batch = (Vec<Vec<u32>>, Vec<Vec<bool>>, Vec<Vec<bool>>);

fn batch() -> Batch {
    let ids = vec![
        vec![1, 45, 300, 17, 99, 5, 260, 7, 11, 400],
        vec![1, 80, 22, 500, 13, 14, 90, 2, 0, 0],
    ];
    let attention = vec![vec![true; 10], (0..10).map(|t| t < 8).collect()];
    let mask = vec![
        (0..10).map(|t| t >= 2).collect(),
        (0..10).map(|t| (2..8).contains(&t)).collect(),
    ];
    (ids, attention, mask)
}

/// Every parameter's gradient, in the module's parameter order (labelled by parameter id).
fn in_order(m: &LlamaForCausalLM, grads: &GradientsParams) -> Vec<(String, Vec<f32>)> {
    struct Collect<'a>(&'a GradientsParams, Vec<(String, Vec<f32>)>);
    impl burn::module::ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
            if let Some(g) = self.0.get::<D>(p.id) {
                self.1
                    .push((p.id.to_string(), g.try_to_vec_as::<f32>().unwrap()));
            }
        }
    }
    let mut c = Collect(grads, Vec::new());
    m.visit(&mut c);
    c.1
}

fn check(tied: bool, precision: Precision) {
    let (ids, attention, mask) = batch();
    let m = common::tiny_llama(tied, precision);
    let device = Device::flex().autodiff();
    let layout = BatchLayout::from_attention_mask(&attention).unwrap();
    let ids_t: Tensor<2, Int> = m.ids_tensor(&ids, &device).unwrap();
    let divisor = 7.0;

    let hidden = m.hidden_states(ids_t.clone(), &layout, None);
    let plain = lm_head_nll_sum(&m, hidden, &ids, &mask).unwrap();
    let plain_loss = plain.clone().into_scalar::<f32>();
    let plain_grads = GradientsParams::from_grads(plain.div_scalar(divisor).backward(), &m);

    let r = backward_recomputing_layers(&m.model, ids_t, &layout, divisor, |h| {
        Ok((lm_head_nll_sum(&m, h, &ids, &mask)?, ()))
    })
    .unwrap();
    assert_eq!(r.passes.len(), m.config().num_hidden_layers + 2);
    let loss = r.loss.into_scalar::<f32>();
    assert!(
        (loss - plain_loss).abs() <= 1e-5 * plain_loss.abs(),
        "{loss} vs {plain_loss}"
    );
    let mut acc = burn::optim::GradientsAccumulator::<LlamaForCausalLM>::new();
    for pass in r.passes {
        acc.accumulate(&m, GradientsParams::from_grads(pass, &m));
    }
    let ours = in_order(&m, &acc.grads());
    let theirs = in_order(&m, &plain_grads);
    assert_eq!(ours.len(), theirs.len(), "every parameter gets a gradient");
    assert_eq!(ours.len(), m.hf_tensors().len());
    for ((n, a), (_, b)) in ours.iter().zip(&theirs) {
        let scale = b.iter().fold(0.0f32, |s, x| s.max(x.abs()));
        let diff = common::max_abs_diff(a, b);
        assert!(
            scale > 0.0 && diff <= 1e-5 * scale,
            "tied {tied} {precision} param {n}: {diff} vs {scale}"
        );
    }
}

#[test]
fn checkpointed_gradients_equal_one_backward() {
    check(false, Precision::F32);
}

#[test]
fn checkpointed_gradients_equal_one_backward_tied() {
    check(true, Precision::F32);
}

#[test]
fn checkpointed_gradients_equal_one_backward_bf16() {
    check(false, Precision::Bf16);
}

/// Without autodiff there is nothing to recompute for: refused by name.
#[test]
fn refused_without_autodiff() {
    let device = Device::flex();
    let m = load_causal_lm(common::fixtures().join("tiny-llama"), &device).unwrap();
    let (ids, attention, _) = batch();
    let t = m.ids_tensor(&ids, &device).unwrap();
    let layout = BatchLayout::from_attention_mask(&attention).unwrap();
    let err = backward_recomputing_layers(&m.model, t, &layout, 1.0, |h| Ok((h.sum(), ())))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("autodiff"), "{err}");
}
