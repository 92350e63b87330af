//! Numbers against Hugging Face `transformers` (fixtures made with transformers 5.24 / torch 2.15).

mod common;

use burn::tensor::{Device, Tensor, TensorData};
use common::*;
use xwin_model::{
    BatchLayout, GenerationConfig, LlamaForCausalLM, generate, load_causal_lm, masked_logprob_sum,
    span_logprobs,
};

fn logits_of(model: &LlamaForCausalLM, ids: &[Vec<u32>], device: &Device) -> Vec<f32> {
    let t = model.ids_tensor(ids, device).unwrap();
    let layout = BatchLayout::contiguous(ids.len(), ids[0].len(), 0);
    model
        .forward(t, &layout, None)
        .try_into_vec_as::<f32>()
        .unwrap()
}

/// Greedy continuation of each prompt (one sample each).
fn greedy(
    model: &LlamaForCausalLM,
    prompts: &[Vec<u32>],
    new_tokens: usize,
    device: &Device,
) -> Vec<Vec<u32>> {
    let config = GenerationConfig {
        max_new_tokens: new_tokens,
        ..GenerationConfig::default()
    };
    generate(model, prompts, &config, device)
        .unwrap()
        .into_iter()
        .map(|mut s| s.remove(0))
        .collect()
}

#[test]
fn logits_match_transformers_on_every_fixture() {
    let device = Device::flex();
    for dir in causal_fixtures() {
        let model = load_causal_lm(&dir, &device).unwrap();
        let exp = expected(&dir);
        let ids = ids(&exp["input_ids"]);
        let want: Vec<f32> = floats3(&exp["logits"])
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        let got = logits_of(&model, &ids, &device);
        let diff = max_abs_diff(&got, &want);
        // The measured error, for the README's parity table (`-- --nocapture`).
        eprintln!("{}: max |Δlogit| = {diff:.2e}", dir.display());
        assert!(diff < 1e-4, "{}: max |Δlogit| = {diff}", dir.display());
    }
}

