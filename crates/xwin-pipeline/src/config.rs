//! The pipeline's TOML: the shared `[model]`, the data sources, the judge, and one section
//! per stage. A training stage's section is that stage's own config (as `xwin-sft`,
//! `xwin-rm`, `xwin-rs` and `xwin-dpo` read it) without what the pipeline wires in: the
//! output directory, the model to start from and the upstream artifacts.

use crate::PipelineError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xwin_data::ChatTemplate;
use xwin_rs::SampleSpec;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Every stage writes under `output/<stage>/`; the report is `output/report.md`.
    pub output: PathBuf,
    pub model: BaseModel,
    pub data: DataSources,
    #[serde(default)]
    pub judge: JudgeSection,
    pub sft: toml::Table,
    pub pairs: SampleSpec,
    pub rm: toml::Table,
    pub rs_samples: SampleSpec,
    pub rs: toml::Table,
    pub dpo: toml::Table,
    pub eval: SampleSpec,
}

/// The starting policy and what every stage shares about it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseModel {
    pub path: PathBuf,
    #[serde(default = "xwin_train::stage::defaults::device")]
    pub device: String,
    #[serde(default = "xwin_train::stage::defaults::template")]
    pub template: ChatTemplate,
    #[serde(default = "xwin_train::stage::defaults::max_len")]
    pub max_len: usize,
}

/// Where the conversations and prompts come from: the bundled demo task, generated, or files.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSources {
    #[serde(default)]
    pub demo_task: Option<DemoTaskSection>,
    /// SFT conversations (ShareGPT, Alpaca, …).
    #[serde(default)]
    pub sft: Option<PathBuf>,
    /// Conversations whose replies are sampled as pairs for the judge (step 2a).
    #[serde(default)]
    pub pair_prompts: Option<PathBuf>,
    /// Conversations whose replies are sampled best-of-N for rejection sampling (step 3).
    #[serde(default)]
    pub rs_prompts: Option<PathBuf>,
    /// Unfold only the first K replies of each prompt conversation (the paper's RS uses 3).
    #[serde(default)]
    pub first_replies: Option<usize>,
    /// Held-out demo tasks (id, instruction, answer) for the exact-match evaluation.
    #[serde(default)]
    pub heldout: Option<PathBuf>,
}

/// The seeded demo task (`xwin_data::demo_tasks`): how many tasks each stage gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoTaskSection {
    pub sft: usize,
    pub pair_prompts: usize,
    pub rs_prompts: usize,
    pub heldout: usize,
    /// Share of SFT replies that are the task's plausible mistake (imperfect demonstrations).
    #[serde(default)]
    pub noise: f64,
    #[serde(default)]
    pub seed: u64,
}

/// Who judges the pairs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeSection {
    /// `oracle` (offline: the reference answer decides) or `openai` (any compatible endpoint).
    #[serde(default = "oracle")]
    pub kind: String,
    #[serde(default = "openai_url")]
    pub base_url: String,
    #[serde(default = "gpt4")]
    pub model: String,
    /// Environment variable holding the API key; empty for none.
    #[serde(default = "key_env")]
    pub api_key_env: String,
    /// Built-in template name or a file.
    #[serde(default = "xwin_pairwise")]
    pub template: String,
    #[serde(default = "concurrency")]
    pub concurrency: usize,
    #[serde(default)]
    pub seed: u64,
}

fn oracle() -> String {
    "oracle".into()
}
fn openai_url() -> String {
    "https://api.openai.com/v1".into()
}
fn gpt4() -> String {
    "gpt-4".into()
}
fn key_env() -> String {
    "OPENAI_API_KEY".into()
}
fn xwin_pairwise() -> String {
    "xwin-pairwise".into()
}
fn concurrency() -> usize {
    16
}

impl Default for JudgeSection {
    fn default() -> Self {
        Self {
            kind: oracle(),
            base_url: openai_url(),
            model: gpt4(),
            api_key_env: key_env(),
            template: xwin_pairwise(),
            concurrency: concurrency(),
            seed: 0,
        }
    }
}

impl PipelineConfig {
    /// Reads and checks the file; errors name the file, line and field.
    pub fn read(path: &Path) -> Result<Self, PipelineError> {
        let text = std::fs::read_to_string(path).map_err(|e| PipelineError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let config: Self = toml::from_str(&text).map_err(|e| PipelineError::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        config.check().map_err(|message| PipelineError::Config {
            path: path.to_path_buf(),
            message,
        })?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        let d = &self.data;
        if d.demo_task.is_none() {
            for (field, value) in [
                ("data.sft", &d.sft),
                ("data.pair_prompts", &d.pair_prompts),
                ("data.rs_prompts", &d.rs_prompts),
            ] {
                if value.is_none() {
                    return Err(format!("{field}: missing (or give [data.demo_task])"));
                }
            }
        }
        if !["oracle", "openai"].contains(&self.judge.kind.as_str()) {
            return Err(format!(
                "judge.kind: `{}`; use `oracle` or `openai`",
                self.judge.kind
            ));
        }
        if self.pairs.pair_temperatures.is_none() {
            return Err(
                "pairs.pair_temperatures: missing (two temperatures, e.g. [0.7, 0.3])".into(),
            );
        }
        Ok(())
    }
}

/// Sets `value` at the dotted `key` of `table`, creating tables on the way: how the pipeline
/// wires paths into a stage's own config.
pub fn wire(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut here = table;
    for part in parts {
        let entry = here
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        here = match entry {
            toml::Value::Table(t) => t,
            _ => unreachable!("made a table above"),
        };
    }
    here.insert(last.to_string(), value);
}

/// Sets `key` unless the section sets it.
pub fn wire_default(table: &mut toml::Table, key: &str, value: toml::Value) {
    let mut here = &*table;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        match here.get(*part) {
            Some(toml::Value::Table(t)) if i + 1 < parts.len() => here = t,
            Some(_) if i + 1 == parts.len() => return,
            _ => break,
        }
    }
    wire(table, key, value);
}

/// A stage's config from its section after wiring; errors name the stage and the field.
pub fn stage_config<T: serde::de::DeserializeOwned>(
    stage: &str,
    table: toml::Table,
) -> Result<T, PipelineError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        PipelineError::StageConfig {
            stage: stage.to_string(),
            field: e.path().to_string(),
            message: e.inner().to_string(),
        }
    })
}

pub fn path_value(path: &Path) -> toml::Value {
    toml::Value::String(path.display().to_string())
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn wiring_sets_nested_keys_and_defaults_keep_the_users() {
        let mut t: toml::Table = toml::from_str("[data]\nmax_len = 64\n").unwrap();
        wire(&mut t, "model.path", "a".into());
        wire(&mut t, "data.train", "b".into());
        wire_default(&mut t, "data.max_len", 256.into());
        wire_default(&mut t, "data.template", "vicuna-v11".into());
        assert_eq!(t["model"]["path"].as_str(), Some("a"));
        assert_eq!(t["data"]["train"].as_str(), Some("b"));
        assert_eq!(t["data"]["max_len"].as_integer(), Some(64));
        assert_eq!(t["data"]["template"].as_str(), Some("vicuna-v11"));
    }
}
