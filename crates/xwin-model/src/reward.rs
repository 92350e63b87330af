//! The reward model: HF `LlamaForSequenceClassification` with one label — the decoder plus a
//! scalar `score` head without bias — read at each row's last real token.

use crate::checkpoint::Checkpoint;
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::layout::BatchLayout;
use crate::model::{LlamaForCausalLM, LlamaModel, ids_tensor};
use crate::names::{self, SCORE};
use crate::params::{HfTensor, HfTensors, ParamSource, linear};
use crate::save::{Architecture, SaveOptions, save_model_dir};
use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use std::path::Path;

/// `LlamaForSequenceClassification(num_labels = 1)`.
///
/// # Shapes
/// - input ids `[batch, seq]` → rewards `[batch]`
#[derive(Module, Debug)]
pub struct LlamaForReward {
    pub model: LlamaModel,
    /// `[hidden, 1]`, no bias.
    pub score: Linear,
    #[module(skip)]
    config: LlamaConfig,
}

impl LlamaForReward {
    /// Builds the model from any parameter source; the head is `score.weight`.
    pub fn init(config: &LlamaConfig, source: &mut dyn ParamSource) -> Result<Self> {
        Ok(Self {
            model: LlamaModel::init(config, source)?,
            score: linear(source, SCORE, config.hidden_size, 1)?,
            config: config.clone(),
        })
    }

