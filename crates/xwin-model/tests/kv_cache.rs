//! The KV cache's buffers (written in place, read as views of their filled prefix) against
//! the full forward, on every causal fixture (GQA, MHA, tied, Llama-3 RoPE): a cache for rows of
//! any length, one capped at the rows' length and one whose rows are dropped mid-way all give the
//! logits a full forward gives, in f32 (the fused CPU kernel reading the buffers in place) and
//! in bf16 (the composite reading them as views).

mod common;

use burn::tensor::{Device, Int, Tensor, TensorData};
use common::causal_fixtures;
use std::path::Path;
use xwin_model::{BatchLayout, KvCache, LlamaForCausalLM, Precision, load_causal_lm};
use xwin_testkit::max_abs_diff;

const PREFILL: usize = 5;
const LEN: usize = 40;

fn model(dir: &Path, precision: Precision) -> LlamaForCausalLM {
    load_causal_lm(dir, &Device::flex())
        .unwrap()
        .with_precision(precision)
}

/// Three rows of `LEN` token ids, all different.
fn ids(model: &LlamaForCausalLM) -> Vec<Vec<u32>> {
    let vocab = model.config().vocab_size;
    (0..3)
        .map(|r| {
            (0..LEN)
                .map(|t| ((t * 37 + r * 101 + 7) % vocab) as u32)
                .collect()
        })
        .collect()
}

/// Logits `[row][position][vocab]` of a full forward over `ids`.
fn full(model: &LlamaForCausalLM, ids: &[Vec<u32>]) -> Vec<Vec<Vec<f32>>> {
    let device = Device::flex();
    let (b, s) = (ids.len(), ids[0].len());
    let logits = model
        .forward(
            model.ids_tensor(ids, &device).unwrap(),
            &BatchLayout::contiguous(b, s, 0),
            None,
        )
        .try_into_vec_as::<f32>()
        .unwrap();
    let vocab = model.config().vocab_size;
    logits
        .chunks(s * vocab)
        .map(|row| row.chunks(vocab).map(<[f32]>::to_vec).collect())
        .collect()
}

/// Logits `[step][row][vocab]` of positions `PREFILL..LEN`, each fed alone through `cache`
/// after a prefill of the first `PREFILL` tokens; before step `drop.0`, only rows `drop.1` are
/// kept (`select_rows`).
fn decode(
    model: &LlamaForCausalLM,
    ids: &[Vec<u32>],
    mut cache: KvCache,
    drop: Option<(usize, Vec<usize>)>,
) -> Vec<Vec<Vec<f32>>> {
    let device = Device::flex();
    let vocab = model.config().vocab_size;
    let mut rows: Vec<usize> = (0..ids.len()).collect();
    let prefix: Vec<Vec<u32>> = ids.iter().map(|r| r[..PREFILL].to_vec()).collect();
    let ids_in = model.ids_tensor(&prefix, &device).unwrap();
    let layout = BatchLayout::contiguous(rows.len(), PREFILL, 0);
    let _ = model.forward(ids_in, &layout, Some(&mut cache));
    let mut out = Vec::new();
    for step in 0..LEN - PREFILL {
        let t = PREFILL + step;
        if let Some((at, keep)) = &drop
            && *at == t
        {
            let index: Vec<i64> = keep.iter().map(|&r| r as i64).collect();
            let index = Tensor::<1, Int>::from_data(TensorData::new(index, [keep.len()]), &device);
            cache.select_rows(&index);
            rows = keep.clone();
        }
        let step: Vec<Vec<u32>> = rows.iter().map(|&r| vec![ids[r][t]]).collect();
        let layout = BatchLayout::contiguous(rows.len(), 1, t);
        let logits = model
            .forward(
                model.ids_tensor(&step, &device).unwrap(),
                &layout,
                Some(&mut cache),
            )
            .try_into_vec_as::<f32>()
            .unwrap();
        out.push(logits.chunks(vocab).map(<[f32]>::to_vec).collect());
    }
    assert_eq!(cache.len(), LEN);
    out
}

fn bits(x: &[Vec<Vec<f32>>]) -> Vec<u32> {
    x.iter().flatten().flatten().map(|v| v.to_bits()).collect()
}

#[test]
fn open_and_capped_caches_give_the_full_forwards_logits() {
    // f32 measured ≤ 2.7e-6 (the full forward's products sum in another order); bf16 equal
    // bit for bit on this machine, allowed a few products rounded the other way (2⁻⁶ at the
    // logits' magnitudes, |logit| ≤ 3.5) for a gemm that sums rows of another count in another
    // order.
    for (dir, (precision, tol)) in causal_fixtures().into_iter().flat_map(|d| {
        [
            (d.clone(), (Precision::F32, 2e-5)),
            (d, (Precision::Bf16, 0.06)),
        ]
    }) {
        let model = model(&dir, precision);
        let ids = ids(&model);
        let layers = model.config().num_hidden_layers;
        let full = full(&model, &ids);
        // From the prefill's 5 positions, room for 21, then grown at 22 and 39 positions: to
        // 38 and 58 in the open cache, to 38 and 40 in the capped one.
        let open = decode(&model, &ids, KvCache::new(layers), None);
        let capped = decode(&model, &ids, KvCache::with_max_positions(layers, LEN), None);
        // Reads through views of longer buffers change no value.
        let case = format!("{} {precision:?}", dir.display());
        assert_eq!(bits(&open), bits(&capped), "{case}");
        for (step, logits) in open.iter().enumerate() {
            for (row, got) in logits.iter().enumerate() {
                let diff = max_abs_diff(got, &full[row][PREFILL + step]);
                assert!(diff <= tol, "{case} row {row} step {step}: {diff}");
            }
        }
    }
}

#[test]
fn dropping_rows_keeps_the_other_rows_logits() {
    let dirs = causal_fixtures();
    for (dir, precision) in dirs
        .iter()
        .flat_map(|d| [(d, Precision::F32), (d, Precision::Bf16)])
    {
        let model = model(dir, precision);
        let ids = ids(&model);
        let layers = model.config().num_hidden_layers;
        let all = decode(&model, &ids, KvCache::with_max_positions(layers, LEN), None);
        // Dropped before a step that fits the buffers and before one that grows them.
        for (cache, at) in [
            (KvCache::with_max_positions(layers, LEN), 9),
            (KvCache::new(layers), 21),
        ] {
            let kept = decode(&model, &ids, cache, Some((at, vec![0, 2])));
            for (step, logits) in kept.iter().enumerate() {
                let rows: &[usize] = if PREFILL + step < at {
                    &[0, 1, 2]
                } else {
                    &[0, 2]
                };
                assert_eq!(logits.len(), rows.len());
                for (got, &row) in logits.iter().zip(rows) {
                    let diff = max_abs_diff(got, &all[step][row]);
                    assert!(
                        diff <= 1e-5,
                        "{} {precision:?} row {row} step {step}: {diff}",
                        dir.display()
                    );
                }
            }
        }
    }
}
