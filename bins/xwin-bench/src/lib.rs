//! Shared pieces of the xwin benchmarks: the benchmark model and timing.

pub mod judge;
pub mod train_ops;

use std::time::Instant;
use xwin_model::LlamaConfig;

/// Model sizes the train and infer benchmarks take (`--size`); `scripts/bench_infer_torch.py`
/// spells the same configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchSize {
    /// The default: 21.1M parameters, 16M of them embeddings and head.
    #[value(name = "21m")]
    M21,
    /// Hidden 768, 12 layers, MLP 2048: 134M parameters.
    #[value(name = "143m")]
    M143,
    /// Hidden 1536, 24 layers, MLP 4096: 778M parameters.
    #[value(name = "760m")]
    M760,
    /// Llama-2-7B's layer and vocabulary shapes with 2 of its 32 layers (for memory).
    #[value(name = "7b-2l")]
    Llama7bTwoLayers,
    /// Llama-2-7B itself (for `memory`; too large to time on a CPU).
    #[value(name = "7b")]
    Llama7b,
}

impl BenchSize {
    pub fn config(self) -> LlamaConfig {
        let sized = |hidden, layers, mlp, heads| LlamaConfig {
            hidden_size: hidden,
            intermediate_size: mlp,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: heads,
            head_dim: hidden / heads,
            ..bench_config()
        };
        match self {
            Self::M21 => bench_config(),
            Self::M143 => sized(768, 12, 2048, 12),
            Self::M760 => sized(1536, 24, 4096, 16),
            Self::Llama7bTwoLayers => LlamaConfig {
                num_hidden_layers: 2,
                ..LlamaConfig::llama2_7b()
            },
            Self::Llama7b => LlamaConfig::llama2_7b(),
        }
    }
}

/// The benchmark model: Llama-2 layout at ~21M parameters (16M of them embeddings/head).
pub fn bench_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 32000,
        hidden_size: 256,
        intermediate_size: 688,
        num_hidden_layers: 6,
        num_attention_heads: 8,
        num_key_value_heads: 8,
        head_dim: 32,
        max_position_embeddings: 1024,
        ..LlamaConfig::llama2_7b()
    }
}

/// Model FLOPs of one training token (forward and backward) at sequence length `seq`: 6 per
/// weight that multiplies (every parameter but the embedding table; the LM head counts, tied
/// or not) plus causal attention's two products, 6·seq·(heads·head_dim) per layer (on
/// average a token sees seq/2 keys). `scripts/bench_common.py` spells the same formula.
pub fn train_flops_per_token(config: &LlamaConfig, seq: usize) -> f64 {
    let (h, l) = (config.hidden_size as f64, config.num_hidden_layers as f64);
    let q = (config.num_attention_heads * config.head_dim) as f64;
    let kv = (config.num_key_value_heads * config.head_dim) as f64;
    let inter = config.intermediate_size as f64;
    let layer = 2.0 * h * q + 2.0 * h * kv + 3.0 * h * inter;
    let matmul_weights = l * layer + config.vocab_size as f64 * h;
    6.0 * matmul_weights + 6.0 * l * seq as f64 * q
}

/// A step of `batch` full rows of `seq` tokens through the LM head, every next token scored.
pub fn lm_step(batch: usize, seq: usize, grad_accum: usize) -> xwin_train::StepShape {
    let scored = batch * seq.saturating_sub(1);
    let head = xwin_train::Head::Lm { scored };
    xwin_train::StepShape::new(batch * seq, head, grad_accum, batch * seq * seq)
}

/// `batch` rows of `len` token ids spread over the vocabulary (above the special ids 0–2).
pub fn token_ids(batch: usize, len: usize, vocab: usize) -> Vec<Vec<u32>> {
    (0..batch)
        .map(|b| {
            (0..len)
                .map(|t| ((b * 7919 + t * 104_729) % (vocab - 3) + 3) as u32)
                .collect()
        })
        .collect()
}

/// A training batch with the loss on every token, as the PyTorch reference computes it.
pub fn full_loss_batch(batch: usize, seq: usize, vocab: usize) -> xwin_data::Batch {
    xwin_data::Batch {
        attention: vec![vec![true; seq]; batch],
        loss_mask: vec![vec![true; seq]; batch],
        ids: token_ids(batch, seq, vocab),
    }
}

/// Median seconds of a full training step (SFT loss, backward, AdamW) of `model` on `data`.
pub fn train_step_seconds(
    model: xwin_model::LlamaForCausalLM,
    data: &xwin_data::Batch,
    device: &burn::tensor::Device,
    repeats: usize,
) -> f64 {
    train_step_seconds_with(model, data, device, repeats, false)
}