    /// A reward model from a policy (the paper starts the RM from the SFT model): its decoder,
    /// its LM head dropped, a fresh head drawn from normal(0, `std`) (HF's
    /// `initializer_range`, 0.02 for Llama-2) with the device's current seed. `pad_token_id`
    /// is set to `pad` when the policy has none, since HF pools at the last non-pad token.
    pub fn from_policy(policy: LlamaForCausalLM, std: f64, pad: u32) -> Result<Self> {
        let mut config = policy.config().clone();
        config.pad_token_id = config.pad_token_id.or(Some(pad));
        if let Some(p) = config.pad_token_id
            && config.eos_token_ids.contains(&p)
        {
            return Err(ModelError::InvalidInput(format!(
                "pad_token_id {p} is also an end-of-sequence id: HF pools the reward at the \
                 last token that is not padding, which would skip the closing EOS; choose \
                 another pad id (e.g. <unk>)"
            )));
        }
        let device = policy.model.embed_tokens.weight.device();
        let hidden = config.hidden_size;
        let head = Tensor::<2>::random([hidden, 1], Distribution::Normal(0.0, std), &device);
        Ok(Self {
            model: policy.model,
            score: Linear {
                weight: Param::from_tensor(head),
                bias: None,
            },
            config,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// The model with its matrix products in `precision` (see [`crate::precision`]).
    pub fn with_precision(mut self, precision: crate::Precision) -> Self {
        self.model.set_precision(precision);
        self
    }

    /// One reward per row: the head applied to the final hidden state of the row's last
    /// real token (`attention[row]` true), so right and left padding give the same rewards.
    /// Carries gradients on an autodiff device.
    pub fn rewards(
        &self,
        ids: &[Vec<u32>],
        attention: &[Vec<bool>],
        device: &Device,
    ) -> Result<Tensor<1>> {
        let tensor = self.ids_tensor(ids, device)?;
        let [b, seq] = tensor.dims();
        let index = pooled_rows(attention, b, seq, device)?;
        let layout = BatchLayout::from_attention_mask(attention)?;
        let pooled = self.model.hidden_at(tensor, &layout, index);
        Ok(self.score_rows(pooled).reshape([b]))
    }

    /// Uploads token ids (`[batch][seq]`, equal lengths) after checking them against the
    /// vocabulary and the length against the context.
    pub fn ids_tensor(&self, ids: &[Vec<u32>], device: &Device) -> Result<Tensor<2, Int>> {
        self.config.check_context(ids.first().map_or(0, Vec::len))?;
        ids_tensor(ids, self.config.vocab_size, device)
    }

    /// [`Self::rewards`] from the final normed hidden states of every position (what an
    /// activation-checkpointed pass has; [`Self::rewards`] runs the last MLP at the pooled
    /// positions only).
    ///
    /// # Shapes
    /// - hidden `[batch, seq, hidden]` → rewards `[batch]`
    pub fn rewards_from_hidden(
        &self,
        hidden: Tensor<3>,
        attention: &[Vec<bool>],
    ) -> Result<Tensor<1>> {
        let [b, s, h] = hidden.dims();
        let index = pooled_rows(attention, b, s, &hidden.device())?;
        let pooled = hidden.reshape([b * s, h]).select(0, index);
        Ok(self.score_rows(pooled).reshape([b]))
    }

    /// The score head on pooled rows, its product in the model's precision.
    ///
    /// # Shapes
    /// - pooled `[n, hidden]` → `[n, 1]`
    fn score_rows(&self, pooled: Tensor<2>) -> Tensor<2> {
        match self.model.precision() {
            crate::Precision::F32 => self.score.forward(pooled),
            p => crate::precision::matmul(pooled, self.score.weight.val(), p),
        }
    }

    /// Every parameter under its HF name and layout, in a stable order.
    pub fn hf_tensors(&self) -> HfTensors {
        let mut out = Vec::new();
        self.model.hf_tensors(&mut out);
        out.push((SCORE.into(), HfTensor::Linear(self.score.weight.val())));
        out
    }
}

/// The flat position (`row × seq + t`) of each row's last real token: where the reward is read.
///
/// # Shapes
/// - attention `[batch][seq]` → `[batch]`
fn pooled_rows(
    attention: &[Vec<bool>],
    batch: usize,
    seq: usize,
    device: &Device,
) -> Result<Tensor<1, Int>> {
    let rows: Vec<i64> = last_real_tokens(attention, batch, seq)?
        .iter()
        .enumerate()
        .map(|(r, &t)| (r * seq + t) as i64)
        .collect();
    Ok(Tensor::from_data(TensorData::new(rows, [batch]), device))
}

/// Index of the last true entry of each attention row.
fn last_real_tokens(attention: &[Vec<bool>], batch: usize, seq: usize) -> Result<Vec<usize>> {
    if attention.len() != batch {
        return Err(ModelError::InvalidInput(format!(
            "{} attention rows for {batch} sequences",
            attention.len()
        )));
    }
    attention
        .iter()
        .enumerate()
        .map(|(r, row)| {
            if row.len() != seq {
                return Err(ModelError::InvalidInput(format!(
                    "attention row {r} has {} entries for {seq} tokens",
                    row.len()
                )));
            }
            row.iter()
                .rposition(|&a| a)
                .ok_or_else(|| ModelError::InvalidInput(format!("row {r} has no real token")))
        })
        .collect()
}

/// Loads a HF `LlamaForSequenceClassification` directory with one label. A directory
/// without a `score.weight` (a causal LM) is an error naming the tensor.
pub fn load_reward_model(dir: impl AsRef<Path>, device: &Device) -> Result<LlamaForReward> {
    let dir = dir.as_ref();
    let config = LlamaConfig::from_file(dir)?;
    let mut checkpoint = Checkpoint::open(dir, device)?;
    if !checkpoint.contains(SCORE) {
        return Err(ModelError::InvalidInput(format!(
            "{}: no `{SCORE}` tensor: not a reward model (LlamaForSequenceClassification); \
             train one with xwin-rm",
            dir.display()
        )));
    }
    // A classifier saved from a causal LM may keep the unused LM head.
    checkpoint.skip(names::LM_HEAD);
    let model = LlamaForReward::init(&config, &mut checkpoint)?;
    checkpoint.finish()?;
    Ok(model)
}

/// Saves a reward model in HF layout (`LlamaForSequenceClassification`, one label),
/// atomically, with `files` beside the weights.
pub fn save_reward_model(
    model: &LlamaForReward,
    dir: impl AsRef<Path>,
    options: SaveOptions,
    files: &[(String, Vec<u8>)],
) -> Result<()> {
    save_model_dir(
        model.config(),
        Architecture::Reward,
        &model.hf_tensors(),
        dir.as_ref(),
        options,
        files,
    )
}
