//! Batched autoregressive generation with a KV cache.

use crate::error::{ModelError, Result};
use crate::kv_cache::KvCache;
use crate::layout::BatchLayout;
use crate::model::LlamaForCausalLM;
use crate::sampling::SamplingConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub sampling: SamplingConfig,
    /// Per sample index: when not empty, sample `k` uses `per_sample[k]` instead of
    /// `sampling` (step 2a samples a pair at temperatures 0.7 and 0.3 from one prefill).
    pub per_sample: Vec<SamplingConfig>,
    pub max_new_tokens: usize,
    /// Samples per prompt.
    pub num_samples: usize,
    /// Index of the first sample: samples `first_sample..first_sample + num_samples` are
    /// drawn, so sample `k` comes out the same whether drawn with its siblings or alone.
    pub first_sample: usize,
    /// Token ids that end a sequence (included in the output). Empty: never stop early.
    pub stop_ids: Vec<u32>,
    /// Each row's RNG is derived from (seed, prompt tokens, sample index), so a row's output
    /// does not depend on what else is in the batch: reruns and resumed runs reproduce it.
    pub seed: u64,
    /// Mixed into prompt `i`'s seed when present (e.g. a hash of its id), so two prompts
    /// with the same tokens under different ids draw different samples; empty: none.
    pub prompt_seeds: Vec<u64>,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            sampling: SamplingConfig::greedy(),
            per_sample: Vec::new(),
            max_new_tokens: 128,
            num_samples: 1,
            first_sample: 0,
            stop_ids: Vec::new(),
            seed: 0,
            prompt_seeds: Vec::new(),
        }
    }
}

impl GenerationConfig {
    /// How sample `k` picks its tokens.
    fn sampling_of(&self, k: usize) -> &SamplingConfig {
        self.per_sample.get(k).unwrap_or(&self.sampling)
    }
}

/// Generated continuations: `[prompt][sample]` → new token ids (without the prompt).
pub type Generations = Vec<Vec<Vec<u32>>>;

/// One sequence being generated.
struct Row {
    prompt: usize,
    sample: usize,
    rng: ChaCha8Rng,
    tokens: Vec<u32>,
}

/// Generates continuations of `prompts` (any lengths, left-padded internally).
///
/// Each prompt is prefilled once, however many samples it gets: its keys and values are then
/// copied to one cache row per sample, and only decoding runs `prompts × num_samples` rows.
pub fn generate(
    model: &LlamaForCausalLM,
    prompts: &[Vec<u32>],
    config: &GenerationConfig,
    device: &Device,
) -> Result<Generations> {
    if prompts.iter().any(Vec::is_empty) {
        return Err(ModelError::InvalidInput(
            "every prompt needs at least one token".into(),
        ));
    }
    let n = config.num_samples;
    if n == 0 {
        return Err(ModelError::InvalidInput(
            "num_samples must be at least 1".into(),
        ));
    }
    let samples = config.first_sample..config.first_sample + n;
    if !config.per_sample.is_empty() && config.per_sample.len() < samples.end {
        return Err(ModelError::InvalidInput(format!(
            "per_sample has {} settings for samples up to {}",
            config.per_sample.len(),
            samples.end - 1
        )));
    }
    let mut out: Generations = vec![vec![Vec::new(); n]; prompts.len()];
    if prompts.is_empty() || config.max_new_tokens == 0 {
        return Ok(out);
    }
    let mut rows: Vec<Row> = Vec::with_capacity(prompts.len() * n);
    for (prompt, tokens) in prompts.iter().enumerate() {
        let prompt_hash = fnv1a(tokens) ^ config.prompt_seeds.get(prompt).copied().unwrap_or(0);
        for sample in samples.clone() {
            let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ prompt_hash);
            rng.set_stream(sample as u64);
            rows.push(Row {
                prompt,
                sample,
                rng,
                tokens: Vec::new(),
            });
        }
    }
    let max_len = prompts.iter().map(Vec::len).max().unwrap_or(0);
    model.check_context(max_len + config.max_new_tokens)?;
    // The prefill: one left-padded row per prompt.
    let padded: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            std::iter::repeat_n(0, max_len - p.len())
                .chain(p.iter().copied())
                .collect()
        })
        .collect();
    let mask: Vec<Vec<bool>> = prompts
        .iter()
        .map(|p| (0..max_len).map(|t| t >= max_len - p.len()).collect())
        .collect();
    let mut layout = BatchLayout::from_attention_mask(&mask)?;
    // Never more room than the longest row can use.
    let mut cache = KvCache::with_max_positions(
        model.config().num_hidden_layers,
        max_len + config.max_new_tokens,
    );
    let mut ids = model.ids_tensor(&padded, device)?;
    let vocab = model.config().vocab_size;

    for step in 0..config.max_new_tokens {
        let hidden = model.hidden_states(ids, &layout, Some(&mut cache));
        let [b, s, h] = hidden.dims();
        let last = hidden.slice([0..b, s - 1..s, 0..h]);
        let logits = model.lm_logits(last).try_into_vec_as::<f32>()?;
        // Which cache row each live row reads: after the prefill, its prompt's.
        let cache_row = |i: usize, row: &Row| if step == 0 { row.prompt } else { i };
        let mut keep = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter_mut().enumerate() {
            let r = cache_row(i, row);
            let token = config
                .sampling_of(row.sample)
                .sample(&logits[r * vocab..(r + 1) * vocab], &mut row.rng);
            row.tokens.push(token);
            if !config.stop_ids.contains(&token) {
                keep.push(i);
            }
        }
        if step + 1 == config.max_new_tokens {
            break;
        }
        let sources: Vec<usize> = keep.iter().map(|&i| cache_row(i, &rows[i])).collect();
        let unchanged = sources.len() == b && sources.iter().enumerate().all(|(i, &r)| i == r);
        if keep.len() < rows.len() {
            let mut next_rows = Vec::with_capacity(keep.len());
            for (i, row) in rows.into_iter().enumerate() {
                if keep.binary_search(&i).is_ok() {
                    next_rows.push(row);
                } else {
                    out[row.prompt][row.sample - samples.start] = row.tokens;
                }
            }
            rows = next_rows;
            if rows.is_empty() {
                break;
            }
        }
        if !unchanged {
            let index = Tensor::<1, Int>::from_data(
                TensorData::new(
                    sources.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                    [sources.len()],
                ),
                device,
            );
            cache.select_rows(&index);
            layout = BatchLayout {
                positions: sources
                    .iter()
                    .map(|&i| layout.positions[i].clone())
                    .collect(),
                key_valid: layout
                    .key_valid
                    .as_ref()
                    .map(|kv| sources.iter().map(|&i| kv[i].clone()).collect()),
            };
        }
        layout = layout.next_step();
        let next: Vec<Vec<u32>> = rows
            .iter()
            .map(|r| vec![*r.tokens.last().unwrap_or(&0)])
            .collect();
        ids = model.ids_tensor(&next, device)?;
    }
    for row in rows {
        out[row.prompt][row.sample - samples.start] = row.tokens;
    }
    Ok(out)
}

/// Stable 64-bit FNV-1a hash of token ids (std's hasher may change between releases).
/// FNV-1a over a string's bytes: a stable per-id seed for [`GenerationConfig::prompt_seeds`].
pub fn text_seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn fnv1a(tokens: &[u32]) -> u64 {
    tokens
        .iter()
        .flat_map(|t| t.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
