//! Real training steps of a tiny Llama through the shared loop.

mod common;

use burn::tensor::Device;
use common::{hf_weights, loop_config, tiny_llama, train_in_memory};
use xwin_data::Batch;
use xwin_model::{LlamaConfig, LlamaForCausalLM};
use xwin_train::{
    CheckpointPolicy, Checkpointing, EpochPlan, Evaluation, FnObjective, LoopConfig, MessageError,
    MicroLoss, Objective, Run, Schedule, SftObjective, TrainError, Warmup, sft_loss, train,
};

fn tiny() -> LlamaConfig {
    tiny_llama(64, 2, 2)
}

/// 16 "conversations": a prompt of 4 tokens and a reply of 6 that the loss trains on.
fn data() -> Vec<Batch> {
    (0..4)
        .map(|b| {
            let ids: Vec<Vec<u32>> = (0..4)
                .map(|i| {
                    let k = (b * 4 + i) as u32;
                    (0..10)
                        .map(|t| 3 + (k * 7 + t * (k % 5 + 1)) % 60)
                        .collect()
                })
                .collect();
            Batch {
                attention: vec![vec![true; 10]; 4],
                loss_mask: vec![(0..10).map(|t| t >= 4).collect(); 4],
                ids,
            }
        })
        .collect()
}

#[test]
fn tiny_model_overfits_16_conversations() {
    let device = Device::flex().autodiff();
    device.seed(42); // deterministic init: the test must not depend on luck
    let model = LlamaForCausalLM::random(&tiny(), &device);
    let batches = data();
    let config = loop_config(1e-2, Schedule::Cosine, Warmup::Steps(5), 2);
    let mut objective = FnObjective {
        batch: |step: usize, micro: usize| batches[(step * 2 + micro) % 4].clone(),
        loss: |m: &LlamaForCausalLM, b: &Batch| sft_loss(m, b, &device),
    };
    let (trained, losses) = train_in_memory(model, &config, 120, &device, &mut objective);
    assert_eq!(losses.len(), 120);
    assert!(losses[0] > 3.5, "starts near ln(64) = 4.16: {}", losses[0]);
    let last = losses[115..].iter().sum::<f32>() / 5.0;
    assert!(
        last < 0.05,
        "loss after 120 steps: {last} (curve {:?})",
        &losses[..10]
    );
    // The trained model reproduces the replies greedily (checked on the last batch's loss).
    let final_loss = sft_loss(&trained, &batches[0], &device)
        .unwrap()
        .into_scalar::<f32>();
    assert!(final_loss < 0.05, "{final_loss}");
}

#[test]
fn non_finite_loss_stops_with_the_last_good_parameters() {
    let device = Device::flex().autodiff();
    device.seed(42); // deterministic init: the test must not depend on luck
    let model = LlamaForCausalLM::random(&tiny(), &device);
    let batches = data();
    let config = LoopConfig {
        max_grad_norm: None,
        ..loop_config(1e-3, Schedule::Constant, Warmup::Steps(0), 1)
    };
    let dir = tempfile::tempdir().unwrap();
    let run = Run {
        checkpoints: Some(Checkpointing {
            dir: dir.path().join("ckpt"),
            policy: CheckpointPolicy {
                every: 2,
                keep_last: 2,
            },
        }),
        metrics: Some(dir.path().join("metrics.jsonl")),
        ..Run::in_memory(10, &device)
    };
    let steps = std::cell::Cell::new(0);
    let mut objective = FnObjective {
        batch: |step: usize, _| batches[step % 4].clone(),
        loss: |m: &LlamaForCausalLM, b: &Batch| {
            sft_loss(m, b, &device).map(|l| {
                if steps.get() >= 3 {
                    l.mul_scalar(f32::NAN)
                } else {
                    l
                }
            })
        },
    };
    let result = train(model, &config, &run, &mut objective, |_| {
        steps.set(steps.get() + 1)
    });
    let (model, err) = result.expect_err("must stop");
    assert!(
        matches!(err, TrainError::NonFinite { step: 3, .. }),
        "{err}"
    );
    // The message says what happened and where the last good state is; that checkpoint
    // (after step 2) is kept and no later one was written.
    let message = err.to_string();
    assert!(message.contains("step 3: loss is NaN"), "{message}");
    assert!(
        message.contains("last good checkpoint") && message.contains("step-00000002"),
        "{message}"
    );
    let ckpts: Vec<_> = std::fs::read_dir(dir.path().join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(ckpts, ["step-00000002"]);
    let metrics = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "three good steps logged");
    assert_eq!(steps.get(), 3);
    // The returned model is usable and finite.
    let l = sft_loss(&model, &batches[0], &device)
        .unwrap()
        .into_scalar::<f32>();
    assert!(l.is_finite());
}

/// An SFT objective whose loss fails at one step, as a killed process would stop there.
struct Crashing {
    inner: SftObjective,
    crash_at: Option<usize>,
}

