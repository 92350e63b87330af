//! A local policy loaded from a model directory: what a [`LocalSampler`] borrows.

use crate::RsError;
use crate::local::LocalSampler;
use std::path::Path;

/// Model, tokenizer, chat template and device of a policy in HF layout.
pub struct LocalPolicy {
    pub model: xwin_model::LlamaForCausalLM,
    pub tokenizer: tokenizers::Tokenizer,
    pub template: xwin_data::ChatTemplate,
    pub device: burn::tensor::Device,
    /// The directory's name, or `model`.
    pub name: String,
}

impl LocalPolicy {
    /// Loads `dir` (with its `tokenizer.json`) onto `device` (`cpu`, `wgpu`, `cuda:N`).
    pub fn load(
        dir: &Path,
        device: &str,
        template: xwin_data::ChatTemplate,
    ) -> Result<Self, RsError> {
        let device = xwin_model::parse_device(device)?;
        let model = xwin_model::load_causal_lm(dir, &device)?;
        let tokenizer = xwin_data::load_tokenizer(&dir.join("tokenizer.json"))?;
        let name = dir
            .file_name()
            .map_or("model".into(), |n| n.to_string_lossy().to_string());
        Ok(Self {
            model,
            tokenizer,
            template,
            device,
            name,
        })
    }

    /// A sampler over this policy whose records carry `name`.
    pub fn sampler(&self, name: String) -> LocalSampler<'_> {
        LocalSampler {
            model: &self.model,
            tokenizer: &self.tokenizer,
            template: self.template,
            name,
            device: self.device.clone(),
        }
    }
}
