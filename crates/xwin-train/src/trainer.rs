//! The one optimisation loop every stage uses: gradient accumulation to an effective batch,
//! global-norm clipping, AdamW, a learning-rate schedule, periodic evaluation, metrics as JSON
//! Lines, checkpoints with resume, and a stop on a non-finite loss. A stage supplies only an
//! [`Objective`]: its micro-batches, a loss for one, and optionally a held-out evaluation.

use crate::checkpoint::{
    CheckpointError, Checkpointing, LoopState, list_checkpoints, load_checkpoint, save_checkpoint,
};
use crate::lora::LoraConfig;
use crate::loss_scale::{LossScale, LossScaleConfig};
use crate::optim::{AdamWSettings, grad_square_sums};
use crate::schedule::{Schedule, Warmup};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xwin_data::JsonlWriter;
use xwin_model::Precision;

use crate::objective::{Evaluation, Objective};

/// Errors of the loop.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "step {step}: loss is {loss} (not finite); stopped with the parameters after {step} steps; {}",
        last_checkpoint.as_ref().map_or("no checkpoint was written".to_string(),
            |p| format!("last good checkpoint: {}", p.display()))
    )]
    NonFinite {
        step: usize,
        loss: f32,
        last_checkpoint: Option<PathBuf>,
    },
    #[error("objective failed at step {step}: {source}")]
    Objective {
        step: usize,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("step {step}: {what}")]
    EmptyStep { step: usize, what: &'static str },
    #[error("invalid training config: {0}")]
    Config(String),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("metrics: {0}")]
    Metrics(#[from] xwin_data::DataError),
}

impl TrainError {
    fn objective(step: usize, e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Objective {
            step,
            source: Box::new(e),
        }
    }
}

/// Optimisation settings shared by every stage (the `[train]` table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup: Warmup,
    /// Micro-batches per optimizer step (effective batch = micro-batch × this).
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
    #[serde(default)]
    pub adamw: AdamWSettings,
    /// Seeds the backend's random numbers, re-seeded every step from (seed, step) so that a
    /// resumed run draws what the uninterrupted one would have.
    #[serde(default)]
    pub seed: u64,
    /// Run the objective's evaluation every this many steps (and after the last).
    #[serde(default)]
    pub eval_every: Option<usize>,
    /// Train low-rank adapters instead of the weights (merged into them at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Precision of the matrix products (`"f32"`, `"bf16"`, `"f16"`); parameters, optimizer
    /// state and losses stay f32. Left out of the fingerprint when f32.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Dynamic loss scaling; f16 only, where it is on by default with GradScaler's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScaleConfig>,
    /// Activation checkpointing (HF's name): keep each decoder layer's input only and
    /// recompute the layer in the backward. The same gradients up to rounding, so left out of
    /// the fingerprint: a run may resume with it switched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradient_checkpointing: bool,
}

impl LoopConfig {
    /// The loss scaler's settings when the run scales its loss (f16), or why the table is
    /// refused.
    pub fn loss_scaling(&self) -> Result<Option<LossScaleConfig>, String> {
        match (self.precision, self.loss_scale) {
            (Precision::F16, scale) => {
                let scale = scale.unwrap_or_default();
                scale.check()?;
                Ok(Some(scale))
            }
            (other, Some(_)) => Err(format!(
                "train.loss_scale: only with precision = \"f16\" ({other} needs no loss scaling)"
            )),
            (_, None) => Ok(None),
        }
    }
}

fn one() -> usize {
    1
}

/// What one optimizer step did; one line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub total_steps: usize,
    /// Loss of the optimizer step: the sum over every loss item (trained token, pair) of its
    /// micro-batches divided by their number, as `transformers` ≥ 4.46 computes it with
    /// `num_items_in_batch`; comparable with the evaluation loss.
    pub loss: f32,
    /// Loss items in this step (what `loss` is averaged over).
    #[serde(default)]
    pub items: usize,
    pub lr: f64,
    /// Global gradient norm before clipping (unscaled); `null` in JSON on a skipped step.
    #[serde(deserialize_with = "nan_for_null_f64")]
    pub grad_norm: f64,
    /// f16: the loss scale this step ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// f16: the gradients overflowed, so the step was skipped (parameters unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Tokens in this step's micro-batches (as the objective counts them).
    pub tokens: usize,
    pub tokens_per_s: f64,
    /// Held-out loss, on steps where evaluation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// The objective's named metrics, averaged over the step's items like the loss. JSON has
    /// no NaN: a non-finite value is written as `null` and read back as NaN.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nan_for_null"
    )]
    pub metrics: BTreeMap<String, f64>,
    /// The evaluation's named metrics, on steps where evaluation ran.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nan_for_null"
    )]
    pub eval_metrics: BTreeMap<String, f64>,
}

