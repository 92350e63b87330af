//! Where a model's parameters come from (random init or a checkpoint) and how they are named
//! in the Hugging Face layout, so that building and exporting share one list of names.

use crate::error::Result;
use burn::module::Param;
use burn::nn::{Embedding, Linear, RmsNorm};
use burn::tensor::{Device, Distribution, Tensor};

/// Supplies parameter values by HF tensor name while a model is being built.
///
/// Shapes are given in the HF layout; implementations return burn's layout (`Linear`
/// weights transposed to `[d_in, d_out]`).
pub trait ParamSource {
    /// A `nn.Linear` weight stored by HF as `[d_out, d_in]`; returns `[d_in, d_out]`.
    fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Tensor<2>>;
    /// A matrix stored as-is (`[rows, cols]`), such as the token embedding.
    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Tensor<2>>;
    /// A vector such as an RMSNorm weight.
    fn vector(&mut self, name: &str, len: usize) -> Result<Tensor<1>>;
}

/// Fresh weights as HF initialises them: normal(0, `std`) matrices, unit norm weights.
pub struct RandomInit {
    pub device: Device,
    pub std: f64,
}

impl RandomInit {
    pub fn new(device: &Device) -> Self {
        Self {
            device: device.clone(),
            std: 0.02,
        }
    }

    fn normal(&self, shape: [usize; 2]) -> Tensor<2> {
        Tensor::random(shape, Distribution::Normal(0.0, self.std), &self.device)
    }
}

impl ParamSource for RandomInit {
    fn linear(&mut self, _name: &str, d_in: usize, d_out: usize) -> Result<Tensor<2>> {
        Ok(self.normal([d_in, d_out]))
    }
    fn matrix(&mut self, _name: &str, rows: usize, cols: usize) -> Result<Tensor<2>> {
        Ok(self.normal([rows, cols]))
    }
    fn vector(&mut self, _name: &str, len: usize) -> Result<Tensor<1>> {
        Ok(Tensor::ones([len], &self.device))
    }
}

/// A parameter as HF stores it, for export.
#[derive(Debug, Clone)]
pub enum HfTensor {
    /// Burn `[d_in, d_out]`, written transposed as `[d_out, d_in]`.
    Linear(Tensor<2>),
    /// Written as-is.
    Matrix(Tensor<2>),
    /// Written as-is.
    Vector(Tensor<1>),
}

impl HfTensor {
    /// Shape in the HF layout.
    pub fn hf_shape(&self) -> Vec<usize> {
        match self {
            Self::Linear(t) => {
                let [d_in, d_out] = t.dims();
                vec![d_out, d_in]
            }
            Self::Matrix(t) => t.dims().to_vec(),
            Self::Vector(t) => t.dims().to_vec(),
        }
    }
}

/// Named parameters in the HF layout, in a stable order.
pub type HfTensors = Vec<(String, HfTensor)>;

pub(crate) fn linear(
    source: &mut dyn ParamSource,
    name: &str,
    d_in: usize,
    d_out: usize,
) -> Result<Linear> {
    Ok(Linear {
        weight: Param::from_tensor(source.linear(name, d_in, d_out)?),
        bias: None,
    })
}

pub(crate) fn rms_norm(
    source: &mut dyn ParamSource,
    name: &str,
    len: usize,
    eps: f64,
) -> Result<RmsNorm> {
    Ok(RmsNorm {
        gamma: Param::from_tensor(source.vector(name, len)?),
        epsilon: eps,
    })
}

pub(crate) fn embedding(
    source: &mut dyn ParamSource,
    name: &str,
    rows: usize,
    cols: usize,
) -> Result<Embedding> {
    Ok(Embedding {
        weight: Param::from_tensor(source.matrix(name, rows, cols)?),
    })
}
