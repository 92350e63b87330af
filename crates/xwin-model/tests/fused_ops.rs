//! The fused CPU operations equal the composites they replace, values and gradients: attention
//! (`cpu_ops::fused_causal_attention` against `causal_attention_tracked`, itself tested equal to
//! burn's) over several query blocks, grouped key/value heads, a KV offset and padding; SwiGLU
//! (`cpu_ops::silu_mul` against `silu(gate) * up`).

use burn::tensor::activation::silu;
use burn::tensor::{DType, Device, Distribution, Tensor, TensorData};
use xwin_model::attention::causal_attention_tracked;
use xwin_model::cpu_ops::{fused_causal_attention, fused_ops_apply, silu_mul};
use xwin_model::layout::BatchLayout;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

/// Repeats each key/value head for the query heads that share it (what the composite needs).
fn repeat(t: Tensor<4>, n: usize) -> Tensor<4> {
    let [b, kvh, s, d] = t.dims();
    t.unsqueeze_dim::<5>(2)
        .expand([b, kvh, n, s, d])
        .reshape([b, kvh * n, s, d])
}

/// `key_valid` rows: `pads[r]` leading padding keys in batch row r (left padding) and
/// `tail[r]` trailing ones (right padding).
fn check(heads: usize, kv_heads: usize, sq: usize, sk: usize, pads: &[(usize, usize)]) {
    let device = Device::flex().autodiff();
    assert!(fused_ops_apply(&device, DType::F32));
    let (b, d) = (pads.len(), 16);
    let rand = |h, s| {
        Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device).require_grad()
    };
    let (q, k, v) = (rand(heads, sq), rand(kv_heads, sk), rand(kv_heads, sk));
    let valid: Vec<Vec<bool>> = pads
        .iter()
        .map(|&(left, right)| (0..sk).map(|j| j >= left && j < sk - right).collect())
        .collect();
    let padded = valid.iter().flatten().any(|v| !v);
    let positions = vec![(sk - sq..sk).collect::<Vec<_>>(); b];
    let layout = BatchLayout::new(positions, padded.then(|| valid.clone())).unwrap();
    let flat: Vec<f32> = valid
        .iter()
        .flatten()
        .map(|&x| f32::from(u8::from(x)))
        .collect();
    let key_valid = Tensor::<2>::from_data(TensorData::new(flat, [b, sk]), &device);

    let fused = fused_causal_attention(q.clone(), k.clone(), v.clone(), key_valid);
    let n = heads / kv_heads;
    let mask = layout.padding_mask(heads, &device);
    let composite =
        causal_attention_tracked(q.clone(), repeat(k.clone(), n), repeat(v.clone(), n), mask);
    let case = format!("heads {heads}/{kv_heads}, sq {sq}, sk {sk}, pads {pads:?}");
    let diff = xwin_testkit::max_abs_diff(&host(fused.clone()), &host(composite.clone()));
    assert!(diff < 1e-5, "values differ by {diff} ({case})");

    let w = Tensor::<4>::random([b, heads, sq, d], Distribution::Normal(0.0, 1.0), &device);
    let g1 = (fused * w.clone()).sum().backward();
    let g2 = (composite * w).sum().backward();
    for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
        let (a, c) = (host(t.grad(&g1).unwrap()), host(t.grad(&g2).unwrap()));
        let diff = xwin_testkit::max_abs_diff(&a, &c);
        assert!(diff < 1e-4, "d{name} differs by {diff} ({case})");
        assert!(a.iter().any(|x| *x != 0.0), "d{name} is all zero ({case})");
    }
}

#[test]
fn equals_composite_over_several_query_blocks() {
    check(4, 4, 150, 150, &[(0, 0), (0, 0)]);
}

#[test]
fn equals_composite_with_grouped_kv_heads_and_an_offset() {
    check(6, 2, 70, 93, &[(0, 0), (0, 0)]);
}

