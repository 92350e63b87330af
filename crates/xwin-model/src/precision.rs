//! Mixed precision as `torch.autocast` runs HF's Llama: the matrix products (every projection,
//! attention's two products, the LM and score heads) take operands cast to bf16 or f16 at use
//! and round their results to it; everything else — the f32 parameters (the master weights),
//! the residual stream, RMSNorm, RoPE, softmax and every loss — stays f32. autocast puts the
//! casts in the same places for Llama: RoPE's `q·cos` promotes to f32 because `cos` is f32,
//! softmax is upcast explicitly, and the loss reads `logits.float()`. Gradients reach the f32
//! parameters through burn's cast backward, as torch's reach them through autocast's casts.
//!
//! A product's result goes back to f32 at once: the value is the half-precision one (what
//! torch's next op reads), held in f32 so that the op after it runs as torch's promotion rules
//! make it run.

use burn::tensor::{DType, FloatDType, Tensor};
use serde::{Deserialize, Serialize};

/// The precision of the matrix products (`[train] precision`, `--precision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Plain f32 everywhere.
    #[default]
    F32,
    /// bfloat16 products: f32's range, 8 bits of mantissa; no loss scaling needed.
    Bf16,
    /// float16 products: 11 bits of mantissa, range to 65504; training needs loss scaling.
    F16,
}

impl Precision {
    /// The names `--precision` and `precision = "…"` accept.
    pub const NAMES: [&'static str; 3] = ["f32", "bf16", "f16"];

    pub fn is_f32(&self) -> bool {
        *self == Self::F32
    }

    /// The dtype the products run in; `None` for f32.
    pub fn half(self) -> Option<FloatDType> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(FloatDType::BF16),
            Self::F16 => Some(FloatDType::F16),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" | "fp32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" | "fp16" => Ok(Self::F16),
            other => Err(format!(
                "unknown precision `{other}` (one of {})",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// `a · b` in `precision`: both operands cast to it, the product rounded to it, the result
/// returned in f32 (the half-precision value). Plain `a.matmul(b)` for f32.
///
/// # Shapes
/// - a `[..., m, k]`, b `[..., k, n]` → `[..., m, n]`
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>, precision: Precision) -> Tensor<D> {
    match precision.half() {
        None => a.matmul(b),
        Some(half) => to_f32(a.cast(half).matmul(b.cast(half))),
    }
}

/// `x` rounded to `precision` and held in f32 (what a half-precision tensor reads as).
pub fn round_to<const D: usize>(x: Tensor<D>, precision: Precision) -> Tensor<D> {
    match precision.half() {
        None => x,
        Some(half) => to_f32(x.cast(half)),
    }
}

fn to_f32<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.dtype() == DType::F32 {
        x
    } else {
        x.cast(FloatDType::F32)
    }
}
