//! Rotary position embeddings in Hugging Face's rotate-half convention.
//!
//! burn's `RotaryEncoding` rotates interleaved pairs `(x0, x1), (x2, x3)…`; HF Llama rotates
//! the two halves `(x_i, x_{i+d/2})`. Checkpoints are trained with the latter, so we do the same.

use crate::config::{LlamaConfig, RopeScaling};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};

/// Configuration of [`RotaryEmbedding`].
#[derive(Debug, Clone)]
pub struct RotaryEmbeddingConfig {
    pub head_dim: usize,
    pub theta: f64,
    pub scaling: RopeScaling,
}

impl RotaryEmbeddingConfig {
    pub fn from_llama(config: &LlamaConfig) -> Self {
        Self {
            head_dim: config.head_dim,
            theta: config.rope_theta,
            scaling: config.rope_scaling.clone(),
        }
    }

    /// Computes the inverse frequencies in f32, as HF does.
    pub fn init(&self) -> RotaryEmbedding {
        let dim = self.head_dim;
        let base = self.theta as f32;
        let inv_freq: Vec<f32> = (0..dim)
            .step_by(2)
            .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
            .collect();
        let inv_freq = match self.scaling {
            RopeScaling::Default => inv_freq,
            RopeScaling::Linear { factor } => inv_freq.iter().map(|f| f / factor as f32).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => llama3_inv_freq(
                &inv_freq,
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                original_max_position_embeddings as f32,
            ),
        };
        RotaryEmbedding {
            inv_freq,
            head_dim: dim,
        }
    }
}

/// HF `_compute_llama3_parameters`: long wavelengths are divided by `factor`, short ones kept,
/// and the band between is interpolated.
fn llama3_inv_freq(inv_freq: &[f32], factor: f32, low: f32, high: f32, original: f32) -> Vec<f32> {
    let low_wavelen = original / low;
    let high_wavelen = original / high;
    inv_freq
        .iter()
        .map(|&f| {
            let wavelen = 2.0 * std::f32::consts::PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}

/// Rotary embedding: per-position cos/sin tables applied to queries and keys.
///
/// # Shapes
/// - tables: positions `[batch][seq]` → cos, sin `[batch, 1, seq, head_dim]`
/// - apply: `[batch, heads, seq, head_dim]` → same
#[derive(Module, Debug)]
pub struct RotaryEmbedding {
    inv_freq: Vec<f32>,
    head_dim: usize,
}

/// Cos/sin tables for one forward call, shared by every layer.
#[derive(Debug, Clone)]
pub struct RopeTables {
    cos: Tensor<4>,
    /// `sin` with the first half negated, so that `rotate_half(x) * sin` becomes
    /// `swap_halves(x) * signed_sin`.
    signed_sin: Tensor<4>,
}

impl RopeTables {
    /// `cos` and `signed_sin`, `[batch, 1, seq, head_dim]`.
    pub fn parts(&self) -> (Tensor<4>, Tensor<4>) {
        (self.cos.clone(), self.signed_sin.clone())
    }
}

impl RotaryEmbedding {
    /// Tables for the given positions (one row per sequence, all rows the same length).
    pub fn tables(&self, positions: &[Vec<usize>], device: &Device) -> RopeTables {
        let batch = positions.len();
        let seq = positions.first().map_or(0, Vec::len);
        let half = self.head_dim / 2;
        let mut cos = Vec::with_capacity(batch * seq * self.head_dim);
        let mut sin = Vec::with_capacity(batch * seq * self.head_dim);
        for row in positions {
            for &p in row {
                let angles: Vec<f32> = self.inv_freq.iter().map(|f| p as f32 * f).collect();
                for sign in [-1.0f32, 1.0] {
                    cos.extend(angles.iter().map(|a| a.cos()));
                    sin.extend(angles.iter().map(|a| sign * a.sin()));
                }
            }
        }
        debug_assert_eq!(cos.len(), batch * seq * 2 * half);
        let shape = [batch, 1, seq, self.head_dim];
        RopeTables {
            cos: Tensor::from_data(TensorData::new(cos, shape), device),
            signed_sin: Tensor::from_data(TensorData::new(sin, shape), device),
        }
    }

    /// `x * cos + rotate_half(x) * sin`. `cpu_ops::split_heads` does the same on the CPU.
    pub fn apply(&self, x: Tensor<4>, tables: &RopeTables) -> Tensor<4> {
        let [b, h, s, d] = x.dims();
        let half = d / 2;
        let swapped = Tensor::cat(
            vec![
                x.clone().slice([0..b, 0..h, 0..s, half..d]),
                x.clone().slice([0..b, 0..h, 0..s, 0..half]),
            ],
            3,
        );
        x * tables.cos.clone() + swapped * tables.signed_sin.clone()
    }
}
