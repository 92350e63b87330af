//! Errors of the judging layer.

use std::path::PathBuf;

/// Errors that stop a run (bad templates, inputs, output files, endpoint configuration).
/// A judge that cannot give a verdict for one item is not an error: it is recorded as a
/// [`crate::judge::JudgeFailure`] and the run goes on.
#[derive(Debug, thiserror::Error)]
pub enum AnnotateError {
    #[error("{path}: {message}")]
    Template { path: PathBuf, message: String },
    #[error("template {name}: placeholder {{{placeholder}}} has no value")]
    MissingPlaceholder { name: String, placeholder: String },
    #[error("judge config: {0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error("{path}: line {line}: {message}")]
    Output {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

pub type Result<T> = std::result::Result<T, AnnotateError>;
