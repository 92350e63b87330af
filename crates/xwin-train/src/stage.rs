//! What every training stage shares: the `[model]` table, reading a stage's TOML config, the
//! output directory (metrics, checkpoints, final model, and a lock so that two runs never
//! write it at once), the identity of the base model and tokenizer that resume checks, and
//! the final export in Hugging Face layout with what `transformers` and vLLM read beside it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use xwin_data::{ChatTemplate, DataError, OutputLock};
use xwin_model::{LlamaConfig, LlamaForCausalLM, ModelError, SaveOptions, save_causal_lm_with};

/// The `[model]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    /// HF model directory to start from.
    pub path: PathBuf,
    /// `tokenizer.json`; defaults to the one in `path`.
    #[serde(default)]
    pub tokenizer: Option<PathBuf>,
    #[serde(default = "defaults::device")]
    pub device: String,
}

/// Serde defaults the stages' `[data]` and `[batching]` tables share.
pub mod defaults {
    use xwin_data::ChatTemplate;

    pub fn template() -> ChatTemplate {
        ChatTemplate::VicunaV11
    }

    /// FastChat's 4096-token blocks.
    pub fn max_len() -> usize {
        xwin_data::DEFAULT_BLOCK_LEN
    }

    pub fn device() -> String {
        "cpu".into()
    }

    /// Padded tokens per micro-batch.
    pub fn max_batch_tokens() -> usize {
        16_384
    }
}

impl ModelSection {
    /// The tokenizer file: the configured one or `tokenizer.json` in the model directory.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.tokenizer
            .clone()
            .unwrap_or_else(|| self.path.join("tokenizer.json"))
    }
}

/// A held-out fraction must leave something to train on.
pub fn check_eval_fraction(fraction: f64) -> Result<(), String> {
    if (0.0..1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(format!(
            "data.eval_fraction must be in [0, 1), got {fraction}"
        ))
    }
}

/// Errors shared by the stages.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |source| StageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a stage's TOML config; errors name the file, line and field.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, StageError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    toml::from_str(&text).map_err(|e| StageError::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A stage's output directory, locked for this run.
#[derive(Debug)]
pub struct StageDir {
    root: PathBuf,
    _lock: OutputLock,
}

impl StageDir {
    /// Creates `root` if needed and takes its lock; a second run on the same directory gets
    /// [`DataError::Locked`] naming the first.
    pub fn open(root: &Path) -> Result<Self, StageError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        let lock = OutputLock::acquire(xwin_data::lock_path_for(root, true))?;
        Ok(Self {
            root: root.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `metrics.jsonl`: one line per optimizer step.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }

    /// Checkpoints, `step-NNNNNNNN` each.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }

    /// The trained model in HF layout.
    pub fn model(&self) -> PathBuf {
        self.root.join("model")
    }

    /// The loop's run in this directory: metrics here, checkpoints (when asked for) here.
    pub fn run(
        &self,
        total_steps: usize,
        device: &burn::tensor::Device,
        checkpoint: Option<crate::checkpoint::CheckpointPolicy>,
        fingerprint: String,
    ) -> crate::trainer::Run {
        crate::trainer::Run {
            total_steps,
            device: device.clone(),
            checkpoints: checkpoint.map(|policy| crate::checkpoint::Checkpointing {
                dir: self.checkpoints(),
                policy,
            }),
            metrics: Some(self.metrics()),
            fingerprint,
        }
    }
}

/// Identity of what a run starts from: the base model's config and weight files and the
/// tokenizer, hashed by content (xxh3, streamed), so that a checkpoint written from other
/// weights is refused even when the path is the same.
pub fn base_fingerprint(model: &ModelSection) -> Result<String, StageError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&model.path)
        .map_err(io(&model.path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n == "config.json"
                    || n.ends_with(".safetensors")
                    || n == "model.safetensors.index.json"
            })
        })
        .collect();
    files.sort();
    files.push(model.tokenizer_path());
    let mut digest = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    for path in &files {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        digest.update(name.as_bytes());
        let mut file = std::fs::File::open(path).map_err(io(path))?;
        loop {
            let n = file.read(&mut buffer).map_err(io(path))?;
            if n == 0 {
                break;
            }
            digest.update(&buffer[..n]);
        }
    }
    Ok(format!("{:016x}", digest.digest()))
}

