//! Grouped-query causal self-attention with rotary embeddings, padding masks and a KV cache.

use crate::cpu_ops::{fused_causal_attention, fused_ops_apply, project, split_heads};
use crate::error::Result;
use crate::kv_cache::LayerCache;
use crate::layout::BatchLayout;
use crate::lean_attention::lean_attention_in;
use crate::names::{K_PROJ, O_PROJ, Q_PROJ, V_PROJ, join};
use crate::params::{HfTensor, HfTensors, ParamSource, linear};
use crate::precision::{self, Precision};
use crate::rope::{RopeTables, RotaryEmbedding};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Bool, Device, Tensor, TensorData};
use std::cell::OnceCell;

/// Configuration of [`Attention`].
#[derive(Debug, Clone)]
pub struct AttentionConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
}

impl AttentionConfig {
    /// Builds the layer from `source`, with HF names under `prefix` (e.g. `model.layers.0.self_attn`).
    pub fn init(&self, source: &mut dyn ParamSource, prefix: &str) -> Result<Attention> {
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        Ok(Attention {
            q_proj: linear(source, &join(prefix, Q_PROJ), self.hidden_size, q)?,
            k_proj: linear(source, &join(prefix, K_PROJ), self.hidden_size, kv)?,
            v_proj: linear(source, &join(prefix, V_PROJ), self.hidden_size, kv)?,
            o_proj: linear(source, &join(prefix, O_PROJ), q, self.hidden_size)?,
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
        })
    }
}

/// Multi-head attention where `num_heads / num_kv_heads` query heads share each key/value head.
///
/// # Shapes
/// - input: `[batch, seq, hidden]`, mask over `[batch, heads, seq, seq_past + seq]`
/// - output: `[batch, seq, hidden]`
#[derive(Module, Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    pub fn forward(
        &self,
        x: Tensor<3>,
        rope: &RotaryEmbedding,
        tables: &RopeTables,
        mask: &KeyMask<'_>,
        cache: Option<&mut LayerCache>,
        precision: Precision,
    ) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let fused = fused_ops_apply(&x.device(), x.dtype());
        // Heads `[b, heads, s, d]`, rotated for q and k: one fused pass on the CPU.
        let heads = |t: Tensor<3>, heads: usize, rotate: bool| {
            if fused {
                split_heads(t, heads, rotate.then(|| tables.parts()))
            } else {
                let t = t.reshape([b, s, heads, self.head_dim]).swap_dims(1, 2);
                if rotate { rope.apply(t, tables) } else { t }
            }
        };
        let q = heads(
            project(&self.q_proj, x.clone(), precision),
            self.num_heads,
            true,
        );
        let mut k = heads(
            project(&self.k_proj, x.clone(), precision),
            self.num_kv_heads,
            true,
        );
        let mut v = heads(
            project(&self.v_proj, x, precision),
            self.num_kv_heads,
            false,
        );
        if let Some(layer) = cache {
            (k, v) = layer.append(k, v);
        }
        let device = q.device();
        // Key/value heads repeated and the additive bias: what the lean op and the composite read.
        let dense = |k, v| {
            let (k, v) = (self.repeat_kv(k), self.repeat_kv(v));
            let bias = mask.bias(q.dims()[2], k.dims()[2], &device);
            (k, v, bias)
        };
        // On the CPU in f32, training and inference both run our fused kernel (7× burn's
        // composite under autodiff, 9× burn's inference kernel; docs/benchmarks.md). Other
        // training (other backends, half precision anywhere) runs the lean op: the composite's
        // values and gradients, keeping no score matrix for the backward pass. Inference keeps
        // burn's kernel in f32 and the composite in half precision (f32 softmax, as HF upcasts
        // it; our fused kernel and burn's compute in one dtype).
        let out = if fused && precision.is_f32() {
            let keys = k.dims()[2];
            fused_causal_attention(q, k, v, mask.key_valid(keys, &device))
        } else if q.is_tracked() {
            let (k, v, bias) = dense(k, v);
            lean_attention_in(q, k, v, bias, precision)
        } else if !precision.is_f32() {
            let (k, v, bias) = dense(k, v);
            attention_with_bias_in(q, k, v, bias, precision)
        } else {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: true,
            };
            let padding = mask.padding(self.num_heads, &device);
            attention(
                q,
                self.repeat_kv(k),
                self.repeat_kv(v),
                padding,
                None,
                options,
            )
        };
        project(
            &self.o_proj,
            out.swap_dims(1, 2)
                .reshape([b, s, self.num_heads * self.head_dim]),
            precision,
        )
    }

    /// Repeats each key/value head for the query heads that share it.
    fn repeat_kv(&self, t: Tensor<4>) -> Tensor<4> {
        let n_rep = self.num_heads / self.num_kv_heads;
        if n_rep == 1 {
            return t;
        }
        let [b, kvh, s, d] = t.dims();
        t.unsqueeze_dim::<5>(2)
            .expand([b, kvh, n_rep, s, d])
            .reshape([b, kvh * n_rep, s, d])
    }

    pub(crate) fn hf_tensors(&self, prefix: &str, out: &mut HfTensors) {
        for (name, layer) in [
            (Q_PROJ, &self.q_proj),
            (K_PROJ, &self.k_proj),
            (V_PROJ, &self.v_proj),
            (O_PROJ, &self.o_proj),
        ] {
            out.push((join(prefix, name), HfTensor::Linear(layer.weight.val())));
        }
    }
}