/// [`train_step_seconds`], with activation checkpointing when `checkpointing` (each layer
/// recomputed in the backward, as `[train] gradient_checkpointing` runs it).
pub fn train_step_seconds_with(
    model: xwin_model::LlamaForCausalLM,
    data: &xwin_data::Batch,
    device: &burn::tensor::Device,
    repeats: usize,
    checkpointing: bool,
) -> f64 {
    use burn::optim::{GradientsAccumulator, GradientsParams};
    use xwin_train::Objective;
    let mut optim = xwin_train::AdamWSettings::default().build();
    // The checkpointed pass as the SFT stage runs it, on the mean over the batch's targets.
    let mut sft = xwin_train::SftObjective::new(
        vec![data.clone()],
        Vec::new(),
        xwin_train::EpochPlan::in_order(1, 1, 1),
        device.clone(),
    );
    let targets = xwin_train::num_targets(data) as f64;
    let mut model = Some(model);
    median(time(repeats, || {
        let m = model.take().expect("model");
        let grads = if checkpointing {
            let (_, passes) = sft
                .loss_recomputing_layers(&m, data, targets)
                .expect("checkpointed pass");
            let mut acc = GradientsAccumulator::new();
            xwin_train::accumulate_passes(&mut acc, &m, passes);
            acc.grads()
        } else {
            let loss = xwin_train::sft_loss(&m, data, device).expect("loss");
            GradientsParams::from_grads(loss.backward(), &m)
        };
        model = Some(optim.step(1e-4, m, grads));
        device.sync().expect("sync");
    }))
}

/// Median seconds of a reward-model training step: `pairs` chosen and `pairs` rejected rows
/// of `seq` tokens in one forward, the Bradley–Terry loss, backward, AdamW.
pub fn rm_step_seconds(
    config: &LlamaConfig,
    pairs: usize,
    seq: usize,
    device: &burn::tensor::Device,
    repeats: usize,
) -> f64 {
    let policy = xwin_model::LlamaForCausalLM::random(config, device);
    let rm = xwin_model::LlamaForReward::from_policy(policy, 0.02, 0).expect("reward model");
    let ids = token_ids(2 * pairs, seq, config.vocab_size);
    let attention = vec![vec![true; seq]; 2 * pairs];
    let zeros = vec![0.0; pairs];
    let mut optim = xwin_train::AdamWSettings::default().build();
    let mut model = Some(rm);
    median(time(repeats, || {
        let m = model.take().expect("model");
        let rewards = m.rewards(&ids, &attention, device).expect("rewards");
        let (w, l) = (
            rewards.clone().slice(0..pairs),
            rewards.slice(pairs..2 * pairs),
        );
        let (sum, _) = xwin_rm::bradley_terry(w, l, &zeros, 0.0);
        let loss = sum.div_scalar(pairs as f64);
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(1e-4, m, grads));
        device.sync().expect("sync");
    }))
}

/// `2 × pairs` rows of `seq` tokens (chosen rows, then rejected), the second half of each
/// row the response: the batch of a DPO step, or of an SFT step on the same tokens.
pub fn dpo_batch(pairs: usize, seq: usize, vocab: usize) -> xwin_data::Batch {
    xwin_data::Batch {
        attention: vec![vec![true; seq]; 2 * pairs],
        loss_mask: vec![(0..seq).map(|t| t >= seq / 2).collect(); 2 * pairs],
        ids: token_ids(2 * pairs, seq, vocab),
    }
}

/// Median seconds of a DPO training step on [`dpo_batch`]: the policy's response
/// log-probabilities (fused head), the sigmoid loss against fixed reference log-probabilities
/// (as persisted ones are), backward, AdamW.
pub fn dpo_step_seconds(
    model: xwin_model::LlamaForCausalLM,
    data: &xwin_data::Batch,
    device: &burn::tensor::Device,
    repeats: usize,
) -> f64 {
    let pairs = data.ids.len() / 2;
    let reference: Vec<(f64, f64)> = (0..pairs).map(|i| (-500.0 - i as f64, -501.0)).collect();
    let batch = xwin_dpo::DpoBatch {
        ids: data.ids.clone(),
        attention: data.attention.clone(),
        mask: data.loss_mask.clone(),
        reference,
    };
    let mut objective = xwin_dpo::DpoObjective::new(
        vec![batch.clone()],
        Vec::new(),
        xwin_train::EpochPlan::in_order(1, 1, 1),
        xwin_dpo::LossConfig::default(),
        device.clone(),
    );
    let mut optim = xwin_train::AdamWSettings::default().build();
    let mut model = Some(model);
    median(time(repeats, || {
        let m = model.take().expect("model");
        let loss = xwin_train::Objective::loss(&mut objective, &m, &batch).expect("loss");
        let loss = loss.sum.div_scalar(pairs as f64);
        let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(1e-4, m, grads));
        device.sync().expect("sync");
    }))
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub fn time<F: FnMut()>(repeats: usize, mut f: F) -> Vec<f64> {
    f(); // warm-up
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}

/// A memory line of this process's `/proc/self/status` (`"VmRSS:"` resident now, `"VmHWM:"`
/// its peak), in MiB; `None` where Linux's status file is missing.
pub fn status_mib(key: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
