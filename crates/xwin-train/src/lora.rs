//! LoRA (Hu et al. 2021) as an option of every stage's `[train]` table: the projections named
//! in `targets` get trainable low-rank adapters `W + (alpha / rank)·A·B` (A drawn, B zero, so
//! training starts from the model as loaded), every other parameter is frozen, and the trained
//! model is exported with the adapters merged into its weights (a plain HF checkpoint). burn's
//! `Module::apply_lora` does the reparameterisation; the optimizer, checkpoints and resume see
//! the adapters as ordinary parameters. Memory: AdamW moments and gradients for the adapters
//! only, which is what lets a 7B model train on one GPU (see `MemoryEstimate`).

use burn::module::{Lora, Module, ParamGroup};
use serde::{Deserialize, Serialize};
use xwin_model::LlamaConfig;

/// The projections of a Llama layer, as HF (and PEFT's `target_modules`) name them.
pub const PROJECTIONS: [&str; 7] = [
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// The `[train.lora]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank of the adapters.
    pub rank: usize,
    /// The adapters' output is scaled by `alpha / rank`.
    pub alpha: f64,
    /// Which projections get adapters (PEFT's `target_modules`); all seven by default.
    #[serde(default = "all_projections")]
    pub targets: Vec<String>,
    /// Top-level modules trained in full beside the adapters (PEFT's `modules_to_save`); the
    /// reward-model stage adds its fresh `score` head, as PEFT does for sequence
    /// classification.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules_to_save: Vec<String>,
}

fn all_projections() -> Vec<String> {
    PROJECTIONS.iter().map(|p| p.to_string()).collect()
}

impl LoraConfig {
    /// Adapters of `rank` on all seven projections, scaled by `alpha / rank`.
    pub fn on_all_projections(rank: usize, alpha: f64) -> Self {
        Self {
            rank,
            alpha,
            targets: all_projections(),
            modules_to_save: Vec::new(),
        }
    }

    /// Checks the table: rank ≥ 1, a finite alpha, known target names, plain module names.
    pub fn check(&self) -> Result<(), String> {
        if self.rank == 0 || !self.alpha.is_finite() {
            return Err("train.lora: rank must be ≥ 1 and alpha finite".into());
        }
        if let Some(m) = self
            .modules_to_save
            .iter()
            .find(|m| m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            return Err(format!(
                "train.lora.modules_to_save: `{m}` is not a module name (letters, digits, _)"
            ));
        }
        if self.targets.is_empty() {
            return Err("train.lora.targets: empty (name at least one projection)".into());
        }
        match self
            .targets
            .iter()
            .find(|t| !PROJECTIONS.contains(&t.as_str()))
        {
            Some(t) => Err(format!(
                "train.lora.targets: unknown projection `{t}` (one of {})",
                PROJECTIONS.join(", ")
            )),
            None => Ok(()),
        }
    }

    /// `model` with adapters on the targeted projections' weights, the `modules_to_save`
    /// trainable and every other parameter frozen. Call [`LoraConfig::check`] first.
    pub fn apply<M: Module>(&self, model: M) -> M {
        // Names are plain words (checked): nothing to escape.
        let pattern = format!(r"\.({})\.weight$", self.targets.join("|"));
        let group = ParamGroup::from_regex(&pattern).expect("projection names form a valid regex");
        let model = model.apply_lora(Lora::new(self.rank, self.alpha).set_param_group(group));
        if self.modules_to_save.is_empty() {
            return model;
        }
        let saved = format!(r"^({})\.", self.modules_to_save.join("|"));
        model.unfreeze_group(
            ParamGroup::from_regex(&saved).expect("module names form a valid regex"),
        )
    }

    /// This table with `module` also trained in full.
    pub fn saving(mut self, module: &str) -> Self {
        if !self.modules_to_save.iter().any(|m| m == module) {
            self.modules_to_save.push(module.to_string());
        }
        self
    }

    /// Trainable parameters the adapters add to `config`'s model.
    pub fn parameters(&self, config: &LlamaConfig) -> usize {
        self.per_target(config, |d_in, d_out| self.rank * (d_in + d_out))
    }

    /// Elements of the adapted weights: each forward composes `W + scale·A·B` for them, and
    /// the products keep those merged copies for the backward pass.
    pub fn adapted_weights(&self, config: &LlamaConfig) -> usize {
        self.per_target(config, |d_in, d_out| d_in * d_out)
    }

    /// `size(d_in, d_out)` summed over the targeted projections of every layer.
    fn per_target(&self, config: &LlamaConfig, size: impl Fn(usize, usize) -> usize) -> usize {
        let h = config.hidden_size;
        let q = config.num_attention_heads * config.head_dim;
        let kv = config.num_key_value_heads * config.head_dim;
        let inter = config.intermediate_size;
        let per_layer: usize = self
            .targets
            .iter()
            .map(|t| match t.as_str() {
                "q_proj" => size(h, q),
                "k_proj" | "v_proj" => size(h, kv),
                "o_proj" => size(q, h),
                "down_proj" => size(inter, h),
                _ => size(h, inter), // gate_proj, up_proj
            })
            .sum();
        per_layer * config.num_hidden_layers
    }
}
