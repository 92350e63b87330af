//! The stages, in order, and how each is wired: which upstream artifacts it reads, which
//! part of the config it depends on, what it makes. Each runs through its stage crate; the
//! per-stage binaries stay usable on their own.

use crate::config::{PipelineConfig, path_value, stage_config, wire, wire_default};
use crate::eval::evaluate_policy;
use crate::sampling::{judge_stage, sample_stage};
use crate::{Event, PipelineError};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use xwin_data::{DemoTask, JsonlWriter};

/// Stage names in run order (also their directories under `output/`).
pub const STAGES: [&str; 12] = [
    "data",
    "sft",
    "pairs",
    "judge",
    "rm",
    "rs-samples",
    "rs",
    "dpo",
    "eval-sft",
    "eval-rs",
    "eval-dpo",
    "report",
];

/// The upstream stages whose artifacts a stage reads.
pub fn upstream(stage: &str) -> &'static [&'static str] {
    match stage {
        "data" => &[],
        "sft" => &["data"],
        "pairs" => &["data", "sft"],
        "judge" => &["data", "pairs"],
        "rm" => &["sft", "judge"],
        "rs-samples" => &["data", "sft"],
        "rs" => &["sft", "rm", "rs-samples"],
        "dpo" => &["data", "rm", "rs"],
        "eval-sft" => &["data", "sft", "rm"],
        "eval-rs" => &["data", "rs", "rm"],
        "eval-dpo" => &["data", "dpo", "rm"],
        _ => &["rm", "rs", "eval-sft", "eval-rs", "eval-dpo"],
    }
}

/// What a stage run reports back for its manifest.
pub struct Outcome {
    /// Artifacts whose content hash downstream keys are built from.
    pub products: Vec<PathBuf>,
    pub headline: Value,
    pub tokens_per_s: Option<f64>,
}

/// Paths of every stage's artifacts under `output/`.
pub struct Layout<'a> {
    pub config: &'a PipelineConfig,
}

impl Layout<'_> {
    pub fn dir(&self, stage: &str) -> PathBuf {
        self.config.output.join(stage)
    }

    fn data_file(&self, name: &str, given: &Option<PathBuf>) -> PathBuf {
        match (&self.config.data.demo_task, given) {
            (None, Some(p)) => p.clone(),
            _ => self.dir("data").join(name),
        }
    }

    pub fn sft_data(&self) -> PathBuf {
        self.data_file("sft.jsonl", &self.config.data.sft)
    }
    pub fn pair_prompts(&self) -> PathBuf {
        self.data_file("pair-prompts.jsonl", &self.config.data.pair_prompts)
    }
    pub fn rs_prompts(&self) -> PathBuf {
        self.data_file("rs-prompts.jsonl", &self.config.data.rs_prompts)
    }
    /// Demo tasks with answers (the references the oracle judge compares with).
    pub fn pair_tasks(&self) -> Option<PathBuf> {
        self.config
            .data
            .demo_task
            .as_ref()
            .map(|_| self.dir("data").join("pair-tasks.jsonl"))
    }
    pub fn heldout(&self) -> Option<PathBuf> {
        match &self.config.data.demo_task {
            Some(_) => Some(self.dir("data").join("heldout.jsonl")),
            None => self.config.data.heldout.clone(),
        }
    }
    /// The model a training stage exported.
    pub fn model_of(&self, stage: &str) -> PathBuf {
        self.dir(stage).join("model")
    }
}

/// The part of the config a stage depends on, as JSON (part of its key).
pub fn stage_config_json(config: &PipelineConfig, stage: &str) -> Value {
    let base = json!({
        "device": config.model.device, "template": config.model.template,
        "max_len": config.model.max_len,
    });
    match stage {
        "data" => json!({ "data": config.data }),
        "sft" => json!({ "base": base, "sft": config.sft }),
        "pairs" => json!({ "base": base, "pairs": config.pairs }),
        "judge" => json!({ "judge": config.judge }),
        "rm" => json!({ "base": base, "rm": config.rm }),
        "rs-samples" => json!({ "base": base, "rs_samples": config.rs_samples }),
        "rs" => json!({ "base": base, "rs": config.rs }),
        "dpo" => json!({ "base": base, "dpo": config.dpo }),
        "report" => json!({}),
        _ => json!({ "base": base, "eval": config.eval }),
    }
}

/// Files outside the pipeline that a stage reads (their content is part of its key).
pub fn external_inputs(config: &PipelineConfig, stage: &str) -> Vec<(String, PathBuf)> {
    let d = &config.data;
    match stage {
        "data" if d.demo_task.is_none() => [
            ("sft", &d.sft),
            ("pair_prompts", &d.pair_prompts),
            ("rs_prompts", &d.rs_prompts),
            ("heldout", &d.heldout),
        ]
        .into_iter()
        .filter_map(|(n, p)| p.clone().map(|p| (n.to_string(), p)))
        .collect(),
        "sft" => vec![("base".into(), config.model.path.clone())],
        _ => Vec::new(),
    }
}

