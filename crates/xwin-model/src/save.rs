//! Writing Hugging Face model directories: `config.json`, safetensors weights (sharded with an
//! index when large, f32/f16/bf16), `generation_config.json` and extra files, swapped in
//! atomically so that no reader sees a mix of two saves.

use crate::checkpoint::transpose;
use crate::config::LlamaConfig;
use crate::error::{ModelError, Result};
use crate::params::{HfTensor, HfTensors};
use safetensors::Dtype;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Dtype of saved weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SaveDtype {
    #[default]
    F32,
    F16,
    BF16,
}

impl SaveDtype {
    fn bytes_per_value(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }

    fn encode(self, values: &[f32]) -> (Dtype, Vec<u8>) {
        match self {
            Self::F32 => (
                Dtype::F32,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            Self::F16 => (
                Dtype::F16,
                values
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
            Self::BF16 => (
                Dtype::BF16,
                values
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
            ),
        }
    }
}

/// Options for [`save_hf`].
#[derive(Debug, Clone, Copy)]
pub struct SaveOptions {
    pub dtype: SaveDtype,
    /// Largest shard in bytes; bigger checkpoints are split with an index file, as HF does.
    pub max_shard_bytes: usize,
}

impl Default for SaveOptions {
    fn default() -> Self {
        Self {
            dtype: SaveDtype::F32,
            max_shard_bytes: 5 * 1024 * 1024 * 1024,
        }
    }
}

/// Writes a causal LM's `config.json` and safetensors weights into `dir`, HF style (see
/// [`save_model_dir`]).
pub fn save_hf(
    config: &LlamaConfig,
    tensors: &HfTensors,
    dir: impl AsRef<Path>,
    options: SaveOptions,
) -> Result<()> {
    let causal = Architecture::CausalLm;
    save_model_dir(config, causal, tensors, dir.as_ref(), options, &[])
}

/// Files the model-directory writer may replace; any other file already in the target
/// directory stops the save instead of being deleted with the old model.
const MODEL_DIR_FILES: [&str; 6] = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
];

/// Which HF class a saved directory is for (`architectures` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Architecture {
    /// `LlamaForCausalLM`.
    CausalLm,
    /// `LlamaForSequenceClassification` with one label (a reward model).
    Reward,
}

impl Architecture {
    /// The architecture `dir/config.json` names: a sequence classifier is a reward model,
    /// anything else (or no readable config) a causal LM.
    pub fn of_dir(dir: &Path) -> Self {
        let classifier = std::fs::read_to_string(dir.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|c| c["architectures"][0] == "LlamaForSequenceClassification");
        if classifier {
            Self::Reward
        } else {
            Self::CausalLm
        }
    }
}

