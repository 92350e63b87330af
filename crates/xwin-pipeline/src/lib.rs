//! The whole Xwin-LM recipe from one config: SFT → pair sampling → judging → reward model →
//! best-of-N sampling → Xwin-Set and RS finetune → rank calibration and DPO → evaluation of
//! each stage's policy → report. Each stage writes under `output/<stage>/` with a manifest
//! (the content hash of its inputs, its config section, the tool version); a rerun skips
//! stages whose manifest matches, reruns a changed stage and everything downstream of it,
//! and continues an interrupted stage where it stopped (each stage's own resume).

pub mod config;
pub mod eval;
pub mod manifest;
pub mod report;
pub mod sampling;
pub mod stages;

pub use config::PipelineConfig;
pub use manifest::Manifest;
pub use stages::STAGES;

use manifest::{StageFiles, content_hash, stage_key};
use stages::{Layout, external_inputs, required_files, run_stage, stage_config_json, upstream};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Errors of a pipeline run; a stage's failure names the stage.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("stage {stage}: field `{field}`: {message}")]
    StageConfig {
        stage: String,
        field: String,
        message: String,
    },
    #[error("stage {stage}: {message}")]
    Stage { stage: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error(transparent)]
    Eval(#[from] xwin_eval::EvalError),
}

impl PipelineError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn stage(stage: &str, e: impl std::fmt::Display) -> Self {
        Self::Stage {
            stage: stage.to_string(),
            message: e.to_string(),
        }
    }
}

/// What a run reports as it goes.
#[derive(Debug, Clone)]
pub enum Event {
    /// A stage whose manifest matches: not run.
    Skipped {
        stage: String,
        headline: serde_json::Value,
    },
    Started {
        stage: String,
        index: usize,
        resumed: bool,
    },
    Step {
        stage: String,
        done: usize,
        total: usize,
        message: String,
    },
    Finished {
        stage: String,
        manifest: Box<Manifest>,
    },
}

/// A stage's state for `status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StageStatus {
    pub stage: String,
    /// `done`, `stale` (made from other inputs or config), `failed`, `interrupted` or `to do`.
    pub state: String,
    pub headline: serde_json::Value,
    pub error: Option<String>,
}

/// A stage's key and the named input hashes it was built from.
type StageKey = (String, Vec<(String, String)>);

/// The key a stage would run with now, given the output hashes of the upstream stages that
/// are done (`None` while one is not).
fn current_key(
    layout: &Layout,
    stage: &str,
    outputs: &HashMap<String, String>,
) -> Result<Option<StageKey>, PipelineError> {
    let mut inputs = Vec::new();
    for up in upstream(stage) {
        match outputs.get(*up) {
            Some(hash) => inputs.push((up.to_string(), hash.clone())),
            None => return Ok(None),
        }
    }
    for (name, path) in external_inputs(layout.config, stage) {
        if !path.exists() {
            return Ok(None);
        }
        inputs.push((name, content_hash(&[path])?));
    }
    let config = stage_config_json(layout.config, stage);
    Ok(Some((stage_key(stage, &config, &inputs), inputs)))
}

/// Runs every stage that is not current, in order. Holds `output`'s lock throughout.
pub fn run(
    config: &PipelineConfig,
    mut on_event: impl FnMut(Event),
) -> Result<Vec<Manifest>, PipelineError> {
    std::fs::create_dir_all(&config.output).map_err(|e| PipelineError::io(&config.output, e))?;
    let _lock = xwin_data::OutputLock::acquire(xwin_data::lock_path_for(&config.output, true))?;
    let layout = Layout { config };
    stages::check_stage_configs(&layout)?;
    let mut done = Vec::new();
    // Stages are in dependency order: each one's upstream outputs are known when it comes up.
    let mut outputs: HashMap<String, String> = HashMap::new();
    for (index, stage) in STAGES.iter().enumerate() {
        for file in required_files(&layout, stage) {
            if !file.exists() {
                return Err(PipelineError::stage(
                    stage,
                    format!("input {} does not exist", file.display()),
                ));
            }
        }
        let files = StageFiles {
            dir: layout.dir(stage),
        };
        let Some((key, inputs)) = current_key(&layout, stage, &outputs)? else {
            return Err(PipelineError::stage(stage, "an upstream stage is not done"));
        };
        if let Some(m) = files.manifest().filter(|m| m.key == key) {
            on_event(Event::Skipped {
                stage: stage.to_string(),
                headline: m.headline.clone(),
            });
            outputs.insert(stage.to_string(), m.output_hash.clone());
            done.push(m);
            continue;
        }
        let resumed = files.begin(&key)?;
        on_event(Event::Started {
            stage: stage.to_string(),
            index,
            resumed,
        });
        let start = Instant::now();
        let outcome = match run_stage(&layout, stage, &mut on_event) {
            Ok(o) => o,
            Err(e) => {
                let _ = files.fail(&key, &e.to_string());
                return Err(e);
            }
        };
        let manifest = Manifest {
            stage: stage.to_string(),
            version: manifest::VERSION.to_string(),
            key,
            config: stage_config_json(config, stage),
            inputs,
            output_hash: content_hash(&outcome.products)?,
            headline: outcome.headline,
            seconds: start.elapsed().as_secs_f64(),
            tokens_per_s: outcome.tokens_per_s,
        };
        files.finish(&manifest)?;
        on_event(Event::Finished {
            stage: stage.to_string(),
            manifest: Box::new(manifest.clone()),
        });
        outputs.insert(stage.to_string(), manifest.output_hash.clone());
        done.push(manifest);
    }
    Ok(done)
}

/// Each stage's state, without running anything.
pub fn status(config: &PipelineConfig) -> Result<Vec<StageStatus>, PipelineError> {
    let layout = Layout { config };
    let mut out = Vec::new();
    let mut outputs: HashMap<String, String> = HashMap::new();
    for stage in STAGES {
        let files = StageFiles {
            dir: layout.dir(stage),
        };
        let key = current_key(&layout, stage, &outputs)?.map(|(k, _)| k);
        let manifest = files.manifest();
        let failure = files.failure();
        let (state, error) = match (&manifest, &key, &failure) {
            (Some(m), Some(k), _) if &m.key == k => {
                outputs.insert(stage.to_string(), m.output_hash.clone());
                ("done", None)
            }
            (_, Some(k), Some(f)) if &f.key == k => ("failed", Some(f.error.clone())),
            (_, Some(k), _) if files.started_with(k) => ("interrupted", None),
            (Some(_), _, _) => ("stale", None),
            _ => ("to do", None),
        };
        out.push(StageStatus {
            stage: stage.to_string(),
            state: state.to_string(),
            headline: manifest.map_or(serde_json::Value::Null, |m| m.headline),
            error,
        });
    }
    Ok(out)
}