fn device_and_template(t: &mut toml::Table, config: &PipelineConfig) {
    wire_default(t, "model.device", config.model.device.clone().into());
    if let Ok(template) = toml::Value::try_from(config.model.template) {
        wire_default(t, "data.template", template);
    }
    wire_default(t, "data.max_len", (config.model.max_len as i64).into());
}

/// A training stage's own config: its section with the pipeline's wiring (output, starting
/// model, upstream artifacts; device, template and length unless the section sets them).
fn stage_table(layout: &Layout, stage: &str) -> toml::Table {
    let config = layout.config;
    let mut t = match stage {
        "sft" => config.sft.clone(),
        "rm" => config.rm.clone(),
        "rs" => config.rs.clone(),
        _ => config.dpo.clone(),
    };
    wire(&mut t, "output", path_value(&layout.dir(stage)));
    match stage {
        "sft" => {
            wire(&mut t, "model.path", path_value(&config.model.path));
            wire(&mut t, "data.train", path_value(&layout.sft_data()));
        }
        "rm" => {
            wire(&mut t, "model.path", path_value(&layout.model_of("sft")));
            let pairs = layout.dir("judge").join("xwin-pair.jsonl");
            wire(&mut t, "data.train", path_value(&pairs));
            wire_default(&mut t, "data.format", "xwin-pair".into());
        }
        "rs" => {
            wire(&mut t, "model.path", path_value(&layout.model_of("sft")));
            wire(&mut t, "reward.path", path_value(&layout.model_of("rm")));
            let samples = layout.dir("rs-samples").join("samples.jsonl");
            wire(&mut t, "data.samples", path_value(&samples));
        }
        _ => {
            wire(&mut t, "model.path", path_value(&layout.model_of("rs")));
            let set = layout.dir("rs").join("xwin-set.jsonl");
            wire(&mut t, "data.xwin_set", path_value(&set));
            if t.contains_key("calibrate") {
                wire(
                    &mut t,
                    "calibrate.reward",
                    path_value(&layout.model_of("rm")),
                );
                wire_default(
                    &mut t,
                    "calibrate.prompts",
                    path_value(&layout.pair_prompts()),
                );
            }
        }
    }
    device_and_template(&mut t, config);
    t
}

/// Parses every training stage's config before anything runs: a typo anywhere stops the run
/// at once, naming the stage and the field.
pub fn check_stage_configs(layout: &Layout) -> Result<(), PipelineError> {
    stage_config::<xwin_train::SftConfig>("sft", stage_table(layout, "sft"))?;
    stage_config::<xwin_rm::RmConfig>("rm", stage_table(layout, "rm"))?;
    stage_config::<xwin_rs::RsConfig>("rs", stage_table(layout, "rs"))?;
    stage_config::<xwin_dpo::DpoConfig>("dpo", stage_table(layout, "dpo"))?;
    Ok(())
}

