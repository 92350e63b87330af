//! The reward model stage (paper step 2c): Xwin-Pair judgments (or any preference pairs) in,
//! a `LlamaForSequenceClassification` reward model out, trained with the Bradley–Terry loss
//! through `xwin-train`'s one loop, evaluated by accuracy per judge rating (Table 3).

pub mod data;
pub mod eval;
pub mod objective;
pub mod score;

pub use data::{Dropped, PairFormat, TextPair, TokenPair, read_pairs, tokenize_pairs};
pub use eval::{Bucket, EvalReport, Spread, evaluate};
pub use objective::{LossConfig, PairBatch, RmObjective, bradley_terry, pair_batches};
pub use score::{ScoreOptions, ScoreSummary, score_samples};

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use xwin_data::{ChatTemplate, ReadOptions, load_tokenizer};
use xwin_model::{
    Architecture, LlamaForReward, SaveOptions, load_causal_lm, load_reward_model, parse_device,
    save_reward_model,
};
use xwin_train::{
    CheckpointPolicy, EpochPlan, LoopConfig, ModelSection, StageDir, StageError, StepMetrics,
    StepShape, TrainError, export_files, run_fingerprint, train,
};

/// Errors of the reward-model stage.
#[derive(Debug, thiserror::Error)]
pub enum RmError {
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error(transparent)]
    Model(#[from] xwin_model::ModelError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error("{origin}: pair {id}: {message}")]
    Pair {
        origin: String,
        id: String,
        message: String,
    },
    #[error("{0}")]
    Setup(String),
}

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    pub train: PathBuf,
    #[serde(default = "xwin_pair")]
    pub format: PairFormat,
    /// Held-out pairs (a separate file)...
    #[serde(default)]
    pub eval: Option<PathBuf>,
    /// ...or this fraction of the prompts of `train`, by a stable hash.
    #[serde(default)]
    pub eval_fraction: f64,
    #[serde(default = "xwin_train::stage::defaults::template")]
    pub template: ChatTemplate,
    /// Longest side of a pair in tokens; longer pairs are dropped and counted.
    #[serde(default = "xwin_train::stage::defaults::max_len")]
    pub max_len: usize,
    #[serde(default)]
    pub skip_bad: bool,
}

fn xwin_pair() -> PairFormat {
    PairFormat::XwinPair
}

/// The `[batching]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    pub epochs: usize,
    /// Pairs per micro-batch (each pair is two rows).
    pub pairs_per_batch: usize,
    #[serde(default = "xwin_train::stage::defaults::max_batch_tokens")]
    pub max_batch_tokens: usize,
    #[serde(default)]
    pub seed: u64,
    /// Pads each micro-batch's length up to a multiple of this (as SFT's
    /// `batching.pad_to_multiple_of`: one GPU kernel compilation per bucket of lengths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pad_to_multiple_of: Option<usize>,
}

/// The `[head]` table: how a fresh score head starts when the model is a policy.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeadSection {
    /// Standard deviation of the fresh head (HF's `initializer_range`).
    pub std: f64,
    /// Seeds the head.
    pub seed: u64,
    /// Padding id when the policy has none (HF pools at the last non-pad token, so it must
    /// not be EOS); 0 is `<unk>` in Llama tokenizers.
    pub pad_token_id: u32,
}

impl Default for HeadSection {
    fn default() -> Self {
        Self {
            std: 0.02,
            seed: 0,
            pad_token_id: 0,
        }
    }
}

/// A whole reward-model run, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RmConfig {
    /// The SFT policy (a fresh head is added) or a reward model to continue.
    pub model: ModelSection,
    pub data: DataSection,
    pub batching: BatchingSection,
    #[serde(default)]
    pub loss: LossConfig,
    #[serde(default)]
    pub head: HeadSection,
    pub train: LoopConfig,
    #[serde(default)]
    pub checkpoint: Option<CheckpointPolicy>,
    /// `metrics.jsonl`, checkpoints, `model/` (HF layout) and `eval.json`.
    pub output: PathBuf,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RmSummary {
    pub train_pairs: usize,
    pub eval_pairs: usize,
    pub skipped_records: usize,
    pub dropped: Dropped,
    pub steps: usize,
    pub resumed_from: Option<usize>,
    pub first_loss: f32,
    pub last_loss: f32,
    /// Held-out evaluation of the final model.
    pub eval: Option<EvalReport>,
}

/// The model a run starts from: a reward model as it is, or a policy with a fresh head.
pub fn starting_model(
    model: &ModelSection,
    head: &HeadSection,
    device: &burn::tensor::Device,
) -> Result<LlamaForReward, RmError> {
    if Architecture::of_dir(&model.path) == Architecture::Reward {
        return Ok(load_reward_model(&model.path, device)?);
    }
    let policy = load_causal_lm(&model.path, device)?;
    device.seed(head.seed);
    Ok(LlamaForReward::from_policy(
        policy,
        head.std,
        head.pad_token_id,
    )?)
}