/// Reads a number written as `null` (serde_json's form of a non-finite value) as NaN.
fn nan_for_null_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads a metrics map whose non-finite values were written as `null`.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// One run of the loop: its length and where its files go.
#[derive(Debug, Clone)]
pub struct Run {
    pub total_steps: usize,
    /// Device the model trains on (re-seeded every step).
    pub device: Device,
    pub checkpoints: Option<Checkpointing>,
    /// `metrics.jsonl`; on resume, lines after the checkpoint's step are dropped.
    pub metrics: Option<PathBuf>,
    /// Identity of the stage's data and settings; mixed with the loop config and step count
    /// so a checkpoint is only resumed by the run that wrote it.
    pub fingerprint: String,
}

impl Run {
    /// A run with no files: `total_steps` on `device`.
    pub fn in_memory(total_steps: usize, device: &Device) -> Self {
        Self {
            total_steps,
            device: device.clone(),
            checkpoints: None,
            metrics: None,
            fingerprint: String::new(),
        }
    }
}

/// A finished run.
#[derive(Debug)]
pub struct Trained<M> {
    pub model: M,
    /// Step of the checkpoint the run continued from.
    pub resumed_from: Option<usize>,
    /// The checkpoint written at the end.
    pub last_checkpoint: Option<PathBuf>,
}

/// Scales every gradient by `factor` (global-norm clipping).
fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    module.visit(&mut Scale { grads, factor });
}

/// Reads the step's micro-batch losses and the gradients' squared sums in one transfer;
/// returns the losses and the global norm (f64 sum of the f32 squared sums).
fn read_step(losses: Vec<Tensor<1>>, squares: Vec<Tensor<1>>) -> (Vec<f32>, f64) {
    let n = losses.len();
    let all: Vec<Tensor<1>> = losses.into_iter().chain(squares).collect();
    let values = Tensor::cat(all, 0)
        .try_into_vec_as::<f32>()
        .unwrap_or_default();
    if values.len() < n {
        return (vec![f32::NAN; n], f64::NAN);
    }
    let norm_sq: f64 = values[n..].iter().map(|&s| f64::from(s)).sum();
    (values[..n].to_vec(), norm_sq.sqrt())
}

/// A well-mixed seed for (seed, step).
fn step_seed(seed: u64, step: usize) -> u64 {
    xwin_data::stable_hash(&[seed.to_le_bytes(), (step as u64).to_le_bytes()].concat())
}

fn fingerprint(config: &LoopConfig, run: &Run) -> String {
    // eval_every does not change the trajectory, so it may differ between the two halves.
    let trajectory = LoopConfig {
        eval_every: None,
        gradient_checkpointing: false,
        ..config.clone()
    };
    let text = format!(
        "{}|{}|{}",
        serde_json::to_string(&trajectory).unwrap_or_default(),
        run.total_steps,
        run.fingerprint
    );
    format!("{:016x}", xwin_data::stable_hash(text.as_bytes()))
}

/// Keeps the metrics lines up to `step` (the ones a resumed run does not redo).
fn truncate_metrics(path: &Path, step: usize) -> Result<(), TrainError> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| xwin_data::DataError::io(path, e))?;
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept).map_err(|e| xwin_data::DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| xwin_data::DataError::io(path, e))?;
    Ok(())
}

