//! `LlamaConfig`: the architecture hyper-parameters, read from and written to HF `config.json`.
//!
//! Both layouts that `transformers` writes are accepted: 4.x (top-level `rope_theta`, absent
//! meaning 10000, and `rope_scaling`) and 5.x (`rope_parameters`).

use crate::error::{ModelError, Result};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};

/// How rotary frequencies are scaled for long contexts.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    Default,
    /// Positions divided by `factor` (HF `"linear"`).
    Linear { factor: f64 },
    /// Llama 3.1 frequency-dependent scaling (HF `"llama3"`).
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: usize,
    },
}

/// Architecture of a Llama model, as HF `LlamaConfig` describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    /// All ids that end a sequence (HF allows a list).
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

impl LlamaConfig {
    /// Llama-2 7B.
    pub fn llama2_7b() -> Self {
        Self::llama2(4096, 11008, 32, 32, 32)
    }

    /// Llama-2 13B.
    pub fn llama2_13b() -> Self {
        Self::llama2(5120, 13824, 40, 40, 40)
    }

    /// Llama-2 70B (grouped-query attention, 8 key-value heads).
    pub fn llama2_70b() -> Self {
        Self::llama2(8192, 28672, 80, 64, 8)
    }

    /// A preset by name: `7b`, `13b` or `70b`.
    pub fn preset(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().trim_start_matches("llama2-") {
            "7b" => Some(Self::llama2_7b()),
            "13b" => Some(Self::llama2_13b()),
            "70b" => Some(Self::llama2_70b()),
            _ => None,
        }
    }

    fn llama2(hidden: usize, inter: usize, layers: usize, heads: usize, kv: usize) -> Self {
        Self {
            vocab_size: 32000,
            hidden_size: hidden,
            intermediate_size: inter,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            num_key_value_heads: kv,
            head_dim: hidden / heads,
            rms_norm_eps: 1e-5,
            rope_theta: 10000.0,
            rope_scaling: RopeScaling::Default,
            max_position_embeddings: 4096,
            tie_word_embeddings: false,
            bos_token_id: Some(1),
            eos_token_ids: vec![2],
            pad_token_id: None,
        }
    }

    /// Number of parameters of the causal LM (embeddings and head included).
    pub fn num_parameters(&self) -> usize {
        let h = self.hidden_size;
        let q = self.num_attention_heads * self.head_dim;
        let kv = self.num_key_value_heads * self.head_dim;
        let attn = h * q + 2 * h * kv + q * h;
        let mlp = 3 * h * self.intermediate_size;
        let layer = attn + mlp + 2 * h;
        let embed = self.vocab_size * h;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        embed + self.num_hidden_layers * layer + h + head
    }

    /// Fails when `len` tokens exceed the context (`max_position_embeddings`: positions past
    /// it were never trained; RoPE scaling is declared by raising it in `config.json`).
    pub fn check_context(&self, len: usize) -> Result<()> {
        let max = self.max_position_embeddings;
        if len > max {
            return Err(ModelError::InvalidInput(format!(
                "{len} tokens exceed the model's context of {max} (max_position_embeddings)"
            )));
        }
        Ok(())
    }

    /// Adds the stop ids of `dir/generation_config.json` (when present) to
    /// [`Self::eos_token_ids`]: generation stops on any of them, as `transformers` does with
    /// Llama-3's several end-of-turn ids, which only that file lists.
    pub fn add_generation_stop_ids(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("generation_config.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(ModelError::io(&path, e)),
        };
        let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        let Some(map) = value.as_object() else {
            return Ok(());
        };
        let fields = Fields { map, path };
        for id in fields.token_ids("eos_token_id")? {
            if !self.eos_token_ids.contains(&id) {
                self.eos_token_ids.push(id);
            }
        }
        Ok(())
    }