#[test]
fn greedy_continuations_match_transformers() {
    let device = Device::flex();
    for dir in causal_fixtures() {
        let model = load_causal_lm(&dir, &device).unwrap();
        let exp = expected(&dir);
        let prompts = ids(&exp["input_ids"]);
        let want = match exp.get("greedy_new_tokens") {
            Some(v) => ids(v),
            None => ids(&exp["greedy"]["new_tokens"]),
        };
        assert_eq!(
            greedy(&model, &prompts, want[0].len(), &device),
            want,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn left_padded_batch_generates_like_transformers() {
    let device = Device::flex();
    for dir in causal_fixtures()
        .into_iter()
        .filter(|d| d.starts_with(fixtures().join("gen")))
    {
        let model = load_causal_lm(&dir, &device).unwrap();
        let exp = expected(&dir);
        let prompts = ids(&exp["left_padded"]["prompts"]);
        let want = ids(&exp["left_padded"]["new_tokens"]);
        assert_ne!(
            prompts[0].len(),
            prompts[1].len(),
            "fixture must mix prompt lengths"
        );
        assert_eq!(
            greedy(&model, &prompts, want[0].len(), &device),
            want,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn span_logprobs_match_transformers() {
    let device = Device::flex();
    // tiny-llama: tokens 6..=11 given 0..=5.
    let dir = fixtures().join("tiny-llama");
    let model = load_causal_lm(&dir, &device).unwrap();
    let exp = expected(&dir);
    let ids = ids(&exp["input_ids"]);
    let start = exp["completion_logps"]["first_token_index"]
        .as_u64()
        .unwrap() as usize;
    let requests: Vec<(Vec<u32>, usize)> = ids.iter().map(|s| (s.clone(), start)).collect();
    let got = span_logprobs(&model, &requests, &device).unwrap();
    let want_per: Vec<Vec<f32>> =
        serde_json::from_value(exp["completion_logps"]["per_token"].clone()).unwrap();
    let want_sum: Vec<f32> =
        serde_json::from_value(exp["completion_logps"]["sum"].clone()).unwrap();
    for (row, g) in got.iter().enumerate() {
        assert!(max_abs_diff(&g.per_token, &want_per[row]) < 1e-4);
        assert!(
            (g.sum - want_sum[row]).abs() < 1e-4,
            "sum {} vs {}",
            g.sum,
            want_sum[row]
        );
    }
    // Generated variants, including a ragged batch (the second request is shorter).
    for dir in causal_fixtures().into_iter().skip(1) {
        let model = load_causal_lm(&dir, &device).unwrap();
        let exp = expected(&dir);
        let ids = common::ids(&exp["input_ids"]);
        let start = exp["span"]["start"].as_u64().unwrap() as usize;
        let want_sum: Vec<f32> = serde_json::from_value(exp["span"]["sum"].clone()).unwrap();
        let want_per: Vec<Vec<f32>> =
            serde_json::from_value(exp["span"]["per_token"].clone()).unwrap();
        let short = ids[1][..start + 2].to_vec();
        let got =
            span_logprobs(&model, &[(ids[0].clone(), start), (short, start)], &device).unwrap();
        assert!((got[0].sum - want_sum[0]).abs() < 1e-4, "{}", dir.display());
        assert!(
            max_abs_diff(&got[1].per_token, &want_per[1][..2]) < 1e-4,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn masked_loss_matches_transformers_lm_loss() {
    let device = Device::flex();
    let dir = fixtures().join("tiny-llama");
    let model = load_causal_lm(&dir, &device).unwrap();
    let exp = expected(&dir);
    let ids = ids(&exp["input_ids"]);
    let (b, s) = (ids.len(), ids[0].len());
    let t = model.ids_tensor(&ids, &device).unwrap();
    let logits = model.forward(t.clone(), &BatchLayout::contiguous(b, s, 0), None);
    let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; b * s], [b, s]), &device);
    let sums = masked_logprob_sum(logits, t, mask)
        .try_into_vec_as::<f32>()
        .unwrap();
    let per_seq: Vec<f32> = serde_json::from_value(exp["lm_loss"]["per_sequence"].clone()).unwrap();
    for (sum, want) in sums.iter().zip(&per_seq) {
        let loss = -sum / (s - 1) as f32;
        assert!((loss - want).abs() < 1e-4, "loss {loss} vs {want}");
    }
    let batch = -sums.iter().sum::<f32>() / (b * (s - 1)) as f32;
    assert!((batch - exp["lm_loss"]["batch"].as_f64().unwrap() as f32).abs() < 1e-4);
}

#[test]
fn padding_does_not_change_the_logits_of_real_tokens() {
    let device = Device::flex();
    let dir = fixtures().join("tiny-llama");
    let model = load_causal_lm(&dir, &device).unwrap();
    let ids = common::ids(&expected(&dir)["input_ids"]);
    let vocab = model.config().vocab_size;
    let short = ids[1][..5].to_vec();
    let alone = logits_of(&model, std::slice::from_ref(&short), &device);
    for left in [true, false] {
        let padded: Vec<u32> = if left {
            [vec![0; 7], short.clone()].concat()
        } else {
            [short.clone(), vec![0; 7]].concat()
        };
        let mask: Vec<bool> = (0..12).map(|t| if left { t >= 7 } else { t < 5 }).collect();
        let layout = BatchLayout::from_attention_mask(&[vec![true; 12], mask]).unwrap();
        let batch = model
            .ids_tensor(&[ids[0].clone(), padded], &device)
            .unwrap();
        let got = model
            .forward(batch, &layout, None)
            .try_into_vec_as::<f32>()
            .unwrap();
        let offset = if left { 7 } else { 0 };
        let row = &got[(12 + offset) * vocab..(12 + offset + 5) * vocab];
        assert!(max_abs_diff(row, &alone) < 1e-4, "left={left}");
    }
}
