//! The AlpacaEval protocol: the policy's outputs for the evaluation instructions (generated
//! here with the Xwin prompt and sampling, or read from a `model_outputs.json`), each judged
//! against the reference model's output through `xwin-annotate` (resumable; the shown order
//! randomised per instruction from a recorded seed), written as alpaca_eval's
//! `model_outputs.json` and `annotations.json`, and scored as `get_winrate` does.

use crate::EvalError;
use crate::alpaca::{AlpacaScore, win_rate};
use crate::answers::{file_safe, first_answers};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use xwin_annotate::{
    AnnotateOptions, AnnotateSummary, FailureRecord, Judge, PairInput, annotate_pairs,
    failures_path,
};
use xwin_data::{Conversation, Turn, Winner, XwinPair};

/// One line of alpaca_eval's `model_outputs.json` (and of its reference files).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlpacaOutput {
    pub instruction: String,
    pub output: String,
    pub generator: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
}

/// One line of alpaca_eval's `annotations.json`: `output_1` is the reference, `output_2` the
/// evaluated model; preference 1 = reference better, 2 = model better, 1.5 = tie, null = no
/// verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlpacaAnnotation {
    pub instruction: String,
    pub output_1: String,
    pub generator_1: String,
    pub output_2: String,
    pub generator_2: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    pub annotator: String,
    pub preference: Option<f64>,
}

/// A JSON list of outputs.
pub fn read_outputs(path: &Path) -> Result<Vec<AlpacaOutput>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| xwin_data::DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::Input {
        path: path.display().to_string(),
        message: format!("not an alpaca_eval outputs list: {e}"),
    })
}

/// The model's outputs in the reference's order: every reference instruction exactly once
/// (a missing, repeated or unknown instruction is an error naming it).
pub fn align_outputs(
    outputs: &[AlpacaOutput],
    reference: &[AlpacaOutput],
    origin: &Path,
) -> Result<Vec<AlpacaOutput>, EvalError> {
    let err = |message: String| EvalError::Input {
        path: origin.display().to_string(),
        message,
    };
    let mut by_instruction: HashMap<&str, &AlpacaOutput> = HashMap::new();
    for o in outputs {
        if by_instruction.insert(o.instruction.as_str(), o).is_some() {
            return Err(err(format!(
                "instruction given twice: {:?}",
                short(&o.instruction)
            )));
        }
    }
    let mut aligned = Vec::with_capacity(reference.len());
    for r in reference {
        let o = by_instruction
            .remove(r.instruction.as_str())
            .ok_or_else(|| {
                err(format!(
                    "no output for the instruction {:?}",
                    short(&r.instruction)
                ))
            })?;
        aligned.push(o.clone());
    }
    if let Some(extra) = by_instruction.keys().next() {
        return Err(err(format!(
            "an instruction not in the reference: {:?}",
            short(extra)
        )));
    }
    Ok(aligned)
}

fn short(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The prompt of an instruction (one user turn, rendered with the chat template by samplers).
pub fn instruction_prompt(instruction: &str) -> Conversation {
    Conversation::new(vec![Turn::human(instruction)])
}

/// What a judged run produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlpacaRun {
    pub score: AlpacaScore,
    /// The pairwise judge's counts (`None` for the weighted judge).
    pub judging: Option<AnnotateSummary>,
    pub annotations: PathBuf,
    pub model_outputs: PathBuf,
}

