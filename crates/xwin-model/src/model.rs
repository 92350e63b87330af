//! The Llama decoder stack and the causal language model on top of it.

use crate::attention::{Attention, AttentionConfig, KeyMask};
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::kv_cache::{KvCache, LayerCache};
use crate::layout::BatchLayout;
use crate::mlp::{Mlp, MlpConfig};
use crate::names::{
    EMBED_TOKENS, FINAL_NORM, INPUT_NORM, LM_HEAD, MLP, POST_ATTENTION_NORM, SELF_ATTN, join, layer,
};
use crate::params::{HfTensor, HfTensors, ParamSource, embedding, linear, rms_norm};
use crate::precision::{self, Precision};
use crate::rope::{RotaryEmbedding, RotaryEmbeddingConfig};
use burn::module::Module;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::{Device, Int, Tensor, TensorData};

/// Configuration of [`DecoderLayer`].
#[derive(Debug, Clone)]
pub struct DecoderLayerConfig {
    pub attention: AttentionConfig,
    pub mlp: MlpConfig,
    pub rms_norm_eps: f64,
}

impl DecoderLayerConfig {
    pub fn from_llama(c: &LlamaConfig) -> Self {
        Self {
            attention: AttentionConfig {
                hidden_size: c.hidden_size,
                num_heads: c.num_attention_heads,
                num_kv_heads: c.num_key_value_heads,
                head_dim: c.head_dim,
            },
            mlp: MlpConfig {
                hidden_size: c.hidden_size,
                intermediate_size: c.intermediate_size,
            },
            rms_norm_eps: c.rms_norm_eps,
        }
    }

    /// Builds layer `prefix` (e.g. `model.layers.3`).
    pub fn init(&self, source: &mut dyn ParamSource, prefix: &str) -> Result<DecoderLayer> {
        let h = self.attention.hidden_size;
        Ok(DecoderLayer {
            input_layernorm: rms_norm(source, &join(prefix, INPUT_NORM), h, self.rms_norm_eps)?,
            self_attn: self.attention.init(source, &join(prefix, SELF_ATTN))?,
            post_attention_layernorm: rms_norm(
                source,
                &join(prefix, POST_ATTENTION_NORM),
                h,
                self.rms_norm_eps,
            )?,
            mlp: self.mlp.init(source, &join(prefix, MLP))?,
        })
    }
}

/// Pre-norm residual block: attention then MLP.
///
/// # Shapes
/// - input `[batch, seq, hidden]` → output `[batch, seq, hidden]`
#[derive(Module, Debug)]
pub struct DecoderLayer {
    pub input_layernorm: RmsNorm,
    pub self_attn: Attention,
    pub post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

/// Per-call context shared by every layer.
pub(crate) struct LayerInputs<'a> {
    rope: &'a RotaryEmbedding,
    tables: crate::rope::RopeTables,
    mask: KeyMask<'a>,
    precision: Precision,
}

impl DecoderLayer {
    pub(crate) fn forward(
        &self,
        x: Tensor<3>,
        ctx: &LayerInputs<'_>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<3> {
        self.mlp_block(self.attention_block(x, ctx, cache), ctx.precision)
    }

    /// The residual attention half of the layer.
    fn attention_block(
        &self,
        x: Tensor<3>,
        ctx: &LayerInputs<'_>,
        cache: Option<&mut LayerCache>,
    ) -> Tensor<3> {
        let attn = self.self_attn.forward(
            crate::cpu_ops::rms_norm(&self.input_layernorm, x.clone(), ctx.precision),
            ctx.rope,
            &ctx.tables,
            &ctx.mask,
            cache,
            ctx.precision,
        );
        x + attn
    }

    /// The residual MLP half of the layer.
    fn mlp_block(&self, x: Tensor<3>, precision: Precision) -> Tensor<3> {
        let mlp = self.mlp.forward(
            crate::cpu_ops::rms_norm(&self.post_attention_layernorm, x.clone(), precision),
            precision,
        );
        x + mlp
    }

    /// The layer's output at the flat positions `rows` (`batch index × seq + position`) only:
    /// attention runs over every position (its keys and values are needed), the MLP only at
    /// `rows`.
    ///
    /// # Shapes
    /// - x `[batch, seq, hidden]`, rows `[n]` → `[n, hidden]`
    fn forward_at(&self, x: Tensor<3>, ctx: &LayerInputs<'_>, rows: Tensor<1, Int>) -> Tensor<2> {
        let [b, s, h] = x.dims();
        let picked = self
            .attention_block(x, ctx, None)
            .reshape([b * s, h])
            .select(0, rows);
        let n = picked.dims()[0];
        self.mlp_block(picked.reshape([1, n, h]), ctx.precision)
            .reshape([n, h])
    }

