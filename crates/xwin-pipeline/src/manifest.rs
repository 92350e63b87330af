//! Stage manifests: what a finished stage was made from (its config section, the content
//! hashes of its inputs, the tool version) and what it made (the content hash of its
//! artifacts, a headline number, its time). A stage whose manifest matches is skipped; one
//! that was started with the same key and not finished resumes in place; anything else
//! starts afresh in an emptied directory.

use crate::PipelineError;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use xxhash_rust::xxh3::Xxh3;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
const MANIFEST: &str = "manifest.json";
const STARTED: &str = "started.json";
const FAILED: &str = "failed.json";

/// A finished stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub version: String,
    /// Hash of (version, config, inputs): what decides whether the stage is current.
    pub key: String,
    pub config: serde_json::Value,
    /// Input name → content hash (an upstream stage's `output_hash` or a file's hash).
    pub inputs: Vec<(String, String)>,
    /// Content hash of the stage's artifacts (what downstream keys are built from).
    pub output_hash: String,
    /// The stage's headline numbers (e.g. held-out accuracy).
    pub headline: serde_json::Value,
    /// Wall time of the run that finished it (resumed runs: the last part only).
    pub seconds: f64,
    /// Tokens processed per second where the stage measures it.
    #[serde(default)]
    pub tokens_per_s: Option<f64>,
}

/// Why a started run of a stage is there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Started {
    key: String,
}

/// A failed run: the error, for `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub key: String,
    pub error: String,
}

/// The key of a stage run.
pub fn stage_key(stage: &str, config: &serde_json::Value, inputs: &[(String, String)]) -> String {
    let text = serde_json::json!({
        "stage": stage, "version": VERSION, "config": config, "inputs": inputs,
    })
    .to_string();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// Content hash of files and directories (every file below, in path order, with its
/// relative path); a missing path is an error naming it.
pub fn content_hash(paths: &[PathBuf]) -> Result<String, PipelineError> {
    let mut hasher = Xxh3::new();
    for path in paths {
        let mut files = Vec::new();
        collect_files(path, &mut files)?;
        files.sort();
        for file in files {
            let rel = file.strip_prefix(path).unwrap_or(&file);
            hasher.update(rel.to_string_lossy().as_bytes());
            let mut f = std::fs::File::open(&file).map_err(|e| PipelineError::io(&file, e))?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf).map_err(|e| PipelineError::io(&file, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
    }
    Ok(format!("{:016x}", hasher.digest()))
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), PipelineError> {
    let meta = std::fs::metadata(path).map_err(|e| PipelineError::io(path, e))?;
    if meta.is_file() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path).map_err(|e| PipelineError::io(path, e))? {
        let entry = entry.map_err(|e| PipelineError::io(path, e))?;
        collect_files(&entry.path(), out)?;
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// Writes through a temporary file and a rename, so a kill leaves the old file or the new.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), PipelineError> {
    let tmp = xwin_data::sidecar(path, ".tmp");
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(&tmp, text).map_err(|e| PipelineError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| PipelineError::io(path, e))
}

/// A stage's directory and its bookkeeping files.
#[derive(Debug, Clone)]
pub struct StageFiles {
    pub dir: PathBuf,
}

impl StageFiles {
    pub fn manifest(&self) -> Option<Manifest> {
        read_json(&self.dir.join(MANIFEST))
    }

    pub fn failure(&self) -> Option<Failure> {
        read_json(&self.dir.join(FAILED))
    }

    /// Whether a run with `key` was started here and not finished.
    pub fn started_with(&self, key: &str) -> bool {
        read_json::<Started>(&self.dir.join(STARTED)).is_some_and(|s| s.key == key)
    }

    /// Prepares a run with `key`: resumes a started one, else empties the directory.
    pub fn begin(&self, key: &str) -> Result<bool, PipelineError> {
        let resume = self.started_with(key);
        if !resume && self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).map_err(|e| PipelineError::io(&self.dir, e))?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| PipelineError::io(&self.dir, e))?;
        let _ = std::fs::remove_file(self.dir.join(FAILED));
        write_json(&self.dir.join(STARTED), &Started { key: key.into() })?;
        Ok(resume)
    }

    pub fn finish(&self, manifest: &Manifest) -> Result<(), PipelineError> {
        write_json(&self.dir.join(MANIFEST), manifest)?;
        let _ = std::fs::remove_file(self.dir.join(STARTED));
        Ok(())
    }

    pub fn fail(&self, key: &str, error: &str) -> Result<(), PipelineError> {
        write_json(
            &self.dir.join(FAILED),
            &Failure {
                key: key.into(),
                error: error.into(),
            },
        )
    }
}
