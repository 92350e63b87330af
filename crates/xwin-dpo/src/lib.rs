//! Direct preference optimisation (paper step 4): (top-1, rank-r) pairs of Xwin-Set, with r
//! calibrated to the policy's own RM score, or any preference pairs; TRL's loss family on
//! fused sequence log-probabilities; reference log-probabilities computed once and persisted;
//! trained through `xwin-train`'s loop.

pub mod calibrate;
pub mod data;
pub mod loss;
pub mod objective;
pub mod reference;

pub use calibrate::{CalibrateSection, Calibration, calibrate, closest_rank};
pub use data::{Dropped, TokenPair, dpo_batches, tokenize_pairs, xwin_set_pairs};
pub use loss::{LossConfig, LossType, PairLogps, PairLoss, pair_loss};
pub use objective::{DpoBatch, DpoObjective};
pub use reference::{ReferenceByKey, ReferenceIdentity, ReferenceLogps, reference_logps};

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use xwin_data::{ChatTemplate, ReadOptions, load_tokenizer};
use xwin_model::{load_causal_lm, parse_device};
use xwin_rm::PairFormat;
use xwin_train::{
    CheckpointPolicy, EpochPlan, LoopConfig, ModelSection, StageDir, StageError, StepMetrics,
    StepShape, TrainError, base_fingerprint, export_model, run_fingerprint, train,
};