/// The identity a stage gives its run (`Run::fingerprint`): its training data hashed item by
/// item (memory of one item, whatever the data set's size), the base model and tokenizer
/// ([`base_fingerprint`]) and the stage's own settings.
pub fn run_fingerprint(
    items: impl IntoIterator<Item = Vec<u8>>,
    base: &ModelSection,
    settings: &impl Serialize,
) -> Result<String, StageError> {
    let digests: Vec<u8> = items
        .into_iter()
        .flat_map(|bytes| xwin_data::stable_hash(&bytes).to_le_bytes())
        .collect();
    Ok(format!(
        "{:016x}|{}|{}",
        xwin_data::stable_hash(&digests),
        base_fingerprint(base)?,
        serde_json::to_string(settings).unwrap_or_default()
    ))
}

/// Saves `model` to `out` in HF layout, atomically, with [`export_files`] beside it, so that
/// `transformers` and vLLM serve it as it is.
pub fn export_model(
    model: &LlamaForCausalLM,
    base: &ModelSection,
    template: ChatTemplate,
    out: &Path,
) -> Result<(), StageError> {
    let files = export_files(model.config(), base, template)?;
    save_causal_lm_with(model, out, SaveOptions::default(), &files)?;
    Ok(())
}

/// The files an exported model carries besides weights and `config.json`: the tokenizer, a
/// `tokenizer_config.json` (special tokens and `template` as the chat template, or the base
/// model's own file when it has one), the base model's `generation_config.json` when it has
/// one (else the writer derives it from `config`), and its `special_tokens_map.json` /
/// `tokenizer.model` when present.
pub fn export_files(
    config: &LlamaConfig,
    base: &ModelSection,
    template: ChatTemplate,
) -> Result<Vec<(String, Vec<u8>)>, StageError> {
    let tokenizer_path = base.tokenizer_path();
    let tokenizer = std::fs::read(&tokenizer_path).map_err(io(&tokenizer_path))?;
    let tokenizer_config = match read_optional(&base.path.join("tokenizer_config.json"))? {
        Some(bytes) => bytes,
        None => tokenizer_config(config, &tokenizer, template)
            .to_string()
            .into_bytes(),
    };
    let mut files = vec![
        ("tokenizer.json".to_string(), tokenizer),
        ("tokenizer_config.json".to_string(), tokenizer_config),
    ];
    if let Some(bytes) = read_optional(&base.path.join("generation_config.json"))? {
        files.push(("generation_config.json".to_string(), bytes));
    }
    for extra in ["special_tokens_map.json", "tokenizer.model"] {
        if let Some(bytes) = read_optional(&base.path.join(extra))? {
            files.push((extra.to_string(), bytes));
        }
    }
    Ok(files)
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StageError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// `tokenizer_config.json` for a tokenizer that has none: the special tokens by the model's
/// ids (their text looked up in `tokenizer.json`) and the chat template.
fn tokenizer_config(
    config: &LlamaConfig,
    tokenizer_json: &[u8],
    template: ChatTemplate,
) -> serde_json::Value {
    let parsed: serde_json::Value = serde_json::from_slice(tokenizer_json).unwrap_or_default();
    let token = |id: Option<u32>| -> serde_json::Value {
        let Some(id) = id else {
            return serde_json::Value::Null;
        };
        parsed["added_tokens"]
            .as_array()
            .and_then(|all| all.iter().find(|t| t["id"].as_u64() == Some(u64::from(id))))
            .map_or(serde_json::Value::Null, |t| t["content"].clone())
    };
    serde_json::json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": token(config.bos_token_id),
        "eos_token": token(config.eos_token_ids.first().copied()),
        "pad_token": token(config.pad_token_id),
        "unk_token": token(Some(0)),
        "add_bos_token": true,
        "add_eos_token": false,
        "clean_up_tokenization_spaces": false,
        "model_max_length": config.max_position_embeddings,
        "chat_template": template.hf_chat_template(),
    })
}