/// Writes a whole model directory atomically: `config.json` (naming `architecture`), the
/// weights (sharded with an index when large), a `generation_config.json` with the model's
/// special ids unless `files` brings one, and `files` (name, bytes) beside them. Everything
/// goes to a hidden sibling directory, is fsynced, and replaces `dir` by renames, so no
/// reader ever sees a mix of two saves and no shard or index of an older save survives.
pub fn save_model_dir(
    config: &LlamaConfig,
    architecture: Architecture,
    tensors: &HfTensors,
    dir: &Path,
    options: SaveOptions,
    files: &[(String, Vec<u8>)],
) -> Result<()> {
    refuse_foreign_files(dir)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| ModelError::io(parent, e))?;
    let partial = parent.join(format!(".{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| ModelError::io(&partial, e))?;
    }
    std::fs::create_dir(&partial).map_err(|e| ModelError::io(&partial, e))?;
    let mut config_json = config.to_json();
    if architecture == Architecture::Reward {
        config_json["architectures"] = serde_json::json!(["LlamaForSequenceClassification"]);
        config_json["id2label"] = serde_json::json!({ "0": "LABEL_0" });
        config_json["label2id"] = serde_json::json!({ "LABEL_0": 0 });
    }
    write_weights(config_json, tensors, &partial, options)?;
    if !files.iter().any(|(n, _)| n == "generation_config.json") {
        let generation = generation_config(config);
        write_atomic(
            &partial.join("generation_config.json"),
            generation.to_string().as_bytes(),
        )?;
    }
    for (file, bytes) in files {
        write_atomic(&partial.join(file), bytes)?;
    }
    for entry in std::fs::read_dir(&partial).map_err(|e| ModelError::io(&partial, e))? {
        let path = entry.map_err(|e| ModelError::io(&partial, e))?.path();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| ModelError::io(&path, e))?;
    }
    let old = parent.join(format!(".{name}.old"));
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| ModelError::io(&old, e))?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old).map_err(|e| ModelError::io(dir, e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| ModelError::io(dir, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| ModelError::io(&old, e))?;
    }
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `generation_config.json` with the model's special ids (all EOS ids, as HF allows a list).
fn generation_config(config: &LlamaConfig) -> serde_json::Value {
    let eos = match config.eos_token_ids.as_slice() {
        [one] => serde_json::json!(one),
        many => serde_json::json!(many),
    };
    serde_json::json!({
        "bos_token_id": config.bos_token_id,
        "eos_token_id": eos,
        "pad_token_id": config.pad_token_id,
    })
}

/// An existing directory may only hold what a model save writes (so replacing it loses
/// nothing of the user's).
fn refuse_foreign_files(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(ModelError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| ModelError::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = MODEL_DIR_FILES.contains(&name.as_str())
            || name.ends_with(".safetensors")
            || name == "model.safetensors.index.json"
            || (name.starts_with('.') && name.ends_with(".tmp"));
        if !ours {
            return Err(ModelError::io(
                entry.path(),
                std::io::Error::other(
                    "not part of a saved model; refusing to replace the directory that holds it",
                ),
            ));
        }
    }
    Ok(())
}

/// `config.json` and the weights into `dir` (which exists and is empty).
fn write_weights(
    mut config_json: serde_json::Value,
    tensors: &HfTensors,
    dir: &Path,
    options: SaveOptions,
) -> Result<()> {
    config_json["torch_dtype"] = serde_json::json!(options.dtype.name());
    let config_path = dir.join("config.json");
    write_atomic(
        &config_path,
        serde_json::to_string_pretty(&config_json)
            .map_err(|source| ModelError::Json {
                path: config_path.clone(),
                source,
            })?
            .as_bytes(),
    )?;

    // Plan shards by size, in the model's parameter order.
    let mut shards: Vec<Vec<usize>> = vec![Vec::new()];
    let mut current = 0usize;
    for (i, (_, t)) in tensors.iter().enumerate() {
        let bytes = t.hf_shape().iter().product::<usize>() * options.dtype.bytes_per_value();
        if current > 0 && current + bytes > options.max_shard_bytes {
            shards.push(Vec::new());
            current = 0;
        }
        current += bytes;
        if let Some(last) = shards.last_mut() {
            last.push(i);
        }
    }
    let n = shards.len();
    let mut weight_map = BTreeMap::new();
    let mut total = 0usize;
    for (s, members) in shards.iter().enumerate() {
        let file = if n == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{n:05}.safetensors", s + 1)
        };
        let mut encoded = Vec::with_capacity(members.len());
        for &i in members {
            let (name, tensor) = &tensors[i];
            let values = host_values(tensor)?;
            let (dtype, bytes) = options.dtype.encode(&values);
            total += bytes.len();
            encoded.push((name.clone(), dtype, tensor.hf_shape(), bytes));
            weight_map.insert(name.clone(), file.clone());
        }
        let views = encoded
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
                    .map_err(|e| ModelError::Safetensors {
                        path: dir.join(&file),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let metadata: HashMap<String, String> = [("format".to_string(), "pt".to_string())].into();
        let path = dir.join(&file);
        let tmp = dir.join(format!(".{file}.tmp"));
        safetensors::serialize_to_file(views, Some(metadata), &tmp).map_err(|e| {
            ModelError::Safetensors {
                path: tmp.clone(),
                message: e.to_string(),
            }
        })?;
        std::fs::rename(&tmp, &path).map_err(|e| ModelError::io(&path, e))?;
    }
    if n > 1 {
        let index =
            serde_json::json!({ "metadata": { "total_size": total }, "weight_map": weight_map });
        let path = dir.join("model.safetensors.index.json");
        write_atomic(&path, index.to_string().as_bytes())?;
    }
    tracing::info!(dir = %dir.display(), shards = n, bytes = total, "saved checkpoint");
    Ok(())
}

/// Values of a parameter in HF layout, on the host.
fn host_values(tensor: &HfTensor) -> Result<Vec<f32>> {
    Ok(match tensor {
        HfTensor::Linear(t) => {
            let [d_in, d_out] = t.dims();
            transpose(&t.try_to_vec_as::<f32>()?, d_in, d_out)
        }
        HfTensor::Matrix(t) => t.try_to_vec_as::<f32>()?,
        HfTensor::Vector(t) => t.try_to_vec_as::<f32>()?,
    })
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| ModelError::io(path, e))
}
