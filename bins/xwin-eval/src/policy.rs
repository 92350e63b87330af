//! The local policy a command generates with: model, tokenizer, chat template and device.

use crate::judge::setup;
use std::path::Path;
use xwin_eval::EvalError;

/// What a `LocalSampler` borrows, loaded from a model directory.
pub struct Policy {
    pub model: xwin_model::LlamaForCausalLM,
    pub tokenizer: tokenizers::Tokenizer,
    pub template: xwin_data::ChatTemplate,
    pub device: burn::tensor::Device,
    /// The directory's name, or `model`.
    pub name: String,
}

impl Policy {
    pub fn load(dir: &Path, device: &str, template: &str) -> Result<Self, EvalError> {
        let template = xwin_data::ChatTemplate::parse(template)
            .ok_or_else(|| setup(format!("--template {template}: use vicuna-v11 or llama2")))?;
        let device = xwin_model::parse_device(device).map_err(|e| setup(e.to_string()))?;
        let model = xwin_model::load_causal_lm(dir, &device).map_err(|e| setup(e.to_string()))?;
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
    pub fn sampler(&self, name: String) -> xwin_rs::LocalSampler<'_> {
        xwin_rs::LocalSampler {
            model: &self.model,
            tokenizer: &self.tokenizer,
            template: self.template,
            name,
            device: self.device.clone(),
        }
    }
}