    fn hf_tensors(&self, prefix: &str, out: &mut HfTensors) {
        out.push((
            join(prefix, INPUT_NORM),
            HfTensor::Vector(self.input_layernorm.gamma.val()),
        ));
        self.self_attn.hf_tensors(&join(prefix, SELF_ATTN), out);
        out.push((
            join(prefix, POST_ATTENTION_NORM),
            HfTensor::Vector(self.post_attention_layernorm.gamma.val()),
        ));
        self.mlp.hf_tensors(&join(prefix, MLP), out);
    }
}

/// The decoder without a head: token ids to final (normed) hidden states.
///
/// # Shapes
/// - input ids `[batch, seq]` → hidden `[batch, seq, hidden]`
#[derive(Module, Debug)]
pub struct LlamaModel {
    pub embed_tokens: Embedding,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    rope: RotaryEmbedding,
    num_heads: usize,
    /// The precision of the matrix products (see [`crate::precision`]).
    #[module(skip)]
    precision: Precision,
}

impl LlamaModel {
    /// Builds the decoder with HF names under `model.`.
    pub fn init(config: &LlamaConfig, source: &mut dyn ParamSource) -> Result<Self> {
        let layer_config = DecoderLayerConfig::from_llama(config);
        let layers = (0..config.num_hidden_layers)
            .map(|i| layer_config.init(source, &layer(i)))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embed_tokens: embedding(source, EMBED_TOKENS, config.vocab_size, config.hidden_size)?,
            layers,
            norm: rms_norm(source, FINAL_NORM, config.hidden_size, config.rms_norm_eps)?,
            rope: RotaryEmbeddingConfig::from_llama(config).init(),
            num_heads: config.num_attention_heads,
            precision: Precision::F32,
        })
    }

    /// Final hidden states. With a cache, `ids` are the new tokens and `layout` covers the
    /// cached keys plus these.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        layout: &BatchLayout,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        let ctx = self.layer_inputs(layout, &ids.device());
        let mut x = self.embed_tokens.forward(ids);
        match cache {
            Some(cache) => {
                cache.fit(self.layers.len());
                for (layer, slot) in self.layers.iter().zip(cache.layers.iter_mut()) {
                    x = layer.forward(x, &ctx, Some(slot));
                }
            }
            None => {
                for layer in &self.layers {
                    x = layer.forward(x, &ctx, None);
                }
            }
        }
        crate::cpu_ops::rms_norm(&self.norm, x, self.precision)
    }

    pub(crate) fn layer_inputs<'a>(
        &'a self,
        layout: &'a BatchLayout,
        device: &Device,
    ) -> LayerInputs<'a> {
        LayerInputs {
            rope: &self.rope,
            tables: self.rope.tables(&layout.positions, device),
            mask: KeyMask::new(layout),
            precision: self.precision,
        }
    }

    /// The precision of the matrix products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Runs the matrix products in `precision` from now on; the parameters stay as they are.
    pub fn set_precision(&mut self, precision: Precision) {
        self.precision = precision;
    }

    /// Final hidden states at the flat positions `rows` (`batch index × seq + position`)
    /// only, for a head that reads a few positions (the reward model reads one per row). The
    /// last layer's MLP, which only those positions' outputs need, runs at them alone: 1/`seq`
    /// of its work for the reward model. No cache.
    ///
    /// # Shapes
    /// - ids `[batch, seq]`, rows `[n]` → hidden `[n, hidden]`
    pub fn hidden_at(
        &self,
        ids: Tensor<2, Int>,
        layout: &BatchLayout,
        rows: Tensor<1, Int>,
    ) -> Tensor<2> {
        let ctx = self.layer_inputs(layout, &ids.device());
        let x = self.embed_tokens.forward(ids);
        let picked = match self.layers.split_last() {
            Some((last, rest)) => {
                let x = rest.iter().fold(x, |x, layer| layer.forward(x, &ctx, None));
                last.forward_at(x, &ctx, rows)
            }
            None => {
                let [b, s, h] = x.dims();
                x.reshape([b * s, h]).select(0, rows)
            }
        };
        crate::cpu_ops::rms_norm(&self.norm, picked, self.precision)
    }

    pub(crate) fn hf_tensors(&self, out: &mut HfTensors) {
        out.push((
            EMBED_TOKENS.into(),
            HfTensor::Matrix(self.embed_tokens.weight.val()),
        ));
        for (i, decoder) in self.layers.iter().enumerate() {
            decoder.hf_tensors(&layer(i), out);
        }
        out.push((FINAL_NORM.into(), HfTensor::Vector(self.norm.gamma.val())));
    }
}

