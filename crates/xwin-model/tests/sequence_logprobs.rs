//! Fused per-sequence log-probability sums equal `transformers`' (the fixture's
//! `completion_logps`: tokens 6..11 given 0..5), alone and inside a right-padded batch.

mod common;

use burn::tensor::Device;
use common::*;
use xwin_model::{BatchLayout, load_causal_lm, sequence_logprobs};

#[test]
fn completion_logps_equal_transformers_padded_or_not() {
    let device = Device::flex();
    let dir = fixtures().join("tiny-llama");
    let model = load_causal_lm(&dir, &device).unwrap();
    let exp = expected(&dir);
    let ids = ids(&exp["input_ids"]);
    let want: Vec<f64> = exp["completion_logps"]["sum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let per_token: Vec<Vec<f64>> = exp["completion_logps"]["per_token"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect();
    let mask: Vec<Vec<bool>> = ids
        .iter()
        .map(|r| (0..r.len()).map(|t| t >= 6).collect())
        .collect();
    let layout = BatchLayout::contiguous(2, 12, 0);
    let hidden = model.hidden_states(model.ids_tensor(&ids, &device).unwrap(), &layout, None);
    let got = sequence_logprobs(&model, hidden, &ids, &mask).unwrap();
    assert_eq!(got.counts, [6, 6]);
    for (g, w) in got.sums.iter().zip(&want) {
        assert!((g - w).abs() < 1e-3, "{g} vs {w}");
        println!(
            "completion logp {g:.6} vs transformers {w:.6}: |Δ| {:.2e}",
            (g - w).abs()
        );
    }

    // Row 1 cut to 10 tokens and right-padded: its sum covers tokens 6..9 only.
    let mut padded = ids.clone();
    padded[1][10] = 0;
    padded[1][11] = 0;
    let attention: Vec<Vec<bool>> = vec![vec![true; 12], (0..12).map(|t| t < 10).collect()];
    let mask = vec![
        mask[0].clone(),
        (0..12).map(|t| (6..10).contains(&t)).collect(),
    ];
    let layout = BatchLayout::from_attention_mask(&attention).unwrap();
    let hidden = model.hidden_states(model.ids_tensor(&padded, &device).unwrap(), &layout, None);
    let got = sequence_logprobs(&model, hidden, &padded, &mask).unwrap();
    let cut: f64 = per_token[1][..4].iter().sum();
    assert!((got.sums[0] - want[0]).abs() < 1e-3 && (got.sums[1] - cut).abs() < 1e-3);
    assert_eq!(got.counts, [6, 4]);
}
