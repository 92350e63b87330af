//! Sampling and generation controls: seeds, top-k/top-p, stops, n samples.

mod common;

use burn::tensor::Device;
use common::*;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use xwin_model::sampling::argmax;
use xwin_model::{GenerationConfig, SamplingConfig, generate, load_causal_lm};

proptest! {
    #[test]
    fn sampled_token_is_among_the_top_k(logits in prop::collection::vec(-10.0f32..10.0, 2..64), k in 1usize..8, seed: u64) {
        let config = SamplingConfig { temperature: 0.9, top_p: 1.0, top_k: k };
        let token = config.sample(&logits, &mut ChaCha8Rng::seed_from_u64(seed)) as usize;
        let better = logits.iter().filter(|&&l| l > logits[token]).count();
        prop_assert!(better < k, "token {token} has {better} strictly better tokens, k = {k}");
    }

    #[test]
    fn tiny_top_p_and_top_k_1_are_greedy(logits in prop::collection::vec(-10.0f32..10.0, 1..64), seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let greedy = argmax(&logits);
        let top1 = SamplingConfig { temperature: 1.0, top_p: 1.0, top_k: 1 }.sample(&logits, &mut rng);
        let nucleus = SamplingConfig { temperature: 1.0, top_p: 1e-6, top_k: 0 }.sample(&logits, &mut rng);
        prop_assert_eq!(logits[top1 as usize], logits[greedy as usize]);
        prop_assert_eq!(logits[nucleus as usize], logits[greedy as usize]);
    }
}

