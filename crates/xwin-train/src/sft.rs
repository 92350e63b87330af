//! Supervised finetuning (paper step 1): ShareGPT conversations through the Vicuna template,
//! loss on assistant tokens only, split into blocks, trained by the shared loop, exported to
//! HF layout.

use crate::checkpoint::CheckpointPolicy;
use crate::epochs::EpochPlan;
use crate::memory::StepShape;
use crate::objective::{Evaluation, MicroLoss, Objective, recomputed_loss};
use crate::sft_loss::{num_targets, sft_loss_sum};
pub use crate::stage::ModelSection;
use crate::stage::{StageDir, StageError, defaults, export_model, run_fingerprint};
use crate::trainer::{LoopConfig, StepMetrics, TrainError, train};
use burn::module::Module;
use burn::tensor::{Device, Gradients};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xwin_data::{
    Batch, ChatTemplate, PadSide, Padding, ReadOptions, TokenizedConversation, TrainOn,
    for_each_conversation, is_validation, length_buckets, load_tokenizer, pad_batch_to,
    split_into_blocks, tokenize,
};
use xwin_model::{BatchLayout, LlamaForCausalLM, lm_head_nll_sum, load_causal_lm, parse_device};

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// ShareGPT / Alpaca / HH-RLHF file.
    pub train: PathBuf,
    #[serde(default = "defaults::template")]
    pub template: ChatTemplate,
    #[serde(default = "defaults::max_len")]
    pub max_len: usize,
    #[serde(default)]
    pub skip_bad: bool,
    /// Held-out conversations for `train.eval_every` (a separate file)...
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// ...or this fraction of `train`, chosen by a stable hash of each conversation.
    #[serde(default)]
    pub eval_fraction: f64,
}

/// The `[batching]` table: passes over the data and micro-batch shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    pub epochs: usize,
    pub micro_batch_size: usize,
    /// Most padded tokens in one micro-batch.
    #[serde(default = "defaults::max_batch_tokens")]
    pub max_batch_tokens: usize,
    /// Seeds each epoch's order of the length buckets (and the held-out split).
    #[serde(default)]
    pub seed: u64,
    /// Pads each micro-batch's length up to a multiple of this (HF's `pad_to_multiple_of`),
    /// so that a GPU compiles kernels once per bucket of lengths, not once per length; padding
    /// changes no result. Off by default: on the CPU it only adds work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<usize>,
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
    /// Checkpoints in `output/checkpoints`; a rerun resumes from the newest.
    #[serde(default)]
    pub checkpoint: Option<CheckpointPolicy>,
    /// Output directory: `metrics.jsonl`, checkpoints and the final model in HF layout.
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
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("{0}")]
    Setup(String),
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SftSummary {
    pub conversations: usize,
    /// Held-out conversations (not trained on).
    pub eval_conversations: usize,
    pub skipped_records: usize,
    pub blocks: usize,
    pub truncated_rounds: usize,
    pub steps: usize,
    /// Step of the checkpoint this run continued from.
    pub resumed_from: Option<usize>,
    pub first_loss: f32,
    pub last_loss: f32,
    pub last_eval_loss: Option<f64>,
}

/// Tokenized blocks of one file; with a fraction, those of conversations hashed to
/// validation go to the second list.
struct Tokenized {
    train: Vec<TokenizedConversation>,
    held_out: Vec<TokenizedConversation>,
    conversations: usize,
    held_out_conversations: usize,
    skipped: usize,
    truncated_rounds: usize,
}

fn tokenize_file(
    config: &SftConfig,
    path: &Path,
    tokenizer: &dyn xwin_data::TextEncoder,
    held_out_fraction: f64,
) -> Result<Tokenized, SftError> {
    let mut out = Tokenized {
        train: Vec::new(),
        held_out: Vec::new(),
        conversations: 0,
        held_out_conversations: 0,
        skipped: 0,
        truncated_rounds: 0,
    };
    let mut failure = None;
    let report = for_each_conversation(
        path,
        ReadOptions {
            skip_bad: config.data.skip_bad,
        },
        |c| {
            if failure.is_some() {
                return;
            }
            let held_out = held_out_fraction > 0.0
                && is_validation(&c, held_out_fraction, config.batching.seed);
            let result = tokenize(config.data.template, &c, tokenizer, TrainOn::AllAssistant)
                .and_then(|t| split_into_blocks(&t, config.data.max_len));
            match result {
                Ok(b) => {
                    out.truncated_rounds += b.truncated_rounds;
                    let blocks = b.blocks.into_iter().filter(|b| b.trainable() > 0);
                    if held_out {
                        out.held_out_conversations += 1;
                        out.held_out.extend(blocks);
                    } else {
                        out.conversations += 1;
                        out.train.extend(blocks);
                    }
                }
                Err(e) => failure = Some(e),
            }
        },
    )?;
    if let Some(e) = failure {
        return Err(e.into());
    }
    out.skipped = report.skipped;
    Ok(out)
}

