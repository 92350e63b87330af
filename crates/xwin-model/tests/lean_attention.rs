//! The lean attention that trains off the CPU (`lean_attention`: probabilities recomputed in
//! the backward pass, query rows in chunks) equals the composite it replaced
//! (`attention_with_bias`), values and the gradients of q, k and v, elementwise: with the
//! causal mask, left padding (a first query row seeing only hidden keys gives 0, not NaN), a
//! KV-cache offset, a batch-wide or a per-row bias, and chunks of 1, 3 and all rows. Run on the
//! CPU backend under autodiff: the op is written in the backend's own tensor ops, the same code
//! every backend runs. Tolerance 2e-6 absolute in f32 (the two sum in different orders); in
//! bf16 and f16 the forward equals the composite's bit for bit (one chunk: the same ops) and
//! the gradients stay within a tenth of the composite's own distance from f32.

use burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};
use xwin_model::Precision;
use xwin_model::attention::{attention_bias, attention_with_bias, attention_with_bias_in};
use xwin_model::lean_attention::{lean_attention, lean_attention_in, lean_attention_in_chunks};

const TOLERANCE: f32 = 2e-6;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("f32")
}

fn assert_close(what: &str, a: Tensor<4>, b: Tensor<4>) {
    let (a, b) = (host(a), host(b));
    let diff = xwin_testkit::max_abs_diff(&a, &b);
    assert!(diff <= TOLERANCE, "{what}: max |lean − composite| {diff:e}");
}

/// Bias `[batch or 1, 1, sq, sk]`: causal, plus hidden keys 0 and 1 of batch row 1 when padded.
fn bias(b: usize, sq: usize, sk: usize, padded: bool, device: &Device) -> Tensor<4> {
    let padding = padded.then(|| {
        let data: Vec<bool> = (0..b * sq * sk)
            .map(|i| i / (sq * sk) == 1 && i % sk < 2)
            .collect();
        Tensor::<4, Bool>::from_data(TensorData::new(data, [b, 1, sq, sk]), device)
    });
    attention_bias(sq, sk, padding, device)
}

fn check(sq: usize, sk: usize, padded: bool, rows_per_chunk: Option<usize>) {
    let device = Device::flex().autodiff();
    let (b, h, d) = (2, 3, 8);
    let leaf = |s: usize| {
        Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device).require_grad()
    };
    let (q, k, v) = (leaf(sq), leaf(sk), leaf(sk));
    let bias = bias(b, sq, sk, padded, &device);
    let composite = attention_with_bias(q.clone(), k.clone(), v.clone(), bias.clone());
    let lean = match rows_per_chunk {
        Some(rows) => {
            lean_attention_in_chunks(q.clone(), k.clone(), v.clone(), bias, rows, Precision::F32)
        }
        None => lean_attention(q.clone(), k.clone(), v.clone(), bias),
    };
    let what = format!("sq {sq}, sk {sk}, padded {padded}, chunk {rows_per_chunk:?}");
    assert!(
        host(lean.clone()).iter().all(|x| x.is_finite()),
        "{what}: non-finite output"
    );
    assert_close(&format!("{what}: output"), lean.clone(), composite.clone());
    // A weighted sum, so that every output element contributes a distinct gradient.
    let w = Tensor::<4>::random([b, h, sq, d], Distribution::Normal(0.0, 1.0), &device);
    let grads_lean = (lean * w.clone()).sum().backward();
    let grads_composite = (composite * w).sum().backward();
    for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
        let ours = t.grad(&grads_lean).expect("lean gradient");
        let theirs = t.grad(&grads_composite).expect("composite gradient");
        assert_close(&format!("{what}: d{name}"), ours, theirs);
    }
}

#[test]
fn equals_the_composite_in_chunks_and_whole() {
    for rows in [Some(1), Some(3), None] {
        check(7, 7, false, rows);
        check(7, 7, true, rows);
    }
}

#[test]
fn equals_the_composite_with_a_kv_offset() {
    for rows in [Some(2), None] {
        check(3, 9, true, rows);
        check(1, 9, false, rows);
    }
}

/// A padding query row of a left-padded batch sees only hidden keys: the composite gives 0
/// there, and so must the lean op (its log-sum-exp is finite, its recomputed probabilities 0).
#[test]
fn a_row_that_sees_no_key_gives_zero() {
    let device = Device::flex().autodiff();
    let (b, h, s, d) = (2, 1, 4, 4);
    let t = || Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device);
    let bias = bias(b, s, s, true, &device);
    let out = lean_attention_in_chunks(t(), t(), t(), bias, 1, Precision::F32);
    let out = host(out);
    // Batch row 1, query 0 sees key 0 only, which is hidden.
    let row = &out[(h * s * d)..(h * s * d + d)];
    assert!(row.iter().all(|&x| x == 0.0), "{row:?}");
}

/// Gradients of `Σ w ∘ attention(q, k, v)` for q, k and v.
fn grads(out: Tensor<4>, w: &Tensor<4>, leaves: [&Tensor<4>; 3]) -> Vec<Vec<f32>> {
    let g = (out * w.clone()).sum().backward();
    leaves
        .iter()
        .map(|t| host(t.grad(&g).expect("gradient")))
        .collect()
}

/// In half precision the lean op runs the composite's products on half operands: the same
/// forward, bit for bit, and gradients whose distance from the composite's is under a tenth of
/// the composite's own distance from f32 (what half precision costs).
#[test]
fn half_precision_equals_the_composite() {
    let device = Device::flex().autodiff();
    let (b, h, s, d) = (2, 3, 6, 8);
    let leaf = || {
        Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device).require_grad()
    };
    let (q, k, v) = (leaf(), leaf(), leaf());
    let bias = bias(b, s, s, true, &device);
    let w = Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device);
    let args = || (q.clone(), k.clone(), v.clone(), bias.clone());
    let (q0, k0, v0, b0) = args();
    let f32_grads = grads(attention_with_bias(q0, k0, v0, b0), &w, [&q, &k, &v]);
    for precision in [Precision::Bf16, Precision::F16] {
        let (q1, k1, v1, b1) = args();
        let composite = attention_with_bias_in(q1, k1, v1, b1, precision);
        let (q2, k2, v2, b2) = args();
        let lean = lean_attention_in(q2, k2, v2, b2, precision);
        let (ours, theirs) = (host(lean.clone()), host(composite.clone()));
        let same = ours
            .iter()
            .zip(&theirs)
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{precision}: forward differs from the composite's");
        let ours = grads(lean, &w, [&q, &k, &v]);
        let theirs = grads(composite, &w, [&q, &k, &v]);
        for (i, name) in ["q", "k", "v"].iter().enumerate() {
            let diff = xwin_testkit::max_abs_diff(&ours[i], &theirs[i]);
            let drift = xwin_testkit::max_abs_diff(&theirs[i], &f32_grads[i]);
            eprintln!(
                "{precision} d{name}: |lean − composite| {diff:e}, composite's drift from f32 {drift:e}"
            );
            assert!(
                drift > 0.0,
                "{precision} d{name}: no rounding to half at all?"
            );
            assert!(
                diff <= 0.1 * drift,
                "{precision} d{name}: {diff:e} vs drift {drift:e}"
            );
        }
    }
}
