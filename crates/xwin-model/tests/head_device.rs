//! The device-resident LM head (tensor ops in row chunks, what a GPU runs) against the host
//! path (logits read to the host, one pass per row; itself tested against transformers): the
//! SFT loss and DPO's per-sequence log-probabilities, values and every gradient, for chunks of
//! 1, 5 and all rows, tied and untied heads, f32 and bf16.

mod common;

use burn::tensor::{Device, Int, Tensor};
use xwin_model::{
    BatchLayout, HeadPath, LlamaForCausalLM, Precision, lm_head_nll, load_causal_lm,
    sequence_logprobs_on,
};

/// Token ids, attention mask and loss mask, `[row][position]`.
type Batch = (Vec<Vec<u32>>, Vec<Vec<bool>>, Vec<Vec<bool>>);

/// Two rows, the second right-padded, targets on most positions.
fn batch() -> Batch {
    let ids = vec![
        vec![1, 45, 300, 17, 99, 5, 260, 7, 11, 400, 3, 2],
        vec![1, 80, 22, 500, 13, 14, 90, 2, 0, 0, 0, 0],
    ];
    let attention: Vec<Vec<bool>> = ids
        .iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(t, _)| t < 8 || r[8] != 0)
                .collect()
        })
        .collect();
    let mask = vec![
        (0..12).map(|t| t >= 3).collect(),
        (0..12).map(|t| (2..8).contains(&t)).collect(),
    ];
    (ids, attention, mask)
}

fn hidden(m: &LlamaForCausalLM, ids: &[Vec<u32>], attention: &[Vec<bool>]) -> Tensor<3> {
    let device = Device::flex().autodiff();
    let t: Tensor<2, Int> = m.ids_tensor(ids, &device).unwrap();
    m.hidden_states(
        t,
        &BatchLayout::from_attention_mask(attention).unwrap(),
        None,
    )
}

/// Elementwise within `rel` of each tensor's largest entry (NaN fails).
fn assert_grads_close(
    ours: &[(String, Vec<f32>)],
    host: &[(String, Vec<f32>)],
    rel: f32,
    what: &str,
) {
    for ((n, a), (_, b)) in ours.iter().zip(host) {
        let scale = b.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let diff = common::max_abs_diff(a, b);
        assert!(diff <= rel * scale, "{what} {n}: {diff} vs largest {scale}");
    }
}

const PATHS: [HeadPath; 3] = [
    HeadPath::Device { rows_per_chunk: 1 },
    HeadPath::Device { rows_per_chunk: 5 },
    HeadPath::Device {
        rows_per_chunk: 1000,
    },
];

fn sft(tied: bool, precision: Precision, path: HeadPath) -> (f32, Vec<(String, Vec<f32>)>) {
    let (ids, attention, mask) = batch();
    let m = common::tiny_llama(tied, precision);
    let loss = lm_head_nll(&m, hidden(&m, &ids, &attention), &ids, &mask, true, path).unwrap();
    let value = loss.clone().into_scalar::<f32>();
    (value, common::grads_by_name(&m, &loss.backward()))
}

#[test]
fn device_sft_loss_equals_the_host_path() {
    for tied in [false, true] {
        for (precision, rel) in [(Precision::F32, 1e-5), (Precision::Bf16, 2e-2)] {
            let (host_loss, host) = sft(tied, precision, HeadPath::Host);
            for path in PATHS {
                let what = format!("tied {tied}, {precision}, {path:?}");
                let (loss, ours) = sft(tied, precision, path);
                assert!(
                    (loss - host_loss).abs() <= rel * host_loss.abs(),
                    "{what}: loss {loss} vs host {host_loss}"
                );
                assert_grads_close(&ours, &host, rel, &what);
            }
        }
    }
}

/// DPO's sums and the gradients of a loss built from them (weights −0.7 and 1.3 per row).
fn dpo(tied: bool, path: HeadPath) -> (Vec<f64>, Vec<(String, Vec<f32>)>) {
    let (ids, attention, mask) = batch();
    let m = common::tiny_llama(tied, Precision::F32);
    let lp = sequence_logprobs_on(&m, hidden(&m, &ids, &attention), &ids, &mask, path).unwrap();
    let sums = lp.sums.clone();
    let loss = lp.attach_loss(0.5, &[-0.7, 1.3]).unwrap();
    assert_eq!(loss.clone().into_scalar::<f32>(), 0.5);
    (sums, common::grads_by_name(&m, &loss.backward()))
}

#[test]
fn device_sequence_logprobs_equal_the_host_path() {
    for tied in [false, true] {
        let (host_sums, host) = dpo(tied, HeadPath::Host);
        for path in PATHS {
            let what = format!("tied {tied}, {path:?}");
            let (sums, ours) = dpo(tied, path);
            for (a, b) in sums.iter().zip(&host_sums) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs(),
                    "{what}: sum {a} vs host {b}"
                );
            }
            assert_grads_close(&ours, &host, 1e-5, &what);
        }
    }
}

/// Without autodiff the device path gives the value alone, equal to the host path's.
#[test]
fn untracked_device_loss_is_the_value() {
    let device = Device::flex();
    let m = load_causal_lm(common::fixtures().join("tiny-llama"), &device).unwrap();
    let (ids, attention, mask) = batch();
    let t: Tensor<2, Int> = m.ids_tensor(&ids, &device).unwrap();
    let h = m.hidden_states(
        t,
        &BatchLayout::from_attention_mask(&attention).unwrap(),
        None,
    );
    let host = lm_head_nll(&m, h.clone(), &ids, &mask, false, HeadPath::Host).unwrap();
    let dev = lm_head_nll(&m, h, &ids, &mask, false, PATHS[1]).unwrap();
    let (a, b) = (dev.into_scalar::<f32>(), host.into_scalar::<f32>());
    assert!((a - b).abs() <= 1e-5 * b.abs(), "{a} vs {b}");
}
