//! Supervised finetuning (paper step 1): ShareGPT conversations through the Vicuna template,
//! loss on assistant tokens only, split into blocks, trained by the shared loop, exported to
//! HF layout.

use crate::objective::sft_loss;
use crate::trainer::{LoopConfig, StepMetrics, TrainError, train};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use xwin_data::{
    Batch, ChatTemplate, JsonlWriter, PadSide, ReadOptions, TokenizedConversation, TrainOn,
    for_each_conversation, length_buckets, load_tokenizer, pad_batch, split_into_blocks, tokenize,
};
use xwin_model::{SaveOptions, load_causal_lm, parse_device, save_causal_lm};

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// HF model directory to start from.
    pub path: PathBuf,
    /// `tokenizer.json`; defaults to the one in `path`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    #[serde(default = "cpu")]
    pub device: String,
}

impl ModelSection {
    /// The tokenizer file: the configured one or `tokenizer.json` in the model directory.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.tokenizer
            .clone()
            .unwrap_or_else(|| self.path.join("tokenizer.json"))
    }
}

fn cpu() -> String {
    "cpu".into()
}

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// ShareGPT / Alpaca / HH-RLHF file.
    pub train: PathBuf,
    #[serde(default = "vicuna")]
    pub template: ChatTemplate,
    #[serde(default = "block_len")]
    pub max_len: usize,
    #[serde(default)]
    pub skip_bad: bool,
}

fn vicuna() -> ChatTemplate {
    ChatTemplate::VicunaV11
}

fn block_len() -> usize {
    xwin_data::DEFAULT_BLOCK_LEN
}

/// The `[batching]` table: passes over the data and micro-batch shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    pub epochs: usize,
    pub micro_batch_size: usize,
    /// Most padded tokens in one micro-batch.
    #[serde(default = "max_batch_tokens")]
    pub max_batch_tokens: usize,
    /// Shuffles the order of the length buckets.
    #[serde(default)]
    pub seed: u64,
}

fn max_batch_tokens() -> usize {
    16_384
}

/// A whole SFT run, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    pub model: ModelSection,
    pub data: DataSection,
    pub batching: BatchingSection,
    /// The optimisation loop: lr, schedule, warm-up, accumulation, clipping, AdamW.
    pub train: LoopConfig,
    /// Output directory: `metrics.jsonl` and the final model in HF layout.
    pub output: PathBuf,
}

/// Errors of an SFT run.
#[derive(Debug, thiserror::Error)]
pub enum SftError {
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error(transparent)]
    Model(#[from] xwin_model::ModelError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error("{0}")]
    Setup(String),
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SftSummary {
    pub conversations: usize,
    pub skipped_records: usize,
    pub blocks: usize,
    pub truncated_rounds: usize,
    pub steps: usize,
    pub first_loss: f32,
    pub last_loss: f32,
}

/// Tokenizes the training set into padded micro-batches (length-bucketed).
fn build_batches(config: &SftConfig, pad_id: u32) -> Result<(Vec<Batch>, SftSummary), SftError> {
    let tok_path = config.model.tokenizer_path();
    let tokenizer = load_tokenizer(&tok_path)?;
    let mut blocks: Vec<TokenizedConversation> = Vec::new();
    let mut conversations = 0;
    let mut truncated_rounds = 0;
    let mut failure = None;
    let report = for_each_conversation(
        &config.data.train,
        ReadOptions {
            skip_bad: config.data.skip_bad,
        },
        |c| {
            if failure.is_some() {
                return;
            }
            conversations += 1;
            let result = tokenize(config.data.template, &c, &tokenizer, TrainOn::AllAssistant)
                .and_then(|t| split_into_blocks(&t, config.data.max_len));
            match result {
                Ok(b) => {
                    truncated_rounds += b.truncated_rounds;
                    blocks.extend(b.blocks.into_iter().filter(|b| b.trainable() > 0));
                }
                Err(e) => failure = Some(e),
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    if blocks.is_empty() {
        return Err(SftError::Setup(format!(
            "{}: no trainable conversations",
            config.data.train.display()
        )));
    }
    let lengths: Vec<usize> = blocks.iter().map(TokenizedConversation::len).collect();
    let buckets = length_buckets(
        &lengths,
        config.batching.micro_batch_size,
        config.batching.max_batch_tokens,
        config.batching.seed,
    );
    let batches = buckets
        .iter()
        .map(|b| {
            pad_batch(
                &b.iter().map(|&i| &blocks[i]).collect::<Vec<_>>(),
                pad_id,
                PadSide::Right,
            )
        })
        .collect();
    let summary = SftSummary {
        conversations,
        skipped_records: report.skipped,
        blocks: blocks.len(),
        truncated_rounds,
        steps: 0,
        first_loss: f32::NAN,
        last_loss: f32::NAN,
    };
    Ok((batches, summary))
}

/// Runs SFT. `on_step` gets each step's metrics and the total step count (for progress).
pub fn run_sft(
    config: &SftConfig,
    mut on_step: impl FnMut(&StepMetrics, usize),
) -> Result<SftSummary, SftError> {
    let device = parse_device(&config.model.device)?.autodiff();
    let model = load_causal_lm(&config.model.path, &device)?;
    let pad_id = model
        .config()
        .pad_token_id
        .or(model.config().eos_token_ids.first().copied())
        .unwrap_or(0);
    let (batches, mut summary) = build_batches(config, pad_id)?;
    let loop_config = &config.train;
    let accum = loop_config.grad_accum.max(1);
    let steps_per_epoch = batches.len().div_ceil(accum);
    let total = steps_per_epoch * config.batching.epochs;
    tracing::info!(
        blocks = summary.blocks,
        batches = batches.len(),
        steps = total,
        "SFT data ready"
    );
    std::fs::create_dir_all(&config.output)
        .map_err(|e| SftError::Setup(format!("{}: {e}", config.output.display())))?;
    let mut metrics = JsonlWriter::create(config.output.join("metrics.jsonl"))?;
    let mut write_error = None;
    let result = train(
        model,
        loop_config,
        total,
        // Micro-batch k of the run; epochs wrap around the batch list.
        |step, micro| batches[(step * accum + micro) % batches.len()].clone(),
        |m, b| sft_loss(m, b, &device),
        |s| {
            if summary.first_loss.is_nan() {
                summary.first_loss = s.loss;
            }
            summary.last_loss = s.loss;
            summary.steps = s.step;
            if let Err(e) = metrics.write(s) {
                write_error.get_or_insert(e);
            }
            on_step(s, total);
        },
    );
    let model = match result {
        Ok(m) => m,
        Err((_, e)) => return Err(e.into()),
    };
    if let Some(e) = write_error {
        return Err(e.into());
    }
    let out = config.output.join("model");
    save_causal_lm(&model, &out, SaveOptions::default())?;
    let tok_src = config.model.tokenizer_path();
    std::fs::copy(&tok_src, out.join("tokenizer.json"))
        .map_err(|e| SftError::Setup(format!("{}: {e}", tok_src.display())))?;
    Ok(summary)
}