/// Score of a hidden key. −∞ rather than a large finite negative: `expf(−∞)` is an exact 0 on
/// its fast path, while a finite value far below −87 takes glibc's underflow path (errno and
/// all) for half of every causal score matrix.
const HIDDEN: f32 = f32::NEG_INFINITY;

/// Added to softmax denominators so that a row with every key hidden (padding, never a loss
/// position) gives 0 instead of 0/0; real rows have a denominator ≥ 1, where 1e-15 is below
/// f32 resolution. Its square must stay a normal f32 (the division's gradient divides by it).
const EMPTY_ROW: f64 = 1e-15;

/// Which keys a query may not see, described once per forward and shared by every layer; each
/// attention path builds the form it needs the first time it asks: per-key validity for the
/// fused CPU kernel (which applies causality and the padding rule itself), padding as booleans
/// for burn's kernel (which adds causality), causality plus padding as one additive bias for
/// [`attention_with_bias`].
///
/// # Shapes
/// - key_valid `[batch, keys]`; padding `[batch, heads, seq, keys]` (true = hidden); bias
///   `[batch, 1, seq, keys]`
#[derive(Debug)]
pub struct KeyMask<'a> {
    layout: &'a BatchLayout,
    key_valid: OnceCell<Tensor<2>>,
    padding: OnceCell<Option<Tensor<4, Bool>>>,
    bias: OnceCell<Tensor<4>>,
}

impl<'a> KeyMask<'a> {
    pub fn new(layout: &'a BatchLayout) -> Self {
        Self {
            layout,
            key_valid: OnceCell::new(),
            padding: OnceCell::new(),
            bias: OnceCell::new(),
        }
    }

    /// `[batch, keys]`: 1 for a real key, 0 for padding (all ones without padding).
    fn key_valid(&self, keys: usize, device: &Device) -> Tensor<2> {
        self.key_valid
            .get_or_init(|| {
                self.layout
                    .key_valid_tensor(device)
                    .unwrap_or_else(|| Tensor::ones([self.layout.batch(), keys], device))
            })
            .clone()
    }

    fn padding(&self, heads: usize, device: &Device) -> Option<Tensor<4, Bool>> {
        self.padding
            .get_or_init(|| self.layout.padding_mask(heads, device))
            .clone()
    }

