//! Exact-match accuracy on the verifiable demo task (`xwin_data::demo_tasks`): the policy
//! answers each instruction (greedy by default), the answer is compared with the computed
//! reference; overall and per task kind, with a bootstrap interval.

use crate::EvalError;
use crate::answers::{file_safe, first_answers};
use crate::bootstrap::{Interval, bootstrap_percent};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use xwin_data::{DemoTask, exact_match};

/// Accuracy overall and by kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExactMatch {
    pub n: usize,
    pub correct: usize,
    /// Percent.
    pub accuracy: f64,
    pub interval: Option<Interval>,
    /// Kind → (correct, n).
    pub by_kind: BTreeMap<String, (usize, usize)>,
}

/// Scores `answers` (task id → text) against the tasks; a task without an answer counts as
/// wrong.
pub fn score_exact_match(tasks: &[DemoTask], answers: &HashMap<String, String>) -> ExactMatch {
    let hits: Vec<f64> = tasks
        .iter()
        .map(|t| {
            f64::from(u8::from(
                answers
                    .get(&t.id)
                    .is_some_and(|a| exact_match(a, &t.answer)),
            ))
        })
        .collect();
    let mut by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (t, h) in tasks.iter().zip(&hits) {
        let e = by_kind.entry(t.kind.clone()).or_default();
        e.0 += *h as usize;
        e.1 += 1;
    }
    let correct = hits.iter().filter(|h| **h > 0.0).count();
    ExactMatch {
        n: tasks.len(),
        correct,
        accuracy: correct as f64 / tasks.len().max(1) as f64 * 100.0,
        interval: bootstrap_percent(&hits),
        by_kind,
    }
}

/// Each task as the prompt a policy answers (its id, the instruction as one user turn).
pub fn task_prompts(tasks: &[DemoTask]) -> Vec<xwin_rs::Prompt> {
    tasks
        .iter()
        .map(|t| xwin_rs::Prompt {
            id: t.id.clone(),
            conversation: crate::alpaca_protocol::instruction_prompt(&t.instruction),
        })
        .collect()
}

/// The policy's answers to every task (sampled with `spec` into `dir`, resumable), scored.
pub fn evaluate_exact_match(
    sampler: &xwin_rs::LocalSampler,
    tasks: &[DemoTask],
    spec: &xwin_rs::SampleSpec,
    dir: &Path,
) -> Result<ExactMatch, EvalError> {
    let prompts = task_prompts(tasks);
    let path = dir.join(format!("answers-{}.jsonl", file_safe(&sampler.name)));
    let answers = first_answers(sampler, &prompts, spec, &path)?;
    Ok(score_exact_match(tasks, &answers))
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn scores_by_kind_and_counts_missing_answers_as_wrong() {
        let tasks = xwin_data::demo_tasks(10, 1);
        let mut answers: HashMap<String, String> = tasks
            .iter()
            .map(|t| (t.id.clone(), format!("{}.", t.answer)))
            .collect();
        answers.insert(tasks[0].id.clone(), "wrong".into());
        answers.remove(&tasks[1].id);
        let s = score_exact_match(&tasks, &answers);
        assert_eq!((s.n, s.correct), (10, 8));
        assert_eq!(s.accuracy, 80.0);
        assert_eq!(s.by_kind["add"], (1, 2));
        assert_eq!(s.by_kind["reverse"], (1, 2));
        let i = s.interval.unwrap();
        assert!(i.low < 80.0 && i.high > 80.0 || i.high == 100.0, "{i:?}");
    }
}