/// Length-bucketed micro-batches of `blocks`, right-padded with `pad_id`.
pub fn micro_batches(
    blocks: &[TokenizedConversation],
    batching: &BatchingSection,
    pad_id: u32,
) -> Vec<Batch> {
    let lengths: Vec<usize> = blocks.iter().map(TokenizedConversation::len).collect();
    length_buckets(
        &lengths,
        batching.micro_batch_size,
        batching.max_batch_tokens,
        batching.seed,
    )
    .iter()
    .map(|b| {
        pad_batch_to(
            &b.iter().map(|&i| &blocks[i]).collect::<Vec<_>>(),
            Padding {
                id: pad_id,
                multiple: batching.pad_to_multiple_of,
            },
            PadSide::Right,
        )
    })
    .collect()
}

/// Tokenized training and held-out blocks of a run's data, and the summary's data counts.
pub fn tokenize_data(
    config: &SftConfig,
) -> Result<
    (
        Vec<TokenizedConversation>,
        Vec<TokenizedConversation>,
        SftSummary,
    ),
    SftError,
> {
    let tokenizer = load_tokenizer(&config.model.tokenizer_path())?;
    let fraction = config.data.eval_fraction;
    crate::stage::check_eval_fraction(fraction).map_err(SftError::Setup)?;
    let mut data = tokenize_file(config, &config.data.train, &tokenizer, fraction)?;
    if let Some(eval) = &config.data.eval {
        let e = tokenize_file(config, eval, &tokenizer, 0.0)?;
        data.held_out.extend(e.train);
        data.held_out_conversations += e.conversations;
        data.skipped += e.skipped;
    }
    if data.train.is_empty() {
        return Err(SftError::Setup(format!(
            "{}: no trainable conversations",
            config.data.train.display()
        )));
    }
    let summary = SftSummary {
        conversations: data.conversations,
        eval_conversations: data.held_out_conversations,
        skipped_records: data.skipped,
        blocks: data.train.len(),
        truncated_rounds: data.truncated_rounds,
        steps: 0,
        resumed_from: None,
        first_loss: f32::NAN,
        last_loss: f32::NAN,
        last_eval_loss: None,
    };
    Ok((data.train, data.held_out, summary))
}

/// Training and evaluation micro-batches as a run builds them (length-bucketed, padded with
/// `pad_id`), and the summary's data counts.
pub fn build_batches(
    config: &SftConfig,
    pad_id: u32,
) -> Result<(Vec<Batch>, Vec<Batch>, SftSummary), SftError> {
    let (train, held_out, summary) = tokenize_data(config)?;
    Ok((
        micro_batches(&train, &config.batching, pad_id),
        micro_batches(&held_out, &config.batching, pad_id),
        summary,
    ))
}

/// SFT as an [`Objective`]: next-token loss on the masked tokens, every trained token of an
/// optimizer step weighted equally; epochs as [`EpochPlan`] lays them out. Built from padded
/// micro-batches, so other stages (RS) can feed it tokenized data of their own.
pub struct SftObjective {
    batches: Vec<Batch>,
    eval: Vec<Batch>,
    plan: EpochPlan,
    device: Device,
}

impl SftObjective {
    /// `batches` for training (visited per `plan`), `eval` held out, on `device`.
    pub fn new(batches: Vec<Batch>, eval: Vec<Batch>, plan: EpochPlan, device: Device) -> Self {
        Self {
            batches,
            eval,
            plan,
            device,
        }
    }
}

impl Objective<LlamaForCausalLM> for SftObjective {
    type Batch = Batch;
    type Error = xwin_model::ModelError;

    fn micro_batch(&mut self, step: usize, micro: usize) -> Option<Batch> {
        let (_, index) = self.plan.locate(step, micro)?;
        self.batches.get(index).cloned()
    }

    fn items(&self, batch: &Batch) -> usize {
        num_targets(batch)
    }

    fn loss(&mut self, model: &LlamaForCausalLM, batch: &Batch) -> Result<MicroLoss, Self::Error> {
        sft_loss_sum(model, batch, &self.device).map(MicroLoss::new)
    }

    fn loss_recomputing_layers(
        &mut self,
        model: &LlamaForCausalLM,
        batch: &Batch,
        divisor: f64,
    ) -> Result<(MicroLoss, Vec<Gradients>), Self::Error> {
        let ids = model.ids_tensor(&batch.ids, &self.device)?;
        let layout = BatchLayout::from_attention_mask(&batch.attention)?;
        recomputed_loss(&model.model, ids, &layout, divisor, |hidden| {
            lm_head_nll_sum(model, hidden, &batch.ids, &batch.loss_mask).map(MicroLoss::new)
        })
    }

    fn tokens(&self, batch: &Batch) -> usize {
        batch.attention.iter().flatten().filter(|a| **a).count()
    }

    /// Token-weighted mean loss over the held-out batches, without building a graph.
    fn evaluate(&mut self, model: &LlamaForCausalLM) -> Result<Option<Evaluation>, Self::Error> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let frozen = model.valid();
        let device = self.device.clone().inner();
        let (mut sum, mut count) = (0.0f64, 0usize);
        for b in &self.eval {
            let loss = sft_loss_sum(&frozen, b, &device)?;
            sum += f64::from(loss.into_scalar::<f32>());
            count += num_targets(b);
        }
        Ok(Some(Evaluation {
            loss: Some(sum / count.max(1) as f64),
            metrics: Vec::new(),
        }))
    }
}