#[test]
fn equals_composite_with_left_and_right_padding() {
    check(4, 2, 130, 130, &[(0, 17), (9, 0), (3, 5)]);
}

#[test]
fn equals_composite_for_one_query_over_a_cache() {
    check(4, 1, 1, 40, &[(5, 0), (0, 0)]);
}

/// Without autodiff (inference) the forward alone runs and equals the composite.
#[test]
fn untracked_forward_equals_composite() {
    let device = Device::flex();
    let (b, h, s, d) = (2, 3, 77, 8);
    let rand = || Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device);
    let (q, k, v) = (rand(), rand(), rand());
    let ones = Tensor::<2>::ones([b, s], &device);
    let fused = fused_causal_attention(q.clone(), k.clone(), v.clone(), ones);
    let composite = causal_attention_tracked(q, k, v, None);
    let diff = xwin_testkit::max_abs_diff(&host(fused), &host(composite));
    assert!(diff < 1e-5, "values differ by {diff}");
}

/// SwiGLU under autodiff: values and both gradients equal burn's composite, including large
/// gate values (where the sigmoid saturates) and a non-contiguous operand.
#[test]
fn swiglu_equals_composite() {
    let device = Device::flex().autodiff();
    let shape = [3, 37, 50];
    let gate = (Tensor::<3>::random(shape, Distribution::Normal(0.0, 4.0), &device)).require_grad();
    let up =
        Tensor::<3>::random([3, 50, 37], Distribution::Normal(0.0, 1.0), &device).require_grad();
    // Two views, one per graph: burn consumes a graph's shared nodes at the first backward.
    let up_view = || up.clone().swap_dims(1, 2);
    let fused = silu_mul(gate.clone(), up_view());
    let composite = silu(gate.clone()) * up_view();
    let diff = xwin_testkit::max_abs_diff(&host(fused.clone()), &host(composite.clone()));
    assert!(diff < 1e-5, "values differ by {diff}");
    let w = Tensor::<3>::random(shape, Distribution::Normal(0.0, 1.0), &device);
    let g1 = (fused * w.clone()).sum().backward();
    let g2 = (composite * w).sum().backward();
    for (name, t) in [("gate", &gate), ("up", &up)] {
        let (a, c) = (host(t.grad(&g1).unwrap()), host(t.grad(&g2).unwrap()));
        let diff = xwin_testkit::max_abs_diff(&a, &c);
        assert!(diff < 1e-5, "d{name} differs by {diff}");
    }
}

/// Right padding does not change a real row by a single bit (DPO compares policy and reference
/// log-probabilities computed in differently padded batches, and expects exact equality).
#[test]
fn right_padding_leaves_real_rows_bit_for_bit_unchanged() {
    let device = Device::flex();
    let (h, d, real) = (2, 8, 37);
    let full = || Tensor::<4>::random([1, h, 70, d], Distribution::Normal(0.0, 1.0), &device);
    let (q, k, v) = (full(), full(), full());
    let alone = {
        let cut = |t: &Tensor<4>| t.clone().narrow(2, 0, real);
        fused_causal_attention(cut(&q), cut(&k), cut(&v), Tensor::ones([1, real], &device))
    };
    for padded_len in [40, 64, 65, 70] {
        let cut = |t: &Tensor<4>| t.clone().narrow(2, 0, padded_len);
        let valid: Vec<f32> = (0..padded_len)
            .map(|j| if j < real { 1.0 } else { 0.0 })
            .collect();
        let valid = Tensor::<2>::from_data(TensorData::new(valid, [1, padded_len]), &device);
        let out = fused_causal_attention(cut(&q), cut(&k), cut(&v), valid).narrow(2, 0, real);
        let (a, b) = (host(alone.clone()), host(out));
        let same = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "padded to {padded_len}: real rows changed");
    }
}