/// Runs one stage to completion (resuming what an interrupted run left).
pub fn run_stage(
    layout: &Layout,
    stage: &str,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, PipelineError> {
    let config = layout.config;
    let dir = layout.dir(stage);
    match stage {
        "data" => write_data(layout),
        "sft" => {
            let c: xwin_train::SftConfig = stage_config(stage, stage_table(layout, stage))?;
            let (s, rate) = train(stage, on_event, |step| xwin_train::run_sft(&c, step))?;
            Ok(Outcome {
                products: vec![dir.join("model")],
                headline: json!({ "last_loss": s.last_loss, "eval_loss": s.last_eval_loss, "steps": s.steps }),
                tokens_per_s: rate,
            })
        }
        "pairs" | "rs-samples" => sample_stage(layout, stage, on_event),
        "eval-sft" | "eval-rs" | "eval-dpo" => {
            evaluate_policy(layout, stage, stage.trim_start_matches("eval-"), on_event)
        }
        "judge" => judge_stage(layout, on_event),
        "rm" => {
            let c: xwin_rm::RmConfig = stage_config(stage, stage_table(layout, stage))?;
            let (s, rate) = train(stage, on_event, |step| xwin_rm::run_rm(&c, step))?;
            let accuracy = s.eval.as_ref().map(|e| e.all.accuracy() * 100.0);
            Ok(Outcome {
                products: vec![dir.join("model"), dir.join("eval.json")],
                headline: json!({ "eval_accuracy": accuracy, "train_pairs": s.train_pairs }),
                tokens_per_s: rate,
            })
        }
        "rs" => {
            let c: xwin_rs::RsConfig = stage_config(stage, stage_table(layout, stage))?;
            let (s, rate) = train(stage, on_event, |step| xwin_rs::run_rs(&c, step))?;
            Ok(Outcome {
                products: vec![dir.join("model"), dir.join("xwin-set.jsonl")],
                headline: json!({ "selected": s.selected, "mean_selected_score": s.mean_selected_score, "mean_score": s.stats.mean }),
                tokens_per_s: rate,
            })
        }
        "dpo" => {
            let c: xwin_dpo::DpoConfig = stage_config(stage, stage_table(layout, stage))?;
            let (s, rate) = train(stage, on_event, |step| xwin_dpo::run_dpo(&c, step))?;
            Ok(Outcome {
                products: vec![dir.join("model")],
                headline: json!({
                    "rejected_rank": s.rejected_rank,
                    "train_pairs": s.train_pairs,
                    "eval_accuracy_before": metric(&s.eval_before, "rewards/accuracy"),
                    "eval_accuracy_after": metric(&s.eval_after, "rewards/accuracy"),
                    "eval_margin_after": metric(&s.eval_after, "rewards/margins"),
                }),
                tokens_per_s: rate,
            })
        }
        _ => crate::report::write(layout).map(|headline| Outcome {
            products: vec![config.output.join("report.md")],
            headline,
            tokens_per_s: None,
        }),
    }
}

fn metric(m: &Option<std::collections::BTreeMap<String, f64>>, name: &str) -> Option<f64> {
    m.as_ref().and_then(|m| m.get(name).copied())
}

/// Runs a training stage's entry point with its steps forwarded as events; returns its
/// summary and the last step's tokens/s.
fn train<T, E: std::fmt::Display>(
    stage: &str,
    on_event: &mut dyn FnMut(Event),
    run: impl FnOnce(&mut dyn FnMut(&xwin_train::StepMetrics)) -> Result<T, E>,
) -> Result<(T, Option<f64>), PipelineError> {
    let mut rate = None;
    let summary = run(&mut |m| {
        rate = Some(m.tokens_per_s);
        on_event(Event::Step {
            stage: stage.to_string(),
            done: m.step,
            total: m.total_steps,
            message: format!("loss {:.4}  {:.0} tok/s", m.loss, m.tokens_per_s),
        });
    })
    .map_err(|e| PipelineError::stage(stage, e))?;
    Ok((summary, rate))
}

fn write_jsonl<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<PathBuf, PipelineError> {
    let mut w = JsonlWriter::create(path)?;
    for r in rows {
        w.write(r)?;
    }
    Ok(path.to_path_buf())
}

/// The demo task's files, or a check that the given files exist.
fn write_data(layout: &Layout) -> Result<Outcome, PipelineError> {
    let config = layout.config;
    let Some(demo) = &config.data.demo_task else {
        let files: Vec<PathBuf> = external_inputs(config, "data")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        return Ok(Outcome {
            products: files,
            headline: json!({ "source": "files" }),
            tokens_per_s: None,
        });
    };
    let dir = layout.dir("data");
    // Disjoint seeds per split: no held-out task id is trained on.
    let split = |n: usize, k: u64| xwin_data::demo_tasks(n, demo.seed * 8 + k);
    let sft = split(demo.sft, 0);
    let pairs = split(demo.pair_prompts, 1);
    let rs = split(demo.rs_prompts, 2);
    let heldout = split(demo.heldout, 3);
    let conversations = |t: &[DemoTask]| t.iter().map(DemoTask::conversation).collect::<Vec<_>>();
    let sft_conversations = xwin_data::noisy_conversations(&sft, demo.noise, demo.seed);
    let products = vec![
        write_jsonl(&dir.join("sft.jsonl"), &sft_conversations)?,
        write_jsonl(&dir.join("pair-prompts.jsonl"), &conversations(&pairs))?,
        write_jsonl(&dir.join("pair-tasks.jsonl"), &pairs)?,
        write_jsonl(&dir.join("rs-prompts.jsonl"), &conversations(&rs))?,
        write_jsonl(&dir.join("heldout.jsonl"), &heldout)?,
    ];
    Ok(Outcome {
        products,
        headline: json!({ "sft": demo.sft, "pair_prompts": demo.pair_prompts, "rs_prompts": demo.rs_prompts, "heldout": demo.heldout, "noise": demo.noise }),
        tokens_per_s: None,
    })
}

/// Files a stage reads that must exist before it runs (a clear error otherwise).
pub fn required_files(layout: &Layout, stage: &str) -> Vec<PathBuf> {
    match stage {
        "data" => external_inputs(layout.config, stage)
            .into_iter()
            .map(|(_, p)| p)
            .collect(),
        "sft" => vec![layout.sft_data(), layout.config.model.path.clone()],
        "pairs" => vec![layout.pair_prompts()],
        "rs-samples" => vec![layout.rs_prompts()],
        _ => Vec::new(),
    }
}
