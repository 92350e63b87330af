//! Batched scoring with a reward model: `ResponseSamples` JSONL in (a prompt and its sampled
//! responses), Xwin-Set JSONL out (every response scored and ranked per prompt). Responses
//! of many prompts share length-bucketed batches; the output is appended one prompt per
//! line, so a killed run keeps what it wrote and a rerun scores only prompts not yet in the
//! output (each exactly once). One run per output file (a lock).

use crate::RmError;
use burn::module::Module;
use burn::tensor::Device;
use std::collections::HashSet;
use std::path::Path;
use xwin_data::{
    ChatTemplate, JsonlWriter, OutputLock, ReadOptions, ResponseSamples, ScoredResponse,
    TextEncoder, TrainOn, Turn, XwinSet, for_each_record, length_buckets, lock_path_for, pad_rows,
    tokenize,
};
use xwin_model::LlamaForReward;

/// How [`score_samples`] batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreOptions {
    pub template: ChatTemplate,
    /// Longest prompt + response in tokens; a longer one is an error naming it.
    pub max_len: usize,
    /// Rows per forward.
    pub batch_rows: usize,
    /// Padded tokens per forward.
    pub max_batch_tokens: usize,
    /// Prompts read and scored together (responses of all of them are bucketed by length).
    pub chunk_prompts: usize,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        Self {
            template: ChatTemplate::VicunaV11,
            max_len: 4096,
            batch_rows: 32,
            max_batch_tokens: 32_768,
            chunk_prompts: 64,
        }
    }
}

impl ScoreOptions {
    /// The defaults with `template` and the reward model's own context as `max_len`.
    pub fn for_model(rm: &LlamaForReward, template: ChatTemplate) -> Self {
        Self {
            template,
            max_len: rm.config().max_position_embeddings,
            ..Self::default()
        }
    }
}

/// What a scoring run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScoreSummary {
    pub prompts: usize,
    pub already_done: usize,
    pub scored_prompts: usize,
    pub scored_responses: usize,
}

/// Scores every prompt of `input` not yet in `output`; `on_progress(prompts done)`.
#[allow(clippy::too_many_arguments)]
pub fn score_samples(
    model: &LlamaForReward,
    encoder: &dyn TextEncoder,
    model_name: &str,
    input: &Path,
    output: &Path,
    options: ScoreOptions,
    device: &Device,
    mut on_progress: impl FnMut(usize),
) -> Result<ScoreSummary, RmError> {
    let _lock = OutputLock::acquire(lock_path_for(output, false))?;
    let mut writer = JsonlWriter::append(output)?;
    let mut done = HashSet::new();
    for_each_record(output, ReadOptions::default(), |s: XwinSet| {
        done.insert(s.id);
    })?;
    let mut summary = ScoreSummary::default();
    let frozen = model.valid();
    let device = device.clone().inner();
    let mut chunk: Vec<ResponseSamples> = Vec::new();
    let mut failure = None;
    let mut flush = |chunk: &mut Vec<ResponseSamples>, summary: &mut ScoreSummary| {
        let scored = score_chunk(&frozen, encoder, chunk, options, &device)?;
        for (samples, scores) in chunk.drain(..).zip(scored) {
            let mut set = XwinSet {
                id: samples.id,
                prompt: samples.prompt,
                reward_model: model_name.to_string(),
                responses: samples
                    .responses
                    .into_iter()
                    .zip(scores)
                    .enumerate()
                    .map(|(index, (r, score))| ScoredResponse {
                        text: r.text,
                        score,
                        rank: 0,
                        index: Some(index),
                    })
                    .collect(),
            };
            set.rank();
            summary.scored_responses += set.responses.len();
            summary.scored_prompts += 1;
            writer.write(&set)?;
        }
        on_progress(summary.already_done + summary.scored_prompts);
        Ok::<(), RmError>(())
    };
    for_each_record(input, ReadOptions::default(), |samples: ResponseSamples| {
        if failure.is_some() {
            return;
        }
        summary.prompts += 1;
        if done.contains(&samples.id) {
            summary.already_done += 1;
            return;
        }
        done.insert(samples.id.clone());
        chunk.push(samples);
        if chunk.len() >= options.chunk_prompts.max(1)
            && let Err(e) = flush(&mut chunk, &mut summary)
        {
            failure = Some(e);
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    if !chunk.is_empty() {
        flush(&mut chunk, &mut summary)?;
    }
    Ok(summary)
}

/// Rewards of every response of `chunk`, per prompt in order.
fn score_chunk(
    model: &LlamaForReward,
    encoder: &dyn TextEncoder,
    chunk: &[ResponseSamples],
    options: ScoreOptions,
    device: &Device,
) -> Result<Vec<Vec<f32>>, RmError> {
    let eos = model.config().eos_token_ids.first().copied().unwrap_or(2);
    let pad = model.config().pad_token_id.unwrap_or(0);
    let mut rows: Vec<Vec<u32>> = Vec::new();
    let mut owner: Vec<(usize, usize)> = Vec::new();
    for (p, samples) in chunk.iter().enumerate() {
        for (r, response) in samples.responses.iter().enumerate() {
            let mut conversation = samples.prompt.clone();
            conversation.turns.push(Turn::gpt(&response.text));
            let mut ids = tokenize(
                options.template,
                &conversation,
                encoder,
                TrainOn::LastAssistant,
            )?
            .ids;
            if ids.last() != Some(&eos) {
                ids.push(eos);
            }
            if ids.len() > options.max_len {
                return Err(RmError::Pair {
                    origin: "scoring".into(),
                    id: format!("{} response {r}", samples.id),
                    message: format!("{} tokens exceed max_len {}", ids.len(), options.max_len),
                });
            }
            rows.push(ids);
            owner.push((p, r));
        }
    }
    let mut out: Vec<Vec<f32>> = chunk
        .iter()
        .map(|s| vec![f32::NAN; s.responses.len()])
        .collect();
    let lengths: Vec<usize> = rows.iter().map(Vec::len).collect();
    for members in length_buckets(&lengths, options.batch_rows, options.max_batch_tokens, 0) {
        let batch: Vec<&[u32]> = members.iter().map(|&i| rows[i].as_slice()).collect();
        let (ids, attention) = pad_rows(&batch, pad);
        let rewards = model.rewards(&ids, &attention, device)?;
        let rewards = rewards
            .try_into_vec_as::<f32>()
            .map_err(xwin_model::ModelError::from)?;
        for (&i, reward) in members.iter().zip(rewards) {
            let (p, r) = owner[i];
            out[p][r] = reward;
        }
    }
    Ok(out)
}