/// The nucleus computed the slow way: every token sorted by probability.
fn nucleus(logits: &[f32], temperature: f32, top_p: f32) -> Vec<usize> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i, f64::from((l - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    probs.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut mass = 0.0;
    let mut out = Vec::new();
    for (i, p) in probs {
        out.push(i);
        mass += p / total;
        if mass >= f64::from(top_p) {
            break;
        }
    }
    out
}

proptest! {
    /// Top-p sorts only a growing prefix of the logits; what it keeps must still be the
    /// nucleus of the full sort, including nuclei far larger than the first prefix (flat
    /// logits over a large vocabulary).
    #[test]
    fn top_p_draws_stay_in_the_nucleus(
        logits in prop::collection::vec(-2.0f32..2.0, 50..2000),
        top_p in 0.05f32..0.99,
        seed: u64,
    ) {
        let config = SamplingConfig { temperature: 0.8, top_p, top_k: 0 };
        let allowed = nucleus(&logits, 0.8, top_p);
        // Margin for f32 vs f64 mass at the boundary: the next token of the full order.
        let slack = nucleus(&logits, 0.8, (top_p + 1e-4).min(1.0));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for _ in 0..20 {
            let token = config.sample(&logits, &mut rng) as usize;
            prop_assert!(allowed.contains(&token) || slack.contains(&token),
                "token {token} outside the nucleus of {} tokens", allowed.len());
        }
    }
}

#[test]
fn sampling_frequencies_follow_the_softmax() {
    // p = softmax([0, ln 3]) = [0.25, 0.75]; with top_p 0.5 only token 1 survives.
    let logits = [0.0f32, 3.0f32.ln()];
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let config = SamplingConfig {
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
    };
    let ones = (0..20_000)
        .filter(|_| config.sample(&logits, &mut rng) == 1)
        .count();
    let freq = ones as f64 / 20_000.0;
    assert!((freq - 0.75).abs() < 0.015, "frequency {freq}");
    let nucleus = SamplingConfig {
        top_p: 0.5,
        ..config
    };
    assert!((0..1000).all(|_| nucleus.sample(&logits, &mut rng) == 1));
    // Temperature 2 flattens: p1 = 3^0.5 / (1 + 3^0.5) = 0.634.
    let hot = SamplingConfig {
        temperature: 2.0,
        ..config
    };
    let ones = (0..20_000)
        .filter(|_| hot.sample(&logits, &mut rng) == 1)
        .count();
    assert!((ones as f64 / 20_000.0 - 0.634).abs() < 0.015);
}

#[test]
fn same_seed_same_samples_and_rows_do_not_depend_on_the_batch() {
    let device = Device::flex();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let prompts = ids(&expected(&fixtures().join("tiny-llama"))["input_ids"]);
    let config = GenerationConfig {
        sampling: SamplingConfig {
            temperature: 1.0,
            top_p: 0.95,
            top_k: 50,
        },
        max_new_tokens: 12,
        num_samples: 3,
        seed: 42,
        ..GenerationConfig::default()
    };
    let a = generate(&model, &prompts, &config, &device).unwrap();
    let b = generate(&model, &prompts, &config, &device).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    assert!(
        a.iter()
            .all(|samples| samples.len() == 3 && samples.iter().all(|s| s.len() == 12))
    );
    // Samples of one prompt differ from each other (different RNG streams).
    assert_ne!(a[0][0], a[0][1]);
    // The second prompt alone gives the same samples as inside the batch.
    let alone = generate(&model, &prompts[1..], &config, &device).unwrap();
    assert_eq!(alone[0], a[1]);
    let other_seed = generate(
        &model,
        &prompts,
        &GenerationConfig { seed: 43, ..config },
        &device,
    )
    .unwrap();
    assert_ne!(other_seed, a);
}

#[test]
fn stop_token_ends_a_row_and_is_kept() {
    let device = Device::flex();
    let dir = fixtures().join("tiny-llama");
    let model = load_causal_lm(&dir, &device).unwrap();
    let exp = expected(&dir);
    let prompts = ids(&exp["input_ids"]);
    let greedy = ids(&exp["greedy"]["new_tokens"]);
    // Row 1's greedy output is 79, 336, 330, ...: stopping at 330 ends it after 3 tokens,
    // while row 0 (which never emits 330 early) runs on unchanged.
    let config = GenerationConfig {
        max_new_tokens: 16,
        stop_ids: vec![330],
        ..GenerationConfig::default()
    };
    let out = generate(&model, &prompts, &config, &device).unwrap();
    assert_eq!(out[1][0], vec![79, 336, 330]);
    let cut = greedy[0]
        .iter()
        .position(|&t| t == 330)
        .map_or(16, |p| p + 1);
    assert_eq!(out[0][0], greedy[0][..cut].to_vec());
}

/// Best-of-N prefills each prompt once and copies its cache to N rows; every sample must
/// still be exactly what generating it alone (same seed, same sample index) gives, including
/// rows that stop early, per-sample settings and a later first sample.
#[test]
fn shared_prefill_equals_separate_generations() {
    let device = Device::flex();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let mut prompts = ids(&expected(&fixtures().join("tiny-llama"))["input_ids"]);
    prompts.push(vec![1, 400, 17]);
    // The same tokens again under another prompt seed (another id): different samples.
    prompts.push(vec![1, 400, 17]);
    let mut prompt_seeds = vec![0; prompts.len()];
    prompt_seeds[prompts.len() - 1] = 11;
    let hot = SamplingConfig {
        temperature: 1.3,
        top_p: 0.98,
        top_k: 0,
    };
    let cool = SamplingConfig {
        temperature: 0.3,
        ..hot.clone()
    };
    let config = GenerationConfig {
        sampling: hot.clone(),
        per_sample: vec![
            hot.clone(),
            cool,
            hot.clone(),
            hot.clone(),
            hot.clone(),
            hot,
        ],
        max_new_tokens: 20,
        num_samples: 5,
        first_sample: 1,
        // Frequent tokens of this model, so that rows stop at different steps.
        stop_ids: vec![330, 79, 15],
        seed: 7,
        prompt_seeds: prompt_seeds.clone(),
    };
    let together = generate(&model, &prompts, &config, &device).unwrap();
    let lengths: Vec<usize> = together.iter().flatten().map(Vec::len).collect();
    assert!(
        lengths.iter().any(|&l| l < 20) && lengths.contains(&20),
        "some rows must stop early and some run to the end: {lengths:?}"
    );
    let last = prompts.len() - 1;
    assert_ne!(
        together[last],
        together[last - 1],
        "prompt seeds must matter"
    );
    for (p, prompt) in prompts.iter().enumerate() {
        for (k, sample) in together[p].iter().enumerate() {
            let alone = GenerationConfig {
                num_samples: 1,
                first_sample: 1 + k,
                prompt_seeds: vec![prompt_seeds[p]],
                ..config.clone()
            };
            let single = generate(&model, std::slice::from_ref(prompt), &alone, &device).unwrap();
            assert_eq!(&single[0][0], sample, "prompt {p} sample {}", 1 + k);
        }
    }
}

#[test]
fn zero_samples_and_short_per_sample_lists_are_errors() {
    let device = Device::flex();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let zero = GenerationConfig {
        num_samples: 0,
        ..GenerationConfig::default()
    };
    assert!(generate(&model, &[vec![1, 2]], &zero, &device).is_err());
    let short = GenerationConfig {
        num_samples: 3,
        per_sample: vec![SamplingConfig::greedy(); 2],
        ..GenerationConfig::default()
    };
    assert!(generate(&model, &[vec![1, 2]], &short, &device).is_err());
}