impl Objective<LlamaForCausalLM> for Crashing {
    type Batch = (usize, Batch);
    type Error = MessageError;
    fn micro_batch(&mut self, step: usize, micro: usize) -> Option<(usize, Batch)> {
        self.inner.micro_batch(step, micro).map(|b| (step, b))
    }
    fn items(&self, (_, b): &(usize, Batch)) -> usize {
        self.inner.items(b)
    }
    fn loss(
        &mut self,
        model: &LlamaForCausalLM,
        (step, b): &(usize, Batch),
    ) -> Result<MicroLoss, MessageError> {
        if Some(*step) == self.crash_at {
            return Err(MessageError("simulated crash".into()));
        }
        self.inner
            .loss(model, b)
            .map_err(|e| MessageError(e.to_string()))
    }
    fn evaluate(&mut self, model: &LlamaForCausalLM) -> Result<Option<Evaluation>, MessageError> {
        self.inner
            .evaluate(model)
            .map_err(|e| MessageError(e.to_string()))
    }
}

/// A run that crashes (the objective fails at step 7) and is started again continues from the
/// checkpoint after step 6 and ends with the same losses, evaluation and weights as a run
/// that never stopped: optimizer moments, schedule position and data position all restored.
#[test]
fn crashed_run_resumes_as_if_never_stopped() {
    let batches = data();
    let config = LoopConfig {
        seed: 7,
        eval_every: Some(4),
        ..loop_config(5e-3, Schedule::Cosine, Warmup::Steps(3), 2)
    };
    // One initial model cloned for both runs: burn's RNG is process-global and other tests
    // running in parallel threads reseed it, so two seeded inits need not agree.
    let initial = LlamaForCausalLM::random(&tiny(), &Device::flex().autodiff());
    let start = |_: &Device| initial.clone();
    let run_in = |dir: &std::path::Path, device: &Device| Run {
        checkpoints: Some(Checkpointing {
            dir: dir.join("ckpt"),
            policy: CheckpointPolicy {
                every: 3,
                keep_last: 1,
            },
        }),
        metrics: Some(dir.join("metrics.jsonl")),
        fingerprint: "tiny-data".into(),
        ..Run::in_memory(12, device)
    };
    // `crash_at`: the step whose loss fails, as a killed process would stop. SFT over 6
    // epochs of the 4 batches (2 steps each, a fresh order per epoch), 1 held out.
    let objective = |device: Device, crash_at: Option<usize>| {
        let plan = EpochPlan::new(3, 2, 6, 5);
        let inner = SftObjective::new(batches[..3].to_vec(), batches[3..].to_vec(), plan, device);
        let mut objective = Crashing { inner, crash_at };
        move |model, config: &LoopConfig, run: &Run| {
            let mut log = Vec::new();
            let r = train(model, config, run, &mut objective, |s| log.push(s.clone()));
            (r, log)
        }
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let device = Device::flex().autodiff();
    let (whole, _) = objective(device.clone(), None)(
        start(&device),
        &config,
        &run_in(whole_dir.path(), &device),
    );
    let whole = whole.map_err(|(_, e)| e).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let (crashed, first_half) =
        objective(device.clone(), Some(7))(start(&device), &config, &run_in(dir.path(), &device));
    let err = crashed.expect_err("crashes").1;
    assert!(err.to_string().contains("simulated crash"), "{err}");
    assert_eq!(first_half.len(), 7);
    // Fresh process: a freshly initialised model (other weights: the checkpoint must overwrite them).
    let fresh = LlamaForCausalLM::random(&tiny(), &device);
    let (resumed, second_half) =
        objective(device.clone(), None)(fresh, &config, &run_in(dir.path(), &device));
    let resumed = resumed.map_err(|(_, e)| e).unwrap();
    assert_eq!(resumed.resumed_from, Some(6));
    assert_eq!(second_half.first().map(|m| m.step), Some(7));

    // Every logged number (loss, items, lr, gradient norm, evaluation) but the timings.
    let read = |d: &std::path::Path| -> Vec<xwin_train::StepMetrics> {
        std::fs::read_to_string(d.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .map(|l| xwin_train::StepMetrics {
                tokens_per_s: 0.0,
                ..serde_json::from_str(l).unwrap()
            })
            .collect()
    };
    let expected = read(whole_dir.path());
    assert_eq!(expected.len(), 12);
    let evaluated: Vec<usize> = expected
        .iter()
        .filter(|m| m.eval_loss.is_some_and(f64::is_finite))
        .map(|m| m.step)
        .collect();
    assert_eq!(evaluated, [4, 8, 12]);
    assert_eq!(read(dir.path()), expected);
    // Same final weights, every element of every parameter, bit for bit.
    let (a, b) = (hf_weights(&whole.model), hf_weights(&resumed.model));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(
            x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} differs after resuming"
        );
    }
    // keep_last = 1: only the final checkpoint remains.
    let kept: Vec<_> = std::fs::read_dir(dir.path().join("ckpt"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(kept, ["step-00000012"]);
}
