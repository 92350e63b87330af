//! The training attention (`causal_attention_tracked`) equals burn's attention, values and
//! gradients, with the causal mask, padding, a KV offset and fully hidden query rows.

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Distribution, Tensor, TensorData};
use xwin_model::attention::causal_attention_tracked;

/// Largest elementwise difference, on the host so that a NaN is reported, not dropped.
fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    let host = |t: Tensor<4>| t.try_into_vec_as::<f32>().unwrap();
    xwin_testkit::max_abs_diff(&host(a), &host(b))
}

fn check(sq: usize, sk: usize, padded: bool) {
    let device = Device::flex().autodiff();
    let (b, h, d) = (2, 3, 8);
    let rand = |s| {
        Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device).require_grad()
    };
    let (q, k, v) = (rand(sq), rand(sk), rand(sk));
    // Row 1 has its first two keys hidden (left padding); its first query row sees nothing
    // but hidden keys when sq == sk, which must not produce NaN.
    let mask = padded.then(|| {
        let data: Vec<bool> = (0..b * h * sq * sk)
            .map(|i| (i / (h * sq * sk)) == 1 && i % sk < 2)
            .collect();
        Tensor::<4, Bool>::from_data(TensorData::new(data, [b, h, sq, sk]), &device)
    });
    let ours = causal_attention_tracked(q.clone(), k.clone(), v.clone(), mask.clone());
    let options = AttentionModuleOptions {
        scale: None,
        softcap: None,
        is_causal: true,
    };
    let theirs = attention(q.clone(), k.clone(), v.clone(), mask.clone(), None, options);
    // Weighted sums so that every output element contributes a distinct gradient.
    let w = Tensor::<4>::random([b, h, sq, d], Distribution::Normal(0.0, 1.0), &device);
    let keep = |t: Tensor<4>| {
        // Compare only query rows that can see a key (burn gives those rows NaN or 0).
        if padded && sq == sk {
            let data: Vec<f32> = (0..b * h * sq * d)
                .map(|i| {
                    if (i / (h * sq * d)) == 1 && (i / d) % sq < 2 {
                        0.0
                    } else {
                        1.0
                    }
                })
                .collect();
            t * Tensor::<4>::from_data(TensorData::new(data, [b, h, sq, d]), &device)
        } else {
            t
        }
    };
    let (ours, theirs) = (keep(ours), keep(theirs));
    assert!(
        !ours.clone().is_nan().any().into_scalar::<bool>(),
        "NaN in ours"
    );
    let diff = max_diff(ours.clone(), theirs.clone());
    assert!(
        diff < 1e-5,
        "values differ by {diff} (sq {sq}, sk {sk}, padded {padded})"
    );
    let g1 = (ours * w.clone()).sum().backward();
    let g2 = (theirs * w).sum().backward();
    for (name, t) in [("q", &q), ("k", &k), ("v", &v)] {
        let (a, b) = (t.grad(&g1).unwrap(), t.grad(&g2).unwrap());
        let diff = max_diff(a, b);
        assert!(
            diff < 1e-4,
            "d{name} differs by {diff} (sq {sq}, sk {sk}, padded {padded})"
        );
    }
}

#[test]
fn equals_burn_attention_with_causal_mask() {
    check(7, 7, false);
}

#[test]
fn equals_burn_attention_with_padding_and_a_kv_offset() {
    check(5, 9, true);
}

#[test]
fn fully_hidden_rows_stay_finite() {
    check(6, 6, true);
}