/// Tokenized training and held-out pairs, the tokenizer checked against the model.
fn load_pairs(
    config: &RmConfig,
    model: &LlamaForReward,
) -> Result<(Vec<TokenPair>, Vec<TokenPair>, usize, Dropped), RmError> {
    let tokenizer_path = config.model.tokenizer_path();
    let tokenizer = load_tokenizer(&tokenizer_path)?;
    let vocab = model.config().vocab_size;
    if tokenizer.get_vocab_size(true) > vocab {
        return Err(RmError::Setup(format!(
            "{}: the tokenizer has {} tokens, the model's vocabulary {vocab}: they do not belong together",
            tokenizer_path.display(),
            tokenizer.get_vocab_size(true)
        )));
    }
    let eos = model.config().eos_token_ids.first().copied().unwrap_or(2);
    let read = ReadOptions {
        skip_bad: config.data.skip_bad,
    };
    let (pairs, mut skipped) = read_pairs(&config.data.train, config.data.format, read)?;
    let (train_text, mut eval_text) =
        data::split(pairs, config.data.eval_fraction, config.batching.seed);
    if let Some(eval) = &config.data.eval {
        let (more, s) = read_pairs(eval, config.data.format, read)?;
        eval_text.extend(more);
        skipped += s;
    }
    let template = config.data.template;
    let max = config.data.max_len;
    let skip = config.data.skip_bad;
    let (train, mut dropped) = tokenize_pairs(&train_text, template, &tokenizer, eos, max, skip)?;
    let (eval, d) = tokenize_pairs(&eval_text, template, &tokenizer, eos, max, skip)?;
    dropped.empty += d.empty;
    dropped.identical += d.identical;
    dropped.too_long += d.too_long;
    if train.is_empty() {
        return Err(RmError::Setup(format!(
            "{}: no usable training pairs",
            config.data.train.display()
        )));
    }
    Ok((train, eval, skipped, dropped))
}

/// One pair's identity bytes: both sides' ids and the rating.
fn pair_bytes(p: &TokenPair) -> Vec<u8> {
    p.chosen
        .iter()
        .chain([&u32::MAX])
        .chain(&p.rejected)
        .flat_map(|t| t.to_le_bytes())
        .chain(p.rating.map_or("-", |r| r.as_str()).bytes())
        .collect()
}

/// Trains the reward model, resuming from the newest checkpoint of the same run; writes the
/// model in HF layout and the held-out evaluation (`eval.json`).
pub fn run_rm(
    config: &RmConfig,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<RmSummary, RmError> {
    let out = StageDir::open(&config.output)?;
    let device = parse_device(&config.model.device)?.autodiff();
    let model = starting_model(&config.model, &config.head, &device)?;
    let (train_pairs, eval_pairs, skipped, dropped) = load_pairs(config, &model)?;
    let pad = model
        .config()
        .pad_token_id
        .unwrap_or(config.head.pad_token_id);
    let b = &config.batching;
    let padding = xwin_data::Padding {
        id: pad,
        multiple: b.pad_to_multiple_of,
    };
    let batched = |pairs| {
        pair_batches(
            pairs,
            b.pairs_per_batch,
            b.max_batch_tokens,
            padding,
            &config.loss,
            b.seed,
        )
    };
    let (batches, eval) = (batched(&train_pairs), batched(&eval_pairs));
    let plan = EpochPlan::new(batches.len(), config.train.grad_accum, b.epochs, b.seed);
    StepShape::score(batches.iter().map(|b| &b.ids[..]), config.train.grad_accum).log_estimate(
        model.config(),
        &config.train,
        &device,
    );
    let run = out.run(
        plan.total_steps(),
        &device,
        config.checkpoint,
        run_fingerprint(
            train_pairs.iter().map(pair_bytes),
            &config.model,
            &(&config.batching, &config.loss, &config.head),
        )?,
    );
    tracing::info!(
        train_pairs = train_pairs.len(),
        eval_pairs = eval_pairs.len(),
        steps = run.total_steps,
        "reward model data ready"
    );
    let mut summary = RmSummary {
        train_pairs: train_pairs.len(),
        eval_pairs: eval_pairs.len(),
        skipped_records: skipped,
        dropped,
        steps: 0,
        resumed_from: None,
        first_loss: f32::NAN,
        last_loss: f32::NAN,
        eval: None,
    };
    let center = config.loss.center;
    let mut objective = RmObjective::new(batches, eval.clone(), plan, center, device.clone());
    // With LoRA the fresh score head trains in full (PEFT's modules_to_save for SEQ_CLS).
    let loop_config = LoopConfig {
        lora: config.train.lora.clone().map(|l| l.saving("score")),
        ..config.train.clone()
    };
    let model = model.with_precision(config.train.precision);
    let trained = train(model, &loop_config, &run, &mut objective, |s| {
        if summary.first_loss.is_nan() {
            summary.first_loss = s.loss;
        }
        summary.last_loss = s.loss;
        summary.steps = s.step;
        on_step(s);
    })
    .map_err(|(_, e)| e)?;
    summary.resumed_from = trained.resumed_from;
    if !eval.is_empty() {
        let report = evaluate(&trained.model, &eval, center, &device)?;
        let path = out.root().join("eval.json");
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        std::fs::write(&path, json).map_err(|e| xwin_data::DataError::io(&path, e))?;
        summary.eval = Some(report);
    }
    let files = export_files(trained.model.config(), &config.model, config.data.template)?;
    save_reward_model(&trained.model, out.model(), SaveOptions::default(), &files)?;
    Ok(summary)
}