    /// Reads `config.json` (the file or the directory holding it).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let mut path = path.as_ref().to_path_buf();
        if path.is_dir() {
            path = path.join("config.json");
        }
        let text = std::fs::read_to_string(&path).map_err(|e| ModelError::io(&path, e))?;
        let value: Value = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.clone(),
            source,
        })?;
        Self::from_json(&value, &path)
    }

    /// Parses a HF config object; `path` only names the source in errors.
    pub fn from_json(value: &Value, path: &Path) -> Result<Self> {
        let fields = Fields {
            map: value.as_object().ok_or_else(|| ModelError::Config {
                path: path.to_path_buf(),
                field: "<root>".into(),
                message: "expected a JSON object".into(),
            })?,
            path: path.to_path_buf(),
        };
        if let Some(model_type) = fields.opt_str("model_type")?
            && model_type != "llama"
        {
            return Err(fields.err(
                "model_type",
                format!("`{model_type}` is not supported (only `llama`)"),
            ));
        }
        if let Some(act) = fields.opt_str("hidden_act")?
            && act != "silu"
        {
            return Err(fields.err(
                "hidden_act",
                format!("`{act}` is not supported (only `silu`)"),
            ));
        }
        for flag in ["attention_bias", "mlp_bias"] {
            if fields.opt_bool(flag)?.unwrap_or(false) {
                return Err(fields.err(flag, "biases in attention/MLP are not supported".into()));
            }
        }
        let hidden_size = fields.usize("hidden_size")?;
        let num_attention_heads = fields.usize("num_attention_heads")?;
        let num_key_value_heads = fields
            .opt_usize("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_attention_heads == 0 || num_key_value_heads == 0 {
            return Err(fields.err("num_attention_heads", "head counts must be positive".into()));
        }
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(fields.err(
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"),
            ));
        }
        let head_dim = match fields.opt_usize("head_dim")? {
            Some(d) => d,
            None if hidden_size % num_attention_heads == 0 => hidden_size / num_attention_heads,
            None => {
                return Err(fields.err(
                    "hidden_size",
                    format!("{hidden_size} is not divisible by num_attention_heads {num_attention_heads}"),
                ));
            }
        };
        if head_dim % 2 != 0 {
            return Err(fields.err(
                "head_dim",
                format!("{head_dim} must be even for rotary embeddings"),
            ));
        }
        let (rope_theta, rope_scaling) = fields.rope()?;
        let eos_token_ids = fields.token_ids("eos_token_id")?;
        let config = Self {
            vocab_size: fields.usize("vocab_size")?,
            hidden_size,
            intermediate_size: fields.usize("intermediate_size")?,
            num_hidden_layers: fields.usize("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            rms_norm_eps: fields.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: fields.opt_usize("max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: fields.opt_bool("tie_word_embeddings")?.unwrap_or(false),
            bos_token_id: fields.opt_u32("bos_token_id")?,
            eos_token_ids,
            pad_token_id: fields.opt_u32("pad_token_id")?,
        };
        if config.rms_norm_eps <= 0.0 {
            return Err(fields.err("rms_norm_eps", "must be positive".into()));
        }
        Ok(config)
    }

    /// The HF `config.json` object for this config. Both rope layouts are written so that
    /// transformers 4.x, 5.x and vLLM read it.
    pub fn to_json(&self) -> Value {
        let (rope_type, extra) = match &self.rope_scaling {
            RopeScaling::Default => ("default", None),
            RopeScaling::Linear { factor } => ("linear", Some(json!({ "factor": factor }))),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings,
            } => (
                "llama3",
                Some(json!({
                    "factor": factor,
                    "low_freq_factor": low_freq_factor,
                    "high_freq_factor": high_freq_factor,
                    "original_max_position_embeddings": original_max_position_embeddings,
                })),
            ),
        };
        let mut rope_parameters = json!({ "rope_type": rope_type, "rope_theta": self.rope_theta });
        let rope_scaling = extra.map(|mut e| {
            if let (Some(params), Some(e)) = (rope_parameters.as_object_mut(), e.as_object()) {
                params.extend(e.clone());
            }
            e["rope_type"] = json!(rope_type);
            e
        });
        let eos = match self.eos_token_ids.as_slice() {
            [] => Value::Null,
            [one] => json!(one),
            many => json!(many),
        };
        json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "attention_bias": false,
            "attention_dropout": 0.0,
            "mlp_bias": false,
            "pretraining_tp": 1,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope_scaling,
            "rope_parameters": rope_parameters,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": eos,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": "float32",
            "use_cache": true,
        })
    }

    /// Writes `config.json` into `dir`.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let path = dir.as_ref().join("config.json");
        let text =
            serde_json::to_string_pretty(&self.to_json()).map_err(|source| ModelError::Json {
                path: path.clone(),
                source,
            })?;
        std::fs::write(&path, text).map_err(|e| ModelError::io(&path, e))
    }
}

fn as_u32(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// Typed access to config fields with errors that name the field.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: PathBuf,
}

