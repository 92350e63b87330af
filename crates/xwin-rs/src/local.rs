//! Sampling with the local policy: prompts of similar length share a batch; each prompt is
//! prefilled once and its cache copied to its N sample rows (`xwin_model::generate`); every
//! sample's RNG comes from (seed, prompt id, prompt tokens, sample index), so a resumed run
//! writes exactly what the interrupted one would have, and two prompts with the same text
//! under different ids draw different samples.

use crate::RsError;
use crate::output::{Progress, SampleFailure, SampleOutput, SampleSummary};
use crate::prompts::Prompt;
use crate::spec::{SampleSpec, record};
use burn::tensor::Device;
use std::time::Instant;
use xwin_data::{ChatTemplate, SampledResponse, TextEncoder};
use xwin_model::{GenerationConfig, LlamaForCausalLM, generate, text_seed};

/// How prompts are batched.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LocalOptions {
    /// Most sequences decoded together (prompts × samples).
    pub batch_rows: usize,
    /// Most prompt tokens prefilled together (padded).
    pub max_prefill_tokens: usize,
    /// A prompt leaving no room for `max_new_tokens` in the context is recorded in the
    /// failures file and counted instead of stopping the run.
    pub skip_long: bool,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            batch_rows: 64,
            max_prefill_tokens: 16_384,
            skip_long: false,
        }
    }
}

/// The policy, its tokenizer and how prompts are rendered.
pub struct LocalSampler<'a> {
    pub model: &'a LlamaForCausalLM,
    pub tokenizer: &'a tokenizers::Tokenizer,
    pub template: ChatTemplate,
    /// Written into each record's `model`.
    pub name: String,
    pub device: Device,
}

impl LocalSampler<'_> {
    /// Token ids of a prompt, or why it cannot be sampled: it leaves no room for
    /// `max_new_tokens` in the model's context.
    fn tokenize(
        &self,
        prompt: &Prompt,
        spec: &SampleSpec,
    ) -> Result<Result<Vec<u32>, RsError>, RsError> {
        let context = self.model.config().max_position_embeddings;
        let text = self.template.prompt_text(&prompt.conversation);
        let (ids, _) = self.tokenizer.encode_with_offsets(&text)?;
        if ids.len() + spec.max_new_tokens > context {
            return Ok(Err(RsError::Prompt {
                id: prompt.id.clone(),
                message: format!(
                    "{} prompt tokens + max_new_tokens {} exceed the model's context of \
                     {context} tokens",
                    ids.len(),
                    spec.max_new_tokens
                ),
            }));
        }
        Ok(Ok(ids))
    }

    /// Samples `spec` for every prompt not yet in `output`, appending one line per prompt.
    pub fn run(
        &self,
        prompts: &[Prompt],
        spec: &SampleSpec,
        options: LocalOptions,
        output: &std::path::Path,
        mut on_progress: impl FnMut(Progress),
    ) -> Result<SampleSummary, RsError> {
        spec.check()?;
        let mut out = SampleOutput::open(output)?;
        let pending = prompts.iter().filter(|p| !out.done.contains(&p.id));
        let mut summary = SampleSummary {
            prompts: prompts.len(),
            ..SampleSummary::default()
        };
        // Every prompt is checked before anything is sampled: a bad one stops the run with
        // the output as it was (or, with `skip_long`, is recorded and skipped).
        let (mut todo, mut ids): (Vec<&Prompt>, Vec<Vec<u32>>) = (Vec::new(), Vec::new());
        for p in pending {
            match self.tokenize(p, spec)? {
                Ok(t) => {
                    todo.push(p);
                    ids.push(t);
                }
                Err(e) if options.skip_long => {
                    summary.too_long += 1;
                    out.failures.write(&SampleFailure {
                        id: p.id.clone(),
                        error: e.to_string(),
                    })?;
                }
                Err(e) => return Err(e),
            }
        }
        summary.already_done = prompts.len() - todo.len() - summary.too_long;
        let n = spec.count();
        let stop_ids = self.model.config().eos_token_ids.clone();
        let mut generation = GenerationConfig {
            sampling: spec.sampling(0),
            per_sample: (0..n).map(|k| spec.sampling(k)).collect(),
            max_new_tokens: spec.max_new_tokens,
            num_samples: n,
            first_sample: 0,
            stop_ids: stop_ids.clone(),
            seed: spec.seed,
            prompt_seeds: Vec::new(),
        };
        let start = Instant::now();
        for batch in batches(&ids, n, options) {
            let batch_ids: Vec<Vec<u32>> = batch.iter().map(|&i| ids[i].clone()).collect();
            generation.prompt_seeds = batch.iter().map(|&i| text_seed(&todo[i].id)).collect();
            let generated = generate(self.model, &batch_ids, &generation, &self.device)?;
            for (&i, samples) in batch.iter().zip(generated) {
                let mut responses = Vec::with_capacity(n);
                for (k, mut tokens) in samples.into_iter().enumerate() {
                    summary.tokens += tokens.len();
                    let finished = tokens.last().is_some_and(|t| stop_ids.contains(t));
                    if finished {
                        tokens.pop();
                    }
                    summary.unfinished += usize::from(!finished);
                    // The template puts the space after `ASSISTANT:` itself (FastChat strips
                    // outputs the same way).
                    let text = self
                        .tokenizer
                        .decode(&tokens, true)
                        .map_err(|e| xwin_data::DataError::Tokenizer(e.to_string()))?
                        .trim_start()
                        .to_string();
                    responses.push(SampledResponse {
                        text,
                        sampling: spec.settings(k),
                        finished,
                    });
                }
                summary.responses += responses.len();
                let p = todo[i];
                out.writer
                    .write(&record(spec, &p.id, &p.conversation, &self.name, responses))?;
                summary.sampled_prompts += 1;
            }
            summary.elapsed_s = start.elapsed().as_secs_f64();
            on_progress(Progress {
                done: summary.sampled_prompts,
                total: todo.len(),
                failures: 0,
                tokens: summary.tokens,
                elapsed_s: summary.elapsed_s,
            });
        }
        Ok(summary)
    }
}

/// Prompt indices grouped by length (longest first, so a too-large batch fails early):
/// at most `batch_rows / n` prompts (at least one) and `max_prefill_tokens` padded tokens.
fn batches(ids: &[Vec<u32>], n: usize, options: LocalOptions) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(ids[i].len()));
    let per_batch = (options.batch_rows / n.max(1)).max(1);
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut current: Vec<usize> = Vec::new();
    for i in order {
        // Sorted longest first: the batch's padded width is its first prompt's length.
        let width = current.first().map_or(ids[i].len(), |&f| ids[f].len());
        if !current.is_empty()
            && (current.len() >= per_batch
                || (current.len() + 1) * width > options.max_prefill_tokens)
        {
            out.push(std::mem::take(&mut current));
        }
        current.push(i);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn batches_respect_rows_and_prefill_budget() {
        let ids: Vec<Vec<u32>> = [5, 9, 3, 9, 7, 2].iter().map(|&l| vec![1; l]).collect();
        let options = LocalOptions {
            batch_rows: 8,
            max_prefill_tokens: 20,
            skip_long: false,
        };
        let b = batches(&ids, 4, options);
        assert_eq!(b, vec![vec![1, 3], vec![4, 0], vec![2, 5]]);
        let all: usize = b.iter().map(Vec::len).sum();
        assert_eq!(all, ids.len());
        // One prompt per batch when n exceeds the rows.
        assert!(batches(&ids, 100, options).iter().all(|b| b.len() == 1));
    }
}