/// One batch's identity bytes: every id and mask bit.
fn batch_bytes(b: &Batch) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (ids, mask) in b.ids.iter().zip(&b.loss_mask) {
        bytes.extend(ids.iter().flat_map(|i| i.to_le_bytes()));
        bytes.extend(mask.iter().map(|m| u8::from(*m)));
        bytes.push(0xff);
    }
    bytes
}

/// What [`finetune`] trains and where: the parts of a stage config every policy finetune
/// (SFT, RS) shares.
#[derive(Debug, Clone, Copy)]
pub struct FinetuneRun<'a> {
    pub model: &'a ModelSection,
    pub template: ChatTemplate,
    /// The longest block the data was cut to; checked against the model's context.
    pub max_len: usize,
    pub batching: &'a BatchingSection,
    pub train: &'a LoopConfig,
    pub checkpoint: Option<CheckpointPolicy>,
    pub output: &'a Path,
}

/// What a finetune did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finetuned {
    pub steps: usize,
    pub resumed_from: Option<usize>,
    pub first_loss: f32,
    pub last_loss: f32,
    pub last_eval_loss: Option<f64>,
}

/// Trains the policy of `run.model` on tokenized blocks (loss where their masks say) with
/// the SFT objective, resuming from the newest checkpoint of the same run, and exports the
/// result to `output/model` in HF layout. `on_step` gets each step's metrics.
pub fn finetune(
    run: &FinetuneRun,
    train_blocks: &[TokenizedConversation],
    eval_blocks: &[TokenizedConversation],
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<Finetuned, SftError> {
    let out = StageDir::open(run.output)?;
    let device = parse_device(&run.model.device)?.autodiff();
    let model = load_causal_lm(&run.model.path, &device)?;
    let context = model.config().max_position_embeddings;
    if run.max_len > context {
        return Err(SftError::Setup(format!(
            "data.max_len = {} exceeds the model's context of {context} tokens \
             (max_position_embeddings in {})",
            run.max_len,
            run.model.path.join("config.json").display()
        )));
    }
    if train_blocks.is_empty() {
        return Err(SftError::Setup("no trainable examples".into()));
    }
    let pad_id = model
        .config()
        .pad_token_id
        .or(model.config().eos_token_ids.first().copied())
        .unwrap_or(0);
    let batches = micro_batches(train_blocks, run.batching, pad_id);
    let eval = micro_batches(eval_blocks, run.batching, pad_id);
    let plan = EpochPlan::new(
        batches.len(),
        run.train.grad_accum,
        run.batching.epochs,
        run.batching.seed,
    );
    let total = plan.total_steps();
    tracing::info!(
        blocks = train_blocks.len(),
        batches = batches.len(),
        eval_batches = eval.len(),
        steps = total,
        "finetuning data ready"
    );
    StepShape::lm(
        batches.iter().map(|b| (&b.ids[..], &b.loss_mask[..])),
        run.train.grad_accum,
    )
    .log_estimate(model.config(), run.train, &device);
    let loop_run = out.run(
        total,
        &device,
        run.checkpoint,
        run_fingerprint(batches.iter().map(batch_bytes), run.model, run.batching)?,
    );
    let mut done = Finetuned {
        steps: 0,
        resumed_from: None,
        first_loss: f32::NAN,
        last_loss: f32::NAN,
        last_eval_loss: None,
    };
    let mut objective = SftObjective::new(batches, eval, plan, device);
    let model = model.with_precision(run.train.precision);
    let trained = train(model, run.train, &loop_run, &mut objective, |s| {
        if done.first_loss.is_nan() {
            done.first_loss = s.loss;
        }
        done.last_loss = s.loss;
        done.steps = s.step;
        if s.eval_loss.is_some() {
            done.last_eval_loss = s.eval_loss;
        }
        on_step(s);
    })
    .map_err(|(_, e)| e)?;
    done.resumed_from = trained.resumed_from;
    export_model(&trained.model, run.model, run.template, &out.model())?;
    Ok(done)
}

/// Runs SFT, resuming from the newest checkpoint of the same run when there is one.
/// `on_step` gets each step's metrics (for progress).
pub fn run_sft(
    config: &SftConfig,
    on_step: impl FnMut(&StepMetrics),
) -> Result<SftSummary, SftError> {
    let (train_blocks, eval_blocks, mut summary) = tokenize_data(config)?;
    let run = FinetuneRun {
        model: &config.model,
        template: config.data.template,
        max_len: config.data.max_len,
        batching: &config.batching,
        train: &config.train,
        checkpoint: config.checkpoint,
        output: &config.output,
    };
    let done = finetune(&run, &train_blocks, &eval_blocks, on_step)?;
    summary.steps = done.steps;
    summary.resumed_from = done.resumed_from;
    summary.first_loss = done.first_loss;
    summary.last_loss = done.last_loss;
    summary.last_eval_loss = done.last_eval_loss;
    Ok(summary)
}