/// `LlamaForCausalLM`: the decoder plus the LM head (tied to the embedding if configured).
///
/// # Shapes
/// - input ids `[batch, seq]` → logits `[batch, seq, vocab]`
#[derive(Module, Debug)]
pub struct LlamaForCausalLM {
    pub model: LlamaModel,
    /// `None` when the head is tied to `model.embed_tokens`.
    pub lm_head: Option<Linear>,
    #[module(skip)]
    config: LlamaConfig,
}

impl LlamaForCausalLM {
    /// Builds the model from any parameter source (random init or a checkpoint).
    pub fn init(config: &LlamaConfig, source: &mut dyn ParamSource) -> Result<Self> {
        let model = LlamaModel::init(config, source)?;
        let lm_head = if config.tie_word_embeddings {
            None
        } else {
            Some(linear(
                source,
                LM_HEAD,
                config.hidden_size,
                config.vocab_size,
            )?)
        };
        Ok(Self {
            model,
            lm_head,
            config: config.clone(),
        })
    }

    /// A randomly initialised model (HF's normal(0, 0.02) init).
    pub fn random(config: &LlamaConfig, device: &Device) -> Self {
        let mut source = crate::params::RandomInit::new(device);
        // RandomInit never fails.
        Self::init(config, &mut source).unwrap_or_else(|e| unreachable!("random init failed: {e}"))
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// Final hidden states, for heads other than the LM head (e.g. a reward head).
    pub fn hidden_states(
        &self,
        ids: Tensor<2, Int>,
        layout: &BatchLayout,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        self.model.forward(ids, layout, cache)
    }

    /// The precision of the matrix products (decoder and head).
    pub fn precision(&self) -> Precision {
        self.model.precision
    }

    /// The model with its matrix products in `precision` (see [`crate::precision`]).
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.model.set_precision(precision);
        self
    }

    /// Projects hidden states to vocabulary logits (f32, the product in the model's precision).
    pub fn lm_logits(&self, hidden: Tensor<3>) -> Tensor<3> {
        match &self.lm_head {
            Some(head) => crate::cpu_ops::project(head, hidden, self.precision()),
            None => {
                let [b, s, h] = hidden.dims();
                let weight = crate::fused_loss::head_weight(self);
                precision::matmul(hidden.reshape([b * s, h]), weight, self.precision()).reshape([
                    b,
                    s,
                    self.config.vocab_size,
                ])
            }
        }
    }

    /// Logits for every position.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        layout: &BatchLayout,
        cache: Option<&mut KvCache>,
    ) -> Tensor<3> {
        self.lm_logits(self.hidden_states(ids, layout, cache))
    }

    /// Uploads token ids (`[batch][seq]`, equal lengths) after checking them against the vocabulary.
    /// Checks every id against the vocabulary and the length against the context
    /// (`max_position_embeddings`: positions past it were never trained, and RoPE scaling
    /// is declared in `config.json` by raising it with `rope_scaling`).
    pub fn ids_tensor(&self, ids: &[Vec<u32>], device: &Device) -> Result<Tensor<2, Int>> {
        let seq = ids.first().map_or(0, Vec::len);
        self.check_context(seq)?;
        ids_tensor(ids, self.config.vocab_size, device)
    }

    /// Fails when `len` tokens exceed the model's context.
    pub fn check_context(&self, len: usize) -> Result<()> {
        self.config.check_context(len)
    }

    /// Every parameter under its HF name and layout, in a stable order.
    pub fn hf_tensors(&self) -> HfTensors {
        let mut out = Vec::new();
        self.model.hf_tensors(&mut out);
        if let Some(head) = &self.lm_head {
            out.push((LM_HEAD.into(), HfTensor::Linear(head.weight.val())));
        }
        out
    }
}

/// Uploads a rectangular batch of token ids, rejecting ids outside the vocabulary.
pub fn ids_tensor(ids: &[Vec<u32>], vocab_size: usize, device: &Device) -> Result<Tensor<2, Int>> {
    let seq = ids.first().map_or(0, Vec::len);
    if ids.is_empty() || seq == 0 {
        return Err(ModelError::InvalidInput(
            "empty batch or empty sequence".into(),
        ));
    }
    let mut flat = Vec::with_capacity(ids.len() * seq);
    for (row, seq_ids) in ids.iter().enumerate() {
        if seq_ids.len() != seq {
            return Err(ModelError::InvalidInput(format!(
                "sequence {row} has {} tokens, expected {seq} (pad the batch)",
                seq_ids.len()
            )));
        }
        for &id in seq_ids {
            if id as usize >= vocab_size {
                return Err(ModelError::InvalidInput(format!(
                    "token id {id} in sequence {row} is outside the vocabulary ({vocab_size})"
                )));
            }
            flat.push(id as i64);
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(flat, [ids.len(), seq]),
        device,
    ))
}
