//! Evaluation of one stage's policy on the held-out demo tasks: `eval.n` samples per task,
//! each checked against the task's answer (exact match, and the oracle's graded score) and
//! scored by the reward model, so that the report can read best-of-1 (every sample) and
//! best-of-N (the reward model's top sample) and compare policies sample by sample.

use crate::stages::{Layout, Outcome};
use crate::{Event, PipelineError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use xwin_data::{DemoTask, ReadOptions, XwinSet};

/// One held-out task's samples, in the order drawn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub id: String,
    pub kind: String,
    pub exact: Vec<bool>,
    /// The oracle judge's score of each sample against the answer, in [0, 1].
    pub oracle: Vec<f64>,
    pub reward: Vec<f32>,
}

impl TaskResult {
    /// Share of samples that are right: the expected best-of-1 exact match.
    pub fn best_of_1(&self) -> f64 {
        self.exact.iter().filter(|&&e| e).count() as f64 / self.exact.len().max(1) as f64
    }

    /// The sample the reward model ranks first.
    pub fn top(&self) -> usize {
        (0..self.reward.len())
            .max_by(|&a, &b| self.reward[a].total_cmp(&self.reward[b]).then(b.cmp(&a)))
            .unwrap_or(0)
    }
}

/// `eval-<policy>/results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyResults {
    pub policy: String,
    pub tasks: Vec<TaskResult>,
}

impl PolicyResults {
    pub fn best_of_1(&self) -> Vec<f64> {
        self.tasks.iter().map(TaskResult::best_of_1).collect()
    }

    pub fn best_of_n(&self) -> Vec<f64> {
        self.tasks
            .iter()
            .map(|t| f64::from(u8::from(t.exact.get(t.top()).copied().unwrap_or(false))))
            .collect()
    }
}

pub fn results_path(layout: &Layout, stage: &str) -> std::path::PathBuf {
    layout.dir(stage).join("results.json")
}

pub fn read_results(layout: &Layout, stage: &str) -> Option<PolicyResults> {
    let text = std::fs::read_to_string(results_path(layout, stage)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Samples, scores and checks `policy_stage`'s model on the held-out tasks.
pub fn evaluate_policy(
    layout: &Layout,
    stage: &str,
    policy_stage: &str,
    on_event: &mut dyn FnMut(Event),
) -> Result<Outcome, PipelineError> {
    let config = layout.config;
    let Some(heldout) = layout.heldout() else {
        return Ok(Outcome {
            products: Vec::new(),
            headline: json!({ "skipped": "no held-out tasks (data.heldout); evaluate with xwin-eval" }),
            tokens_per_s: None,
        });
    };
    let (tasks, _) = xwin_data::read_records::<DemoTask>(&heldout, ReadOptions::default())?;
    let prompts = xwin_eval::task_prompts(&tasks);
    let err = |e: xwin_rs::RsError| PipelineError::stage(stage, e);
    let dir = layout.dir(stage);
    let samples = dir.join("samples.jsonl");
    let policy = xwin_rs::LocalPolicy::load(
        &layout.model_of(policy_stage),
        &config.model.device,
        config.model.template,
    )
    .map_err(err)?;
    let options = xwin_rs::LocalOptions {
        skip_long: true,
        ..xwin_rs::LocalOptions::default()
    };
    let s = policy
        .sampler(policy_stage.to_string())
        .run(&prompts, &config.eval, options, &samples, |p| {
            on_event(Event::Step {
                stage: stage.to_string(),
                done: p.done,
                total: p.total,
                message: "sampling".into(),
            })
        })
        .map_err(err)?;
    let rm = xwin_model::load_reward_model(layout.model_of("rm"), &policy.device)
        .map_err(|e| PipelineError::stage(stage, e))?;
    let scored = dir.join("scored.jsonl");
    let options = xwin_rm::ScoreOptions::for_model(&rm, config.model.template);
    xwin_rm::score_samples(
        &rm,
        &policy.tokenizer,
        "rm",
        &samples,
        &scored,
        options,
        &policy.device,
        |_| {},
    )
    .map_err(|e| PipelineError::stage(stage, e))?;
    let (sets, _) = xwin_data::read_records::<XwinSet>(&scored, ReadOptions::default())?;
    let by_id: HashMap<&str, &XwinSet> = sets.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut results = PolicyResults {
        policy: policy_stage.to_string(),
        tasks: Vec::with_capacity(tasks.len()),
    };
    for t in &tasks {
        let Some(set) = by_id.get(t.id.as_str()) else {
            continue;
        };
        // Back to drawing order, so sample k of two policies can be compared.
        let mut drawn: Vec<&xwin_data::ScoredResponse> = set.responses.iter().collect();
        drawn.sort_by_key(|r| r.index.unwrap_or(usize::MAX));
        results.tasks.push(TaskResult {
            id: t.id.clone(),
            kind: t.kind.clone(),
            exact: drawn
                .iter()
                .map(|r| xwin_data::exact_match(&r.text, &t.answer))
                .collect(),
            oracle: drawn
                .iter()
                .map(|r| xwin_annotate::OracleJudge::score(&r.text, Some(&t.answer)))
                .collect(),
            reward: drawn.iter().map(|r| r.score).collect(),
        });
    }
    let path = results_path(layout, stage);
    crate::manifest::write_json(&path, &results)?;
    let mean = |v: Vec<f64>| 100.0 * v.iter().sum::<f64>() / v.len().max(1) as f64;
    Ok(Outcome {
        products: vec![path],
        headline: json!({
            "best_of_1_exact": mean(results.best_of_1()),
            "best_of_n_exact": mean(results.best_of_n()),
            "tasks": results.tasks.len(),
        }),
        tokens_per_s: (s.elapsed_s > 0.0).then(|| s.tokens as f64 / s.elapsed_s),
    })
}