/// The split linear op under autodiff: values and both gradients equal burn's `Linear`, for a
/// product large enough to be split by rows, one split by columns (the weight gradient's small
/// output), and a small one run whole; a non-contiguous input too.
#[test]
fn linear_equals_burn_linear() {
    use burn::module::Param;
    use burn::nn::Linear;
    let device = Device::flex().autodiff();
    for (rows, d_in, d_out) in [(3 * 170, 96, 200), (7, 300, 1100), (5, 4, 3)] {
        let weight = Tensor::<2>::random([d_in, d_out], Distribution::Normal(0.0, 0.1), &device);
        let layer = Linear {
            weight: Param::from_tensor(weight),
            bias: None,
        };
        let x = Tensor::<3>::random(
            [3, d_in, rows / 3 + 1],
            Distribution::Normal(0.0, 1.0),
            &device,
        )
        .require_grad();
        let view = || x.clone().swap_dims(1, 2);
        let ours = xwin_model::cpu_ops::project(&layer, view(), xwin_model::Precision::F32);
        let theirs = layer.forward(view());
        let case = format!("{rows}x{d_in}x{d_out}");
        let diff = xwin_testkit::max_abs_diff(&host(ours.clone()), &host(theirs.clone()));
        assert!(diff < 1e-4, "{case}: values differ by {diff}");
        let w = Tensor::<3>::random(ours.dims(), Distribution::Normal(0.0, 1.0), &device);
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        let (a, b) = (host(x.grad(&g1).unwrap()), host(x.grad(&g2).unwrap()));
        let diff = xwin_testkit::max_abs_diff(&a, &b);
        assert!(diff < 1e-4, "{case}: dx differs by {diff}");
        let (a, b) = (
            host(layer.weight.grad(&g1).unwrap()),
            host(layer.weight.grad(&g2).unwrap()),
        );
        let diff = xwin_testkit::max_abs_diff(&a, &b);
        assert!(diff < 1e-3, "{case}: dW differs by {diff}");
    }
}

/// Head split with and without the rotary embedding: values and the input's gradient equal
/// `rope.apply(x.reshape(..).swap_dims(1, 2), tables)` and the plain split, at positions with
/// an offset (as after a cache) and two batch rows at different positions.
#[test]
fn split_heads_equals_reshape_and_rope() {
    use xwin_model::cpu_ops::split_heads;
    use xwin_model::rope::RotaryEmbeddingConfig;
    let device = Device::flex().autodiff();
    let (b, s, heads, d) = (2, 9, 3, 8);
    let rope = RotaryEmbeddingConfig {
        head_dim: d,
        theta: 10_000.0,
        scaling: xwin_model::config::RopeScaling::Default,
    }
    .init();
    let positions = vec![(4..4 + s).collect::<Vec<_>>(), (0..s).collect()];
    let tables = rope.tables(&positions, &device);
    let x = Tensor::<3>::random([b, s, heads * d], Distribution::Normal(0.0, 1.0), &device)
        .require_grad();
    for rotate in [true, false] {
        let ours = split_heads(x.clone(), heads, rotate.then(|| tables.parts()));
        let split = x.clone().reshape([b, s, heads, d]).swap_dims(1, 2);
        let theirs = if rotate {
            rope.apply(split, &tables)
        } else {
            split
        };
        let diff = xwin_testkit::max_abs_diff(&host(ours.clone()), &host(theirs.clone()));
        assert!(diff < 1e-6, "rotate {rotate}: values differ by {diff}");
        let w = Tensor::<4>::random([b, heads, s, d], Distribution::Normal(0.0, 1.0), &device);
        let g1 = (ours * w.clone()).sum().backward();
        let g2 = (theirs * w).sum().backward();
        let diff =
            xwin_testkit::max_abs_diff(&host(x.grad(&g1).unwrap()), &host(x.grad(&g2).unwrap()));
        assert!(diff < 1e-5, "rotate {rotate}: dx differs by {diff}");
    }
}
