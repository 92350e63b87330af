//! Errors of the data crate: every one names the file, and the line and field when known.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A record that does not parse or does not fit its schema.
    #[error("{path}: {location}: {field}: {message}")]
    Record {
        path: PathBuf,
        /// Where in the file: `line 12` (JSON Lines) or `record 3` (JSON arrays), 1-based.
        location: Location,
        /// Dotted path of the offending field (`conversations[2].from`), or `<record>`.
        field: String,
        message: String,
    },
    #[error("{path}: unsupported format: {message}")]
    Format { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Another run holds the output (see [`crate::lock::OutputLock`]).
    #[error(
        "{path}: the output is in use by another run ({holder}); wait for it to finish or stop it"
    )]
    Locked { path: PathBuf, holder: String },
}

pub type Result<T> = std::result::Result<T, DataError>;

impl DataError {
    /// An I/O failure on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// A problem inside one record, before the file and line are known.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn at(self, path: &std::path::Path, location: Location) -> DataError {
        DataError::Record {
            path: path.to_path_buf(),
            location,
            field: self.field,
            message: self.message,
        }
    }
}

/// Position of a record in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Line(usize),
    Record(usize),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Record(n) => write!(f, "record {n}"),
        }
    }
}
