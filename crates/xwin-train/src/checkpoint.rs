//! Training checkpoints: model weights and optimizer state (burnpack, which keeps parameter
//! ids so the optimizer state finds its parameters again) plus the loop's own state (step,
//! run fingerprint) as JSON. Each checkpoint is written to a hidden partial directory and
//! renamed into place, so a crash mid-write never leaves a checkpoint that looks complete.

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const MODEL_FILE: &str = "model.bpk";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const STATE_FILE: &str = "state.json";
const PREFIX: &str = "step-";

/// The `[checkpoint]` table of a stage config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointPolicy {
    /// Write a checkpoint every this many optimizer steps (and always at the end).
    pub every: usize,
    /// Checkpoints kept on disk; older ones are deleted once a newer one is complete.
    #[serde(default = "two")]
    pub keep_last: usize,
}

fn two() -> usize {
    2
}

/// Where checkpoints go and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpointing {
    pub dir: PathBuf,
    pub policy: CheckpointPolicy,
}

/// The loop's state besides weights and optimizer moments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Optimizer steps completed.
    pub step: usize,
    pub total_steps: usize,
    /// Identity of the run (config, data, step count); a checkpoint of another run is refused.
    pub fingerprint: String,
    /// Loss of the last step, for the log.
    pub loss: f32,
    /// f16 runs: the loss scaler's state after this step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<crate::loss_scale::LossScale>,
}

/// Errors reading or writing checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "{path}: checkpoint belongs to a different run (its fingerprint {found} != {expected}: \
         the config, data, base model, tokenizer or step count changed); move it away to start afresh"
    )]
    OtherRun {
        path: PathBuf,
        found: String,
        expected: String,
    },
}

fn io(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Path of the checkpoint after `step` steps.
pub fn checkpoint_path(dir: &Path, step: usize) -> PathBuf {
    dir.join(format!("{PREFIX}{step:08}"))
}

/// Complete checkpoints in `dir`, oldest first.
pub fn list_checkpoints(dir: &Path) -> Result<Vec<(usize, PathBuf)>, CheckpointError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir, e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io(dir, e))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().join(STATE_FILE).is_file() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// Writes a checkpoint atomically and deletes all but the newest `keep_last`.
pub fn save_checkpoint<M: Module>(
    dir: &Path,
    model: &M,
    optimizer: &ModuleOptimizer,
    state: &LoopState,
    keep_last: usize,
) -> Result<PathBuf, CheckpointError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let target = checkpoint_path(dir, state.step);
    let partial = dir.join(format!(".{PREFIX}{:08}.partial", state.step));
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(|e| io(&partial, e))?;
    }
    std::fs::create_dir(&partial).map_err(|e| io(&partial, e))?;

    let model_path = partial.join(MODEL_FILE);
    let mut store = BurnpackStore::from_file(&model_path)
        .auto_extension(false)
        .overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| io(&model_path, e))?;
    let optim_path = partial.join(OPTIMIZER_FILE);
    optimizer
        .save(&optim_path)
        .map_err(|e| io(&optim_path, e))?;
    let state_path = partial.join(STATE_FILE);
    let json = serde_json::to_vec_pretty(state).map_err(|e| io(&state_path, e))?;
    std::fs::write(&state_path, json).map_err(|e| io(&state_path, e))?;
    for name in [MODEL_FILE, OPTIMIZER_FILE, STATE_FILE] {
        let p = partial.join(name);
        std::fs::File::open(&p)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(&p, e))?;
    }
    if target.exists() {
        std::fs::remove_dir_all(&target).map_err(|e| io(&target, e))?;
    }
    std::fs::rename(&partial, &target).map_err(|e| io(&target, e))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    let all = list_checkpoints(dir)?;
    let excess = all.len().saturating_sub(keep_last.max(1));
    for (_, old) in all.into_iter().take(excess) {
        std::fs::remove_dir_all(&old).map_err(|e| io(&old, e))?;
    }
    Ok(target)
}

/// Reads a checkpoint's loop state.
pub fn read_state(path: &Path) -> Result<LoopState, CheckpointError> {
    let state_path = path.join(STATE_FILE);
    let text = std::fs::read_to_string(&state_path).map_err(|e| io(&state_path, e))?;
    serde_json::from_str(&text).map_err(|e| io(&state_path, e))
}

/// Loads weights into `model` (same structure) and the optimizer state.
pub fn load_checkpoint<M: Module>(
    path: &Path,
    mut model: M,
    optimizer: ModuleOptimizer,
) -> Result<(M, ModuleOptimizer, LoopState), CheckpointError> {
    let state = read_state(path)?;
    let model_path = path.join(MODEL_FILE);
    let mut store = BurnpackStore::from_file(&model_path).auto_extension(false);
    let applied = model
        .load_from(&mut store)
        .map_err(|e| io(&model_path, e))?;
    if !applied.errors.is_empty() || !applied.missing.is_empty() || !applied.unused.is_empty() {
        return Err(io(
            &model_path,
            format!(
                "does not fit the model: {} errors, missing {:?}, unexpected {:?}",
                applied.errors.len(),
                applied.missing.iter().map(|m| &m.0).collect::<Vec<_>>(),
                applied.unused
            ),
        ));
    }
    let optim_path = path.join(OPTIMIZER_FILE);
    let optimizer = optimizer
        .load(&optim_path)
        .map_err(|e| io(&optim_path, e))?;
    Ok((model, optimizer, state))
}
