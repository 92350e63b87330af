//! LoRA through the shared loop on a tiny Llama: only the targeted projections change, the
//! trained model comes back merged (no adapters) and reproduces the adapted model's loss; a
//! crashed LoRA run resumes to the same merged weights bit for bit; bad tables are refused.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use common::{hf_weights, loop_config, tiny_llama};
use xwin_data::Batch;
use xwin_model::LlamaForCausalLM;
use xwin_train::{
    CheckpointPolicy, Checkpointing, FnObjective, LoopConfig, LoraConfig, Run, Schedule,
    TrainError, Warmup, sft_loss, train,
};

fn batches() -> Vec<Batch> {
    (0..2)
        .map(|b| Batch {
            attention: vec![vec![true; 12]; 3],
            loss_mask: vec![(0..12).map(|t| t >= 4).collect(); 3],
            ids: (0..3)
                .map(|i| {
                    (0..12)
                        .map(|t| 3 + ((b * 3 + i) * 7 + t * 5) as u32 % 60)
                        .collect()
                })
                .collect(),
        })
        .collect()
}

fn lora_config(targets: &[&str]) -> LoopConfig {
    LoopConfig {
        lora: Some(LoraConfig {
            rank: 4,
            alpha: 8.0,
            targets: targets.iter().map(|t| t.to_string()).collect(),
            modules_to_save: Vec::new(),
        }),
        ..loop_config(0.1, Schedule::Constant, Warmup::Steps(0), 1)
    }
}

/// burn's random numbers are process-global: tests in this file drawing at once (model
/// inits, adapter draws after the loop seeds) would take each other's numbers.
static RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Count(usize);
impl ModuleVisitor for Count {
    fn visit_float<const D: usize>(&mut self, _: &Param<Tensor<D>>) {
        self.0 += 1;
    }
}

fn params(m: &LlamaForCausalLM) -> usize {
    let mut c = Count(0);
    m.visit(&mut c);
    c.0
}

#[test]
fn only_targeted_projections_change_and_the_model_comes_back_merged() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let initial = LlamaForCausalLM::random(&tiny_llama(64, 2, 2), &device);
    let data = batches();
    let mut objective = FnObjective {
        batch: |step: usize, _| data[step % 2].clone(),
        loss: |m: &LlamaForCausalLM, b: &Batch| sft_loss(m, b, &device),
    };
    let mut losses = Vec::new();
    let config = lora_config(&["q_proj", "v_proj", "down_proj"]);
    let trained = train(
        initial.clone(),
        &config,
        &Run::in_memory(60, &device),
        &mut objective,
        |s| losses.push(s.loss),
    )
    .map_err(|(_, e)| e)
    .unwrap()
    .model;
    assert!(
        // From ln 64 ≈ 4.16 a quarter nat down at least: rank-4 adapters on a random
        // model learn, slowly (frozen weights would stay at 4.16).
        (losses[58] + losses[59]) / 2.0 < (losses[0] + losses[1]) / 2.0 - 0.25,
        "adapters learn: {:?}",
        &losses[..]
    );
    assert_eq!(params(&trained), params(&initial), "adapters merged away");
    for ((name, before), (_, after)) in hf_weights(&initial).iter().zip(&hf_weights(&trained)) {
        let targeted = ["q_proj", "v_proj", "down_proj"]
            .iter()
            .any(|t| name.contains(t));
        let same = before
            .iter()
            .zip(after)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert_eq!(
            !targeted, same,
            "{name}: targeted {targeted}, unchanged {same}"
        );
    }
    // The merged model computes what the adapted one did at the end of training.
    let merged = sft_loss(&trained, &data[0], &device)
        .unwrap()
        .into_scalar::<f32>();
    assert!(merged < losses[0] - 0.25 && merged.is_finite(), "{merged}");
}

