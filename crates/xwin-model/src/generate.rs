//! Batched autoregressive generation with a KV cache.

use crate::error::{ModelError, Result};
use crate::layout::BatchLayout;
use crate::model::{KvCache, LlamaForCausalLM};
use crate::sampling::SamplingConfig;
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationConfig {
    pub sampling: SamplingConfig,
    pub max_new_tokens: usize,
    /// Samples per prompt.
    pub num_samples: usize,
    /// Token ids that end a sequence (included in the output). Empty: never stop early.
    pub stop_ids: Vec<u32>,
    /// Each row's RNG is derived from (seed, prompt tokens, sample index), so a row's output
    /// does not depend on what else is in the batch: reruns and resumed runs reproduce it.
    pub seed: u64,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            sampling: SamplingConfig::greedy(),
            max_new_tokens: 128,
            num_samples: 1,
            stop_ids: Vec::new(),
            seed: 0,
        }
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
    let n = config.num_samples.max(1);
    let mut out: Generations = vec![vec![Vec::new(); n]; prompts.len()];
    if prompts.is_empty() || config.max_new_tokens == 0 {
        return Ok(out);
    }
    let mut rows: Vec<Row> = Vec::with_capacity(prompts.len() * n);
    for (prompt, tokens) in prompts.iter().enumerate() {
        let prompt_hash = fnv1a(tokens);
        for sample in 0..n {
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
    let padded: Vec<Vec<u32>> = rows
        .iter()
        .map(|r| {
            let p = &prompts[r.prompt];
            std::iter::repeat_n(0, max_len - p.len())
                .chain(p.iter().copied())
                .collect()
        })
        .collect();
    let mask: Vec<Vec<bool>> = rows
        .iter()
        .map(|r| {
            (0..max_len)
                .map(|t| t >= max_len - prompts[r.prompt].len())
                .collect()
        })
        .collect();
    let mut layout = BatchLayout::from_attention_mask(&mask)?;
    let mut cache = KvCache::new(model.config().num_hidden_layers);
    let mut ids = model.ids_tensor(&padded, device)?;
    let vocab = model.config().vocab_size;

    for step in 0..config.max_new_tokens {
        let hidden = model.hidden_states(ids, &layout, Some(&mut cache));
        let [b, s, h] = hidden.dims();
        let last = hidden.slice([0..b, s - 1..s, 0..h]);
        let logits = model.lm_logits(last).try_into_vec_as::<f32>()?;
        let mut keep = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter_mut().enumerate() {
            let token = config
                .sampling
                .sample(&logits[i * vocab..(i + 1) * vocab], &mut row.rng);
            row.tokens.push(token);
            if !config.stop_ids.contains(&token) {
                keep.push(i);
            }
        }
        if step + 1 == config.max_new_tokens {
            break;
        }
        if keep.len() < rows.len() {
            let mut next_rows = Vec::with_capacity(keep.len());
            for (i, row) in rows.into_iter().enumerate() {
                if keep.binary_search(&i).is_ok() {
                    next_rows.push(row);
                } else {
                    out[row.prompt][row.sample] = row.tokens;
                }
            }
            rows = next_rows;
            if rows.is_empty() {
                break;
            }
            let index = Tensor::<1, Int>::from_data(
                TensorData::new(
                    keep.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                    [keep.len()],
                ),
                device,
            );
            cache.select_rows(&index);
            layout = BatchLayout {
                positions: keep.iter().map(|&i| layout.positions[i].clone()).collect(),
                key_valid: layout
                    .key_valid
                    .as_ref()
                    .map(|kv| keep.iter().map(|&i| kv[i].clone()).collect()),
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
        out[row.prompt][row.sample] = row.tokens;
    }
    Ok(out)
}

/// Stable 64-bit FNV-1a hash of token ids (std's hasher may change between releases).
fn fnv1a(tokens: &[u32]) -> u64 {
    tokens
        .iter()
        .flat_map(|t| t.to_le_bytes())
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}
