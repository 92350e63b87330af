//! The one optimisation loop every stage uses: gradient accumulation to an effective batch,
//! global-norm clipping, AdamW, a learning-rate schedule, periodic evaluation, metrics as JSON
//! Lines, checkpoints with resume, and a stop on a non-finite loss. A stage supplies only an
//! [`Objective`]: its micro-batches, a loss for one, and optionally a held-out evaluation.

use crate::checkpoint::{
    CheckpointError, Checkpointing, LoopState, list_checkpoints, load_checkpoint, save_checkpoint,
};
use crate::lora::LoraConfig;
use crate::loss_scale::LossScale;
use crate::optim::{grad_square_sums, read_with_norm};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Device, Tensor};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;
use xwin_data::JsonlWriter;

pub use crate::loop_config::LoopConfig;
pub use crate::metrics::StepMetrics;
use crate::metrics::truncate_metrics;
use crate::objective::{Evaluation, Objective, accumulate_passes, plain_backward};

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
    // f16's loss scaler: its state and its settings.
    let mut scaler = match config.loss_scaling() {
        Ok(settings) => settings.map(|c| (LossScale::new(&c), c)),
        Err(e) => return Err((model, TrainError::Config(e))),
    };
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
            if let (Some((s, _)), Some(saved)) = (scaler.as_mut(), state.loss_scale) {
                *s = saved;
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
                truncate_metrics(path, start)
                    .and_then(|()| JsonlWriter::append(path))
                    .map_err(TrainError::from)
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
        let scale = scaler.map_or(1.0, |(s, _)| s.scale);
        let mut losses = Vec::with_capacity(window.len());
        let mut metric_sums: BTreeMap<String, f64> = BTreeMap::new();
        // Each micro-batch's gradient is that of `sum · scale / items`: the scale is 1 but
        // with f16 loss scaling.
        let divisor = items as f64 / scale;
        for batch in &window {
            let pass = if config.gradient_checkpointing {
                objective.loss_recomputing_layers(&model, batch, divisor)
            } else {
                objective
                    .loss(&model, batch)
                    .map(|out| plain_backward(out, divisor))
            };
            let (out, passes) = match pass {
                Ok(v) => v,
                Err(e) => return Err((model, TrainError::objective(step, e))),
            };
            losses.push(out.sum);
            for (name, value) in out.metrics {
                *metric_sums.entry(name).or_default() += value;
            }
            accumulate_passes(&mut accumulator, &model, passes);
        }
        let mut grads = accumulator.grads();
        if scale != 1.0 {
            scale_grads(&model, &mut grads, 1.0 / scale);
        }
        // One read from the device per step: the micro-batches' losses and each gradient's
        // squared sum together (a read per tensor stalls a GPU's queue every time).
        let (micro_losses, norm) = read_with_norm(losses, grad_square_sums(&model, &grads));
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
        if let Some((s, c)) = scaler.as_mut() {
            s.update(overflowed, c);
            if overflowed {
                tracing::warn!(
                    step = step + 1,
                    scale,
                    "f16 gradients overflowed: step skipped"
                );
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
                loss_scale: scaler.map(|(s, _)| s),
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