/// An objective that fails at one step, as a killed process would stop there.
fn crashing<'a>(
    data: &'a [Batch],
    device: &'a Device,
    crash_at: Option<usize>,
) -> impl xwin_train::Objective<LlamaForCausalLM, Error = xwin_train::MessageError> + 'a {
    FnObjective {
        batch: move |s: usize, _| (s, data[s % 2].clone()),
        loss: move |m: &LlamaForCausalLM, (s, b): &(usize, Batch)| {
            if Some(*s) == crash_at {
                return Err(xwin_model::ModelError::InvalidInput(
                    "simulated crash".into(),
                ));
            }
            sft_loss(m, b, device)
        },
    }
}

#[test]
fn a_crashed_lora_run_resumes_to_the_same_weights() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let data = batches();
    let config = lora_config(&["q_proj", "k_proj", "v_proj", "o_proj"]);
    let initial = LlamaForCausalLM::random(&tiny_llama(64, 2, 2), &device);
    let run_in = |dir: &std::path::Path| Run {
        checkpoints: Some(Checkpointing {
            dir: dir.join("ckpt"),
            policy: CheckpointPolicy {
                every: 2,
                keep_last: 1,
            },
        }),
        fingerprint: "lora".into(),
        ..Run::in_memory(8, &device)
    };
    let whole_dir = tempfile::tempdir().unwrap();
    let whole = train(
        initial.clone(),
        &config,
        &run_in(whole_dir.path()),
        &mut crashing(&data, &device, None),
        |_| {},
    )
    .map_err(|(_, e)| e)
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let crashed = train(
        initial.clone(),
        &config,
        &run_in(dir.path()),
        &mut crashing(&data, &device, Some(5)),
        |_| {},
    );
    assert!(crashed.is_err());
    // A fresh process: another random base, which the checkpoint must replace.
    let fresh = LlamaForCausalLM::random(&tiny_llama(64, 2, 2), &device);
    let resumed = train(
        fresh,
        &config,
        &run_in(dir.path()),
        &mut crashing(&data, &device, None),
        |_| {},
    )
    .map_err(|(_, e)| e)
    .unwrap();
    assert_eq!(resumed.resumed_from, Some(4));
    for ((name, a), (_, b)) in hf_weights(&whole.model)
        .iter()
        .zip(&hf_weights(&resumed.model))
    {
        assert!(
            a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{name} differs after resuming"
        );
    }
}

#[test]
fn a_bad_lora_table_is_refused_by_name() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let model = LlamaForCausalLM::random(&tiny_llama(64, 1, 2), &device);
    let data = batches();
    let mut objective = FnObjective {
        batch: |_, _| data[0].clone(),
        loss: |m: &LlamaForCausalLM, b: &Batch| sft_loss(m, b, &device),
    };
    let config = lora_config(&["q_proj", "qkv_proj"]);
    let err = train(
        model,
        &config,
        &Run::in_memory(1, &device),
        &mut objective,
        |_| {},
    )
    .expect_err("refused")
    .1;
    assert!(matches!(err, TrainError::Config(_)), "{err}");
    assert!(err.to_string().contains("qkv_proj"), "{err}");
}

/// The reward model's fresh head trains in full beside the adapters (`modules_to_save`, which
/// the RM stage sets to `score`); the decoder's weights stay frozen.
#[test]
fn modules_to_save_stay_trainable() {
    let _rng = RNG.lock().unwrap_or_else(|e| e.into_inner());
    let device = Device::flex().autodiff();
    let policy = LlamaForCausalLM::random(&tiny_llama(64, 1, 2), &device);
    let rm = xwin_model::LlamaForReward::from_policy(policy, 0.02, 0).unwrap();
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        targets: vec!["q_proj".into()],
        modules_to_save: Vec::new(),
    }
    .saving("score");
    lora.check().unwrap();
    let rm = lora.apply(rm);
    assert!(rm.score.weight.is_require_grad(), "score head trains");
    assert!(!rm.model.embed_tokens.weight.is_require_grad());
    assert!(!rm.model.layers[0].mlp.down_proj.weight.is_require_grad());
    let bad = LoraConfig {
        modules_to_save: vec!["score.*".into()],
        ..lora
    };
    assert!(bad.check().unwrap_err().contains("score.*"));
}