impl Fields<'_> {
    /// A token id or a list of them (HF allows both); absent or null is empty.
    fn token_ids(&self, field: &str) -> Result<Vec<u32>> {
        match self.map.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|v| as_u32(v).ok_or_else(|| self.err(field, "expected token ids".into())))
                .collect(),
            Some(v) => {
                Ok(vec![as_u32(v).ok_or_else(|| {
                    self.err(field, "expected a token id".into())
                })?])
            }
        }
    }

    fn err(&self, field: &str, message: String) -> ModelError {
        ModelError::Config {
            path: self.path.clone(),
            field: field.to_string(),
            message,
        }
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    fn opt_usize(&self, field: &str) -> Result<Option<usize>> {
        self.get(field)
            .map(|v| {
                v.as_u64().map(|n| n as usize).ok_or_else(|| {
                    self.err(field, format!("expected a non-negative integer, found {v}"))
                })
            })
            .transpose()
    }

    fn usize(&self, field: &str) -> Result<usize> {
        self.opt_usize(field)?
            .ok_or_else(|| self.err(field, "required field is missing".into()))
    }

    fn opt_u32(&self, field: &str) -> Result<Option<u32>> {
        self.get(field)
            .map(|v| {
                as_u32(v).ok_or_else(|| self.err(field, format!("expected a token id, found {v}")))
            })
            .transpose()
    }

    fn opt_f64(&self, field: &str) -> Result<Option<f64>> {
        self.get(field)
            .map(|v| {
                v.as_f64()
                    .ok_or_else(|| self.err(field, format!("expected a number, found {v}")))
            })
            .transpose()
    }

    fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        self.get(field)
            .map(|v| {
                v.as_bool()
                    .ok_or_else(|| self.err(field, format!("expected true/false, found {v}")))
            })
            .transpose()
    }

    fn opt_str(&self, field: &str) -> Result<Option<&str>> {
        self.get(field)
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| self.err(field, format!("expected a string, found {v}")))
            })
            .transpose()
    }

    /// `rope_theta` and scaling from either layout; a disagreement between them is an error.
    fn rope(&self) -> Result<(f64, RopeScaling)> {
        let top_theta = self.opt_f64("rope_theta")?;
        let (params_field, params) = match (self.get("rope_parameters"), self.get("rope_scaling")) {
            (Some(p), _) => ("rope_parameters", Some(p)),
            (None, Some(s)) => ("rope_scaling", Some(s)),
            (None, None) => ("rope_parameters", None),
        };
        let params = match params {
            Some(p) => Some(
                p.as_object()
                    .ok_or_else(|| self.err(params_field, "expected an object".into()))?,
            ),
            None => None,
        };
        let sub = |key: &str| params.and_then(|p| p.get(key)).filter(|v| !v.is_null());
        let field_name = |key: &str| format!("{params_field}.{key}");
        let num = |key: &str| -> Result<Option<f64>> {
            sub(key)
                .map(|v| {
                    v.as_f64().ok_or_else(|| {
                        self.err(&field_name(key), format!("expected a number, found {v}"))
                    })
                })
                .transpose()
        };
        let nested_theta = num("rope_theta")?;
        let theta = match (top_theta, nested_theta) {
            (Some(a), Some(b)) if (a - b).abs() > 1e-9 * a.abs().max(1.0) => {
                return Err(self.err(
                    "rope_theta",
                    format!("top-level value {a} contradicts {params_field}.rope_theta {b}"),
                ));
            }
            (Some(a), _) => a,
            (None, Some(b)) => b,
            (None, None) => 10000.0,
        };
        if theta <= 0.0 {
            return Err(self.err("rope_theta", format!("must be positive, found {theta}")));
        }
        let rope_type = match sub("rope_type").or_else(|| sub("type")) {
            None => "default".to_string(),
            Some(v) => v
                .as_str()
                .ok_or_else(|| {
                    self.err(
                        &field_name("rope_type"),
                        format!("expected a string, found {v}"),
                    )
                })?
                .to_string(),
        };
        let require = |key: &str| -> Result<f64> {
            num(key)?.ok_or_else(|| {
                self.err(
                    &field_name(key),
                    format!("required for rope_type `{rope_type}`"),
                )
            })
        };
        let scaling = match rope_type.as_str() {
            "default" => RopeScaling::Default,
            "linear" => RopeScaling::Linear {
                factor: require("factor")?,
            },
            "llama3" => {
                let original = require("original_max_position_embeddings")?;
                RopeScaling::Llama3 {
                    factor: require("factor")?,
                    low_freq_factor: require("low_freq_factor")?,
                    high_freq_factor: require("high_freq_factor")?,
                    original_max_position_embeddings: original as usize,
                }
            }
            other => {
                return Err(self.err(
                    &field_name("rope_type"),
                    format!("`{other}` is not supported (default, linear, llama3)"),
                ));
            }
        };
        if let RopeScaling::Llama3 {
            low_freq_factor,
            high_freq_factor,
            ..
        } = &scaling
            && high_freq_factor <= low_freq_factor
        {
            return Err(self.err(
                &field_name("high_freq_factor"),
                "must exceed low_freq_factor".into(),
            ));
        }
        Ok((theta, scaling))
    }
}