/// Runs the loop to `run.total_steps`, continuing from the newest checkpoint in the run's
/// checkpoint directory when there is one (a checkpoint of another run is an error).
/// `on_step` sees each step's metrics (progress bars, logs).
/// On failure the model is returned with the error: the parameters after the last good step.
pub fn train<M, O>(
    model: M,
    config: &LoopConfig,
    run: &Run,
    objective: &mut O,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<Trained<M>, (M, TrainError)>
where
    M: Module,
    O: Objective<M>,
{
    if config.grad_accum == 0 || config.lr <= 0.0 || !config.lr.is_finite() {
        return Err((
            model,
            TrainError::Config("grad_accum must be ≥ 1 and lr > 0".into()),
        ));
    }
    if let Some(c) = &run.checkpoints
        && c.policy.every == 0
    {
        return Err((
            model,
            TrainError::Config("checkpoint.every must be ≥ 1".into()),
        ));
    }
    if let Some(Err(e)) = config.lora.as_ref().map(LoraConfig::check) {
        return Err((model, TrainError::Config(e)));
    }
    let scaling = match config.loss_scaling() {
        Ok(s) => s,
        Err(e) => return Err((model, TrainError::Config(e))),
    };
    let mut scaler = scaling.as_ref().map(LossScale::new);
    let fingerprint = fingerprint(config, run);
    let mut optim = config.adamw.build();
    // Adapters before resuming: a checkpoint of a LoRA run holds them. Their initial draw
    // is seeded, so a fresh run starts the same every time.
    let mut model = match &config.lora {
        Some(lora) => {
            run.device.seed(config.seed);
            lora.apply(model)
        }
        None => model,
    };
    let mut start = 0;
    let mut resumed_from = None;
    let mut last_checkpoint = None;

    // Resume.
    if let Some(ckpt) = &run.checkpoints {
        let newest = match list_checkpoints(&ckpt.dir) {
            Ok(all) => all.into_iter().last(),
            Err(e) => return Err((model, e.into())),
        };
        if let Some((step, path)) = newest {
            let state = match crate::checkpoint::read_state(&path) {
                Ok(s) => s,
                Err(e) => return Err((model, e.into())),
            };
            if state.fingerprint != fingerprint {
                let e = CheckpointError::OtherRun {
                    path,
                    found: state.fingerprint,
                    expected: fingerprint,
                };
                return Err((model, e.into()));
            }
            // `load_checkpoint` consumes the model; keep a copy for the error path.
            let fallback = model.clone();
            match load_checkpoint(&path, model, optim) {
                Ok((m, o, _)) => {
                    model = m;
                    optim = o;
                }
                Err(e) => return Err((fallback, e.into())),
            }
            if scaler.is_some() {
                scaler = state.loss_scale.or(scaler);
            }
            tracing::info!(step, path = %path.display(), loss = state.loss, "resuming");
            start = step;
            resumed_from = Some(step);
            last_checkpoint = Some(path);
        }
    }
    let mut metrics = match &run.metrics {
        None => None,
        Some(path) => {
            let opened = if resumed_from.is_some() {
                truncate_metrics(path, start).and_then(|()| Ok(JsonlWriter::append(path)?))
            } else {
                JsonlWriter::create(path).map_err(TrainError::from)
            };
            match opened {
                Ok(w) => Some(w),
                Err(e) => return Err((model, e)),
            }
        }
    };

    for step in start..run.total_steps {
        let started = Instant::now();
        run.device.seed(step_seed(config.seed, step));
        // The whole window first: each micro-batch's gradient is scaled by the step's total
        // item count, which is known only once every micro-batch is in hand.
        let window: Vec<O::Batch> = (0..config.grad_accum)
            .map_while(|micro| objective.micro_batch(step, micro))
            .collect();
        if window.is_empty() {
            let e = TrainError::EmptyStep {
                step,
                what: "the objective gave no micro-batch",
            };
            return Err((model, e));
        }
        let items: usize = window.iter().map(|b| objective.items(b)).sum();
        let tokens: usize = window.iter().map(|b| objective.tokens(b)).sum();
        if items == 0 {
            let e = TrainError::EmptyStep {
                step,
                what: "no loss items (trained tokens or pairs) in the step's micro-batches",
            };
            return Err((model, e));
        }
        let mut accumulator = GradientsAccumulator::<M>::new();
        let scale = scaler.map_or(1.0, |s| s.scale);
        let mut losses = Vec::with_capacity(window.len());
        let mut metric_sums: BTreeMap<String, f64> = BTreeMap::new();
        // Each micro-batch's gradient is that of `sum · scale / items`: the scale is 1 but
        // with f16 loss scaling.
        let divisor = items as f64 / scale;
        let checkpointing = config.gradient_checkpointing;
        for batch in &window {
            let (out, passes) =
                match objective.loss_and_gradients(&model, batch, divisor, checkpointing) {
                    Ok(v) => v,
                    Err(e) => return Err((model, TrainError::objective(step, e))),
                };
            losses.push(out.sum);
            for (name, value) in out.metrics {
                *metric_sums.entry(name).or_default() += value;
            }
            for pass in passes {
                accumulator.accumulate(&model, GradientsParams::from_grads(pass, &model));
            }
        }
        let mut grads = accumulator.grads();
        if scale != 1.0 {
            scale_grads(&model, &mut grads, 1.0 / scale);
        }
        // One read from the device per step: the micro-batches' losses and each gradient's
        // squared sum together (a read per tensor stalls a GPU's queue every time).
        let (micro_losses, norm) = read_step(losses, grad_square_sums(&model, &grads));
        if let Some(&loss) = micro_losses.iter().find(|l| !l.is_finite()) {
            let e = TrainError::NonFinite {
                step,
                loss,
                last_checkpoint,
            };
            return Err((model, e));
        }
        let loss_sum: f64 = micro_losses.iter().map(|&l| f64::from(l)).sum();
        let overflowed = !norm.is_finite();
        if overflowed && scaler.is_none() {
            let e = TrainError::NonFinite {
                step,
                loss: f32::NAN,
                last_checkpoint,
            };
            return Err((model, e));
        }
        if let (Some(s), Some(c)) = (scaler.as_mut(), scaling.as_ref()) {
            s.update(overflowed, c);
            if overflowed {
                tracing::warn!(step = step + 1, scale, "f16 gradients overflowed: step skipped");
            }
        }
        if let Some(max) = config.max_grad_norm
            && norm > max
        {
            // torch's clip_grad_norm_: scale by max / (norm + 1e-6).
            scale_grads(&model, &mut grads, max / (norm + 1e-6));
        }
        let lr = config
            .schedule
            .lr(config.lr, step, run.total_steps, config.warmup);
        // Also at lr 0 (the first warm-up step): torch still advances Adam's moments and
        // step count, so skipping would lose this gradient and shift bias correction. An
        // overflowed f16 step is skipped whole, as GradScaler skips `optimizer.step()`.
        if !overflowed {
            model = optim.step(lr, model, grads);
        }
        let done = step + 1;
        let loss = (loss_sum / items as f64) as f32;
        let eval_due = config
            .eval_every
            .is_some_and(|k| k > 0 && (done % k == 0 || done == run.total_steps));
        let evaluation = if eval_due {
            match objective.evaluate(&model) {
                Ok(v) => v.unwrap_or_default(),
                Err(e) => return Err((model, TrainError::objective(step, e))),
            }
        } else {
            Evaluation::default()
        };
        let seconds = started.elapsed().as_secs_f64();
        let m = StepMetrics {
            step: done,
            total_steps: run.total_steps,
            loss,
            items,
            lr,
            grad_norm: norm,
            loss_scale: scaler.map(|_| scale),
            skipped: overflowed,
            tokens,
            tokens_per_s: if seconds > 0.0 {
                tokens as f64 / seconds
            } else {
                0.0
            },
            eval_loss: evaluation.loss,
            metrics: metric_sums
                .into_iter()
                .map(|(k, v)| (k, v / items as f64))
                .collect(),
            eval_metrics: evaluation.metrics.into_iter().collect(),
        };
        if let Some(w) = metrics.as_mut()
            && let Err(e) = w.write(&m)
        {
            return Err((model, e.into()));
        }
        on_step(&m);
        if let Some(ckpt) = &run.checkpoints
            && (done % ckpt.policy.every == 0 || done == run.total_steps)
        {
            let state = LoopState {
                step: done,
                total_steps: run.total_steps,
                fingerprint: fingerprint.clone(),
                loss,
                loss_scale: scaler,
            };
            match save_checkpoint(&ckpt.dir, &model, &optim, &state, ckpt.policy.keep_last) {
                Ok(path) => {
                    tracing::debug!(step = done, path = %path.display(), "checkpoint written");
                    last_checkpoint = Some(path);
                }
                Err(e) => return Err((model, e.into())),
            }
        }
    }
    // The adapters merged into the weights: what the stage exports is a plain model.
    let model = if config.lora.is_some() {
        model.materialize()
    } else {
        model
    };
    Ok(Trained {
        model,
        resumed_from,
        last_checkpoint,
    })
}