    /// `[batch or 1, 1, seq_q, seq_k]`, broadcast over the heads where it is added: one copy
    /// per batch row rather than one per head.
    fn bias(&self, seq_q: usize, seq_k: usize, device: &Device) -> Tensor<4> {
        self.bias
            .get_or_init(|| {
                attention_bias(seq_q, seq_k, self.layout.padding_mask(1, device), device)
            })
            .clone()
    }
}

/// The additive bias of causal attention plus `padding` (true = hidden): 0 where a query may
/// look, −∞ elsewhere. Bottom-right aligned, as with a KV cache: query i sees keys ≤ i + (sk − sq).
///
/// # Shapes
/// - padding `[batch, heads, seq_q, seq_k]` → `[batch, heads, seq_q, seq_k]` (`[1, 1, …]` without)
pub fn attention_bias(
    seq_q: usize,
    seq_k: usize,
    padding: Option<Tensor<4, Bool>>,
    device: &Device,
) -> Tensor<4> {
    let offset = seq_k - seq_q.min(seq_k);
    let causal: Vec<f32> = (0..seq_q)
        .flat_map(|i| (0..seq_k).map(move |j| if j > i + offset { HIDDEN } else { 0.0 }))
        .collect();
    let bias = Tensor::<4>::from_data(TensorData::new(causal, [1, 1, seq_q, seq_k]), device);
    match padding {
        Some(mask) => bias.expand(mask.dims()).mask_fill(mask, HIDDEN),
        None => bias,
    }
}

/// Attention `softmax(q·kᵀ/√d + bias)·v` written for autodiff: the scale goes on `q` (16×
/// smaller than the scores at head_dim 32), masks are one constant additive bias (see
/// [`attention_bias`]), and the softmax shift is a detached row max (softmax is
/// shift-invariant, so its gradient is exact). burn's composite fallback tracks 9 ops over the
/// `[seq, seq]` scores, this 5, with the same values (tested against it); fully hidden rows
/// give 0, as burn's do.
///
/// # Shapes
/// - q `[batch, heads, seq_q, head_dim]`, k and v `[batch, heads, seq_k, head_dim]`, bias
///   broadcastable to `[batch, heads, seq_q, seq_k]` → `[batch, heads, seq_q, head_dim]`
pub fn attention_with_bias(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    attention_with_bias_in(q, k, v, bias, Precision::F32)
}

/// [`attention_with_bias`] with its two products in `precision` (scores and output rounded
/// to it, as autocast's matmuls are); the bias, softmax and its normalisation stay f32.
///
/// # Shapes
/// - as [`attention_with_bias`]
pub fn attention_with_bias_in(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
    precision: Precision,
) -> Tensor<4> {
    let d = q.dims()[3];
    let scores = precision::matmul(
        q.mul_scalar(1.0 / (d as f64).sqrt()),
        k.swap_dims(2, 3),
        precision,
    ) + bias;
    // A fully hidden row has max −∞; clamping the shift keeps (−∞) − shift at −∞, not NaN.
    let shift = scores.clone().detach().max_dim(3).clamp_min(f32::MIN);
    let e = (scores - shift).exp();
    let p = e.clone() / e.sum_dim(3).add_scalar(EMPTY_ROW);
    precision::matmul(p, v, precision)
}

/// [`attention_with_bias`] with the bias of [`attention_bias`], in one call.
///
/// # Shapes
/// - q `[batch, heads, seq_q, head_dim]`, k and v `[batch, heads, seq_k, head_dim]`,
///   mask `[batch, heads, seq_q, seq_k]` (true = hidden) → `[batch, heads, seq_q, head_dim]`
pub fn causal_attention_tracked(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
) -> Tensor<4> {
    let bias = attention_bias(q.dims()[2], k.dims()[2], mask, &q.device());
    attention_with_bias(q, k, v, bias)
}
