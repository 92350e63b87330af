//! Errors of the model crate.

use std::path::PathBuf;

/// Everything that can go wrong loading, running or saving a Llama model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A JSON file did not parse, or a field had the wrong type.
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A config field is missing, contradictory or unsupported.
    #[error("{path}: field `{field}`: {message}")]
    Config {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// A safetensors file is malformed.
    #[error("{path}: invalid safetensors: {message}")]
    Safetensors { path: PathBuf, message: String },
    /// The checkpoint lacks a tensor the model needs.
    #[error("checkpoint {dir}: missing tensor `{name}` (expected shape {expected:?})")]
    MissingTensor {
        dir: PathBuf,
        name: String,
        expected: Vec<usize>,
    },
    /// A tensor has a different shape than the config implies.
    #[error("checkpoint {dir}: tensor `{name}` has shape {found:?}, config expects {expected:?}")]
    ShapeMismatch {
        dir: PathBuf,
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    /// The checkpoint holds tensors the model does not use.
    #[error("checkpoint {dir}: unexpected tensors {names:?}")]
    UnexpectedTensors { dir: PathBuf, names: Vec<String> },
    /// A tensor is stored in a dtype we cannot read.
    #[error("checkpoint {dir}: tensor `{name}` has unsupported dtype {dtype}")]
    UnsupportedDtype {
        dir: PathBuf,
        name: String,
        dtype: String,
    },
    /// The tokenizer file could not be loaded or used.
    #[error("tokenizer {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    /// Bad arguments to a model call (empty batch, token id out of range, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The backend failed to execute or read back a tensor.
    #[error("backend: {0}")]
    Backend(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, ModelError>;

impl From<burn::tensor::TensorReadError> for ModelError {
    fn from(e: burn::tensor::TensorReadError) -> Self {
        Self::Backend(format!("reading a tensor back: {e:?}"))
    }
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