/// Judges `outputs` (aligned with `reference`) into `dir` (`judgments.jsonl`, resumable) and
/// writes `model_outputs.json` and `annotations.json` in alpaca_eval's format.
pub async fn judge_outputs<J: Judge>(
    judge: &J,
    outputs: &[AlpacaOutput],
    reference: &[AlpacaOutput],
    dir: &Path,
    options: AnnotateOptions,
) -> Result<AlpacaRun, EvalError> {
    std::fs::create_dir_all(dir).map_err(|e| xwin_data::DataError::io(dir, e))?;
    let inputs: Vec<PairInput> = outputs
        .iter()
        .zip(reference)
        .enumerate()
        .map(|(i, (o, r))| PairInput {
            id: Some(format!("alpaca-{i}")),
            prompt: instruction_prompt(&r.instruction),
            response_a: r.output.clone(),
            response_b: o.output.clone(),
            reference: None,
        })
        .collect();
    let judgments = dir.join("judgments.jsonl");
    let judging = annotate_pairs(judge, &inputs, &judgments, options, |_| {})
        .await
        .map_err(|e| EvalError::Input {
            path: judgments.display().to_string(),
            message: e.to_string(),
        })?;
    let mut preference: HashMap<String, f64> = HashMap::new();
    let read_lines = |path: &Path| -> Result<Vec<String>, EvalError> {
        match std::fs::read_to_string(path) {
            Ok(t) => Ok(t
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_string)
                .collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(xwin_data::DataError::io(path, e).into()),
        }
    };
    let bad = |path: &Path, e: serde_json::Error| EvalError::Input {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    for line in read_lines(&judgments)? {
        let pair: XwinPair = serde_json::from_str(&line).map_err(|e| bad(&judgments, e))?;
        let p = if pair.winner == Winner::A { 1.0 } else { 2.0 };
        preference.insert(pair.id, p);
    }
    let failures = failures_path(&judgments);
    for line in read_lines(&failures)? {
        let f: FailureRecord = serde_json::from_str(&line).map_err(|e| bad(&failures, e))?;
        if f.kind == "tie" || f.kind == "inconsistent" {
            preference.entry(f.id).or_insert(1.5);
        }
    }
    let annotations = annotations(outputs, reference, &judge.identity().model, &preference);
    write_run(dir, outputs, &annotations, Some(judging))
}

/// alpaca_eval's annotations of `outputs` against `reference` (in the same order), with the
/// preference of each `alpaca-{i}` where a verdict exists.
pub fn annotations(
    outputs: &[AlpacaOutput],
    reference: &[AlpacaOutput],
    annotator: &str,
    preference: &HashMap<String, f64>,
) -> Vec<AlpacaAnnotation> {
    outputs
        .iter()
        .zip(reference)
        .enumerate()
        .map(|(i, (o, r))| AlpacaAnnotation {
            instruction: r.instruction.clone(),
            output_1: r.output.clone(),
            generator_1: r.generator.clone(),
            output_2: o.output.clone(),
            generator_2: o.generator.clone(),
            dataset: r.dataset.clone(),
            annotator: annotator.to_string(),
            preference: preference.get(&format!("alpaca-{i}")).copied(),
        })
        .collect()
}

/// Scores `annotations` and writes the run's `model_outputs.json` and `annotations.json`.
pub fn write_run(
    dir: &Path,
    outputs: &[AlpacaOutput],
    annotations: &[AlpacaAnnotation],
    judging: Option<AnnotateSummary>,
) -> Result<AlpacaRun, EvalError> {
    let mut score = win_rate(&annotations.iter().map(|a| a.preference).collect::<Vec<_>>());
    let rows: Vec<(usize, usize, Option<f64>)> = annotations
        .iter()
        .map(|a| {
            (
                a.output_1.chars().count(),
                a.output_2.chars().count(),
                a.preference,
            )
        })
        .collect();
    score.length_controlled_winrate =
        crate::length_controlled(&rows).map(|lc| lc.length_controlled_winrate);
    Ok(AlpacaRun {
        score,
        judging,
        model_outputs: write_json(&dir.join("model_outputs.json"), outputs)?,
        annotations: write_json(&dir.join("annotations.json"), annotations)?,
    })
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<PathBuf, EvalError> {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    std::fs::write(path, text).map_err(|e| xwin_data::DataError::io(path, e))?;
    Ok(path.to_path_buf())
}

/// The policy's outputs for every reference instruction, sampled with `spec` (the Xwin
/// AlpacaEval setting: temperature 0.7, top-p 1) into `dir/samples-<generator>.jsonl`
/// (resumable; named by the sampler so that another policy in the same directory never
/// reuses these samples).
pub fn generate_outputs(
    sampler: &xwin_rs::LocalSampler,
    reference: &[AlpacaOutput],
    spec: &xwin_rs::SampleSpec,
    dir: &Path,
) -> Result<Vec<AlpacaOutput>, EvalError> {
    let prompts: Vec<xwin_rs::Prompt> = reference
        .iter()
        .enumerate()
        .map(|(i, r)| xwin_rs::Prompt {
            id: format!("alpaca-{i}"),
            conversation: instruction_prompt(&r.instruction),
        })
        .collect();
    let samples = dir.join(format!("samples-{}.jsonl", file_safe(&sampler.name)));
    let mut texts = first_answers(sampler, &prompts, spec, &samples)?;
    // A prompt too long for the context has no sample: its output is empty (and loses).
    Ok(reference
        .iter()
        .enumerate()
        .map(|(i, r)| AlpacaOutput {
            instruction: r.instruction.clone(),
            output: texts.remove(&format!("alpaca-{i}")).unwrap_or_default(),
            generator: sampler.name.clone(),
            dataset: r.dataset.clone(),
        })
        .collect())
}