/// Errors of the DPO stage.
#[derive(Debug, thiserror::Error)]
pub enum DpoError {
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error(transparent)]
    Model(#[from] xwin_model::ModelError),
    #[error(transparent)]
    Train(#[from] TrainError),
    #[error(transparent)]
    Stage(#[from] StageError),
    #[error(transparent)]
    Rm(#[from] xwin_rm::RmError),
    #[error(transparent)]
    Rs(#[from] xwin_rs::RsError),
    #[error("{origin}: pair {id}: {message}")]
    Pair {
        origin: String,
        id: String,
        message: String,
    },
    #[error("{0}")]
    Setup(String),
}

/// The `[reference]` table: the frozen model the log-ratios are taken against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceSection {
    /// Defaults to the policy's starting point (`model.path`), as the paper does.
    pub path: Option<PathBuf>,
    /// Write the log-probabilities to `OUTPUT/reference-logps.jsonl` (reused by reruns);
    /// `false` computes them in memory at the start of every run.
    pub persist: bool,
    /// Pairs per reference forward.
    pub pairs_per_batch: usize,
    /// A reference artifact computed elsewhere (`reference-logps.jsonl` of another run or
    /// machine), used as it is: no reference model is loaded, and a pair it lacks is an error.
    pub logps: Option<PathBuf>,
}

impl Default for ReferenceSection {
    fn default() -> Self {
        Self {
            path: None,
            persist: true,
            pairs_per_batch: 16,
            logps: None,
        }
    }
}

/// The `[data]` table: an Xwin-Set, or preference pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// Xwin-Set JSONL (`xwin-rs`): chosen = top-1, rejected = `select` / `[calibrate]`'s rank...
    #[serde(default)]
    pub xwin_set: Option<PathBuf>,
    /// ...or preference pairs: Xwin-Pair, TRL `{prompt, chosen, rejected}` or HH-RLHF.
    #[serde(default)]
    pub pairs: Option<PathBuf>,
    #[serde(default = "preference")]
    pub format: PairFormat,
    #[serde(default = "xwin_train::stage::defaults::template")]
    pub template: ChatTemplate,
    #[serde(default = "xwin_train::stage::defaults::max_len")]
    pub max_len: usize,
    /// Prompts held out for evaluation (reward accuracy and margins).
    #[serde(default)]
    pub eval_fraction: f64,
    #[serde(default)]
    pub skip_bad: bool,
}

fn preference() -> PairFormat {
    PairFormat::Preference
}

/// The `[select]` table: a fixed rejected rank (else `[calibrate]` chooses it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectSection {
    #[serde(default)]
    pub rejected_rank: Option<usize>,
}

/// The `[batching]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSection {
    pub epochs: usize,
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

/// A whole DPO run, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpoConfig {
    /// The policy to train (the RS model in the paper).
    pub model: ModelSection,
    #[serde(default)]
    pub reference: ReferenceSection,
    pub data: DataSection,
    #[serde(default)]
    pub select: SelectSection,
    #[serde(default)]
    pub calibrate: Option<CalibrateSection>,
    #[serde(default)]
    pub loss: LossConfig,
    pub batching: BatchingSection,
    pub train: LoopConfig,
    #[serde(default)]
    pub checkpoint: Option<CheckpointPolicy>,
    pub output: PathBuf,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DpoSummary {
    pub train_pairs: usize,
    pub eval_pairs: usize,
    pub dropped: Dropped,
    pub rejected_rank: Option<usize>,
    pub calibration: Option<Calibration>,
    /// Reference log-probabilities computed by this run (the rest were read back).
    pub reference_computed: usize,
    pub steps: usize,
    pub resumed_from: Option<usize>,
    pub first_loss: f32,
    pub last_loss: f32,
    /// Held-out metrics before the first step and after the last (when pairs are held out).
    pub eval_before: Option<BTreeMap<String, f64>>,
    pub eval_after: Option<BTreeMap<String, f64>>,
}

/// The text pairs of a run, and the rank and calibration that chose them.
type TextPairs = (Vec<xwin_rm::TextPair>, Option<usize>, Option<Calibration>);

/// The text pairs of a run, and the rank and calibration that chose them. Calibration loads
/// the policy frozen on `inference` into `frozen_policy`, where the reference can reuse it.
fn text_pairs(
    config: &DpoConfig,
    read: ReadOptions,
    tokenizer: &tokenizers::Tokenizer,
    inference: &burn::tensor::Device,
    frozen_policy: &mut Option<xwin_model::LlamaForCausalLM>,
) -> Result<TextPairs, DpoError> {
    match (&config.data.xwin_set, &config.data.pairs) {
        (Some(set), None) => {
            let (rank, calibration) = match (config.select.rejected_rank, &config.calibrate) {
                (Some(rank), _) => (rank, None),
                (None, Some(section)) => {
                    let stats = xwin_rs::rank_stats(set, None)?;
                    let policy = load_causal_lm(&config.model.path, inference)?;
                    let c = calibrate(
                        &policy,
                        &config.model.path,
                        tokenizer,
                        config.data.template,
                        section,
                        &stats,
                        &config.output,
                        inference,
                    )?;
                    *frozen_policy = Some(policy);
                    tracing::info!(
                        policy_mean = c.policy_mean,
                        rank = c.rank,
                        "calibrated rejected rank: {:?}",
                        c.mean_by_rank
                    );
                    (c.rank, Some(c))
                }
                (None, None) => {
                    return Err(DpoError::Setup(
                        "an Xwin-Set needs select.rejected_rank or a [calibrate] table".into(),
                    ));
                }
            };
            Ok((xwin_set_pairs(set, rank, read)?, Some(rank), calibration))
        }
        (None, Some(pairs)) => Ok((
            xwin_rm::read_pairs(pairs, config.data.format, read)?.0,
            None,
            None,
        )),
        _ => Err(DpoError::Setup(
            "[data] needs exactly one of `xwin_set` and `pairs`".into(),
        )),
    }
}

/// The log-probabilities of an artifact made elsewhere.
fn read_reference(path: &std::path::Path) -> Result<ReferenceByKey, DpoError> {
    let mut out = HashMap::new();
    xwin_data::for_each_record(path, ReadOptions::default(), |r: ReferenceLogps| {
        out.insert(r.key, (r.chosen, r.rejected));
    })?;
    Ok(out)
}

/// A run's held-out metrics as a map (loss included).
fn eval_map(e: &xwin_train::Evaluation) -> BTreeMap<String, f64> {
    let mut m: BTreeMap<String, f64> = e.metrics.iter().cloned().collect();
    if let Some(l) = e.loss {
        m.insert("loss".into(), l);
    }
    m
}

/// Trains the policy with DPO, resuming from the newest checkpoint of the same run; reuses
/// the persisted reference log-probabilities; exports to `OUTPUT/model`.
pub fn run_dpo(
    config: &DpoConfig,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<DpoSummary, DpoError> {
    config.loss.check().map_err(DpoError::Setup)?;
    let out = StageDir::open(&config.output)?;
    let read = ReadOptions {
        skip_bad: config.data.skip_bad,
    };
    let tokenizer = load_tokenizer(&config.model.tokenizer_path())?;
    let inference = parse_device(&config.model.device)?;
    let mut frozen_policy = None;
    let (pairs, rejected_rank, calibration) =
        text_pairs(config, read, &tokenizer, &inference, &mut frozen_policy)?;
    let (train_text, eval_text) =
        data::split(pairs, config.data.eval_fraction, config.batching.seed);
    let template = config.data.template;
    let (max, skip) = (config.data.max_len, config.data.skip_bad);
    let (train_pairs, mut dropped) = tokenize_pairs(&train_text, template, &tokenizer, max, skip)?;
    let (eval_pairs, d) = tokenize_pairs(&eval_text, template, &tokenizer, max, skip)?;
    dropped.bad += d.bad;
    dropped.too_long += d.too_long;
    if train_pairs.is_empty() {
        return Err(DpoError::Setup("no usable training pairs".into()));
    }

    // Reference log-probabilities: one frozen forward per pair, then the model is dropped.
    let reference = ModelSection {
        path: config
            .reference
            .path
            .clone()
            .unwrap_or_else(|| config.model.path.clone()),
        tokenizer: Some(config.model.tokenizer_path()),
        device: config.model.device.clone(),
    };
    let identity = ReferenceIdentity {
        model: base_fingerprint(&reference)?,
        template: format!("{template:?}"),
        precision: config.train.precision,
    };
    let (ref_logps, reference_computed) = match &config.reference.logps {
        Some(path) => (read_reference(path)?, 0),
        None => {
            // The default reference is the starting policy: reuse it if calibration loaded it.
            let ref_model = match frozen_policy.take() {
                Some(policy) if reference.path == config.model.path => policy,
                _ => load_causal_lm(&reference.path, &inference)?,
            }
            .with_precision(config.train.precision);
            let all: Vec<&TokenPair> = train_pairs.iter().chain(&eval_pairs).collect();
            // Not persisted: computed in memory, nothing written.
            let artifact = config
                .reference
                .persist
                .then(|| out.root().join("reference-logps.jsonl"));
            reference_logps(
                &ref_model,
                &identity,
                &all,
                artifact.as_deref(),
                config.reference.pairs_per_batch,
                config.batching.max_batch_tokens,
                &inference,
                |n| tracing::debug!(pairs = n, "reference log-probabilities"),
            )?
        }
    };

    let device = parse_device(&config.model.device)?.autodiff();
    let model = load_causal_lm(&config.model.path, &device)?.with_precision(config.train.precision);
    let pad = model.config().pad_token_id.unwrap_or(0);
    let b = &config.batching;
    let batched = |pairs: &[TokenPair]| {
        dpo_batches(
            pairs,
            &ref_logps,
            b.pairs_per_batch,
            b.max_batch_tokens,
            xwin_data::Padding {
                id: pad,
                multiple: b.pad_to_multiple_of,
            },
            b.seed,
        )
    };
    let (batches, eval) = (batched(&train_pairs)?, batched(&eval_pairs)?);
    let plan = EpochPlan::new(batches.len(), config.train.grad_accum, b.epochs, b.seed);
    StepShape::lm(
        batches.iter().map(|b| (&b.ids[..], &b.mask[..])),
        config.train.grad_accum,
    )
    .log_estimate(model.config(), &config.train, &device);
    let run = out.run(
        plan.total_steps(),
        &device,
        config.checkpoint,
        run_fingerprint(
            train_pairs.iter().map(|p| p.key().into_bytes()),
            &config.model,
            &(&config.batching, &config.loss, &identity),
        )?,
    );
    tracing::info!(
        train_pairs = train_pairs.len(),
        eval_pairs = eval_pairs.len(),
        steps = run.total_steps,
        reference_computed,
        "DPO data ready"
    );
    let mut objective = DpoObjective::new(batches, eval, plan, config.loss, device.clone());
    let eval_before = xwin_train::Objective::evaluate(&mut objective, &model)
        .map_err(DpoError::Model)?
        .as_ref()
        .map(eval_map);
    let mut summary = DpoSummary {
        train_pairs: train_pairs.len(),
        eval_pairs: eval_pairs.len(),
        dropped,
        rejected_rank,
        calibration,
        reference_computed,
        steps: 0,
        resumed_from: None,
        first_loss: f32::NAN,
        last_loss: f32::NAN,
        eval_before,
        eval_after: None,
    };
    let trained = train(model, &config.train, &run, &mut objective, |s| {
        if summary.first_loss.is_nan() {
            summary.first_loss = s.loss;
        }
        summary.last_loss = s.loss;
        summary.steps = s.step;
        on_step(s);
    })
    .map_err(|(_, e)| e)?;
    summary.resumed_from = trained.resumed_from;
    summary.eval_after = xwin_train::Objective::evaluate(&mut objective, &trained.model)?
        .as_ref()
        .map(eval_map);
    export_model(&trained.model, &config.model, template, &out.model())?;
    Ok(summary)
}
