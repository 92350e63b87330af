//! Judging a file of response pairs into Xwin-Pair records, resumably: every item has a key
//! (a stable hash of its inputs and the judge's configuration); the output is append-only
//! JSON Lines, one flushed line per finished item; a rerun skips keys already written and
//! repairs a torn last line, so a killed run loses at most the requests in flight and never
//! writes an item twice. Items without a usable verdict go to `<output>.failures.jsonl`
//! with the raw replies; failures are retried by the next run, ties are not.

use crate::client::Usage;
use crate::error::{AnnotateError, Result};
use crate::judge::{Judge, JudgeFailure, PairQuery, PairVerdict};
use crate::parse::Shown;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use xwin_data::io::{for_each_value, from_value};
use xwin_data::{
    Conversation, FieldError, JsonlWriter, JudgeMeta, ReadOptions, ReadReport, Role, Turn, Winner,
    XwinPair, stable_hash,
};

/// Two responses to one prompt, to be judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub prompt: Conversation,
    pub response_a: String,
    pub response_b: String,
    /// A reference answer for judges that use one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl PairInput {
    /// `{prompt | conversations, response_a, response_b}` or AlpacaFarm's
    /// `{instruction, input, output_1, output_2}`.
    pub fn from_value(value: Value) -> std::result::Result<Self, FieldError> {
        if value.get("output_1").is_some() {
            let text = |k: &str| {
                value
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| FieldError::new(k, "missing or not a string"))
            };
            let instruction = text("instruction")?;
            let input = value.get("input").and_then(Value::as_str).unwrap_or("");
            let question = if input.is_empty() {
                instruction
            } else {
                format!("{instruction}\n\n{input}")
            };
            return Ok(Self {
                id: value.get("id").and_then(Value::as_str).map(str::to_string),
                prompt: Conversation::new(vec![Turn::human(question)]),
                response_a: text("output_1")?,
                response_b: text("output_2")?,
                reference: None,
            });
        }
        let mut value = value;
        if let Some(obj) = value.as_object_mut()
            && !obj.contains_key("prompt")
            && let Some(turns) = obj.remove("conversations")
        {
            obj.insert(
                "prompt".into(),
                serde_json::json!({ "conversations": turns }),
            );
        }
        let input: Self = from_value(value)?;
        input
            .prompt
            .validate()
            .map_err(|e| FieldError::new(format!("prompt.{}", e.field), e.message))?;
        Ok(input)
    }

    /// The prompt as the judge sees it: the question alone for one turn, else a transcript.
    pub fn question(&self) -> String {
        let turns = &self.prompt.turns;
        match turns.as_slice() {
            [only] if only.from == Role::Human && self.prompt.system.is_none() => {
                only.value.clone()
            }
            _ => {
                let mut out = String::new();
                if let Some(s) = &self.prompt.system {
                    out.push_str(&format!("SYSTEM: {s}\n"));
                }
                for t in turns {
                    let who = match t.from {
                        Role::Human => "USER",
                        Role::Gpt => "ASSISTANT",
                        Role::System => "SYSTEM",
                    };
                    out.push_str(&format!("{who}: {}\n", t.value));
                }
                out.trim_end().to_string()
            }
        }
    }
}

/// Reads pair inputs (JSONL or a JSON array, optionally gzipped).
pub fn read_pair_inputs(path: &Path, options: ReadOptions) -> Result<(Vec<PairInput>, ReadReport)> {
    let mut out = Vec::new();
    let report = for_each_value(path, options, |v, _| {
        out.push(PairInput::from_value(v)?);
        Ok(())
    })?;
    Ok((out, report))
}

/// How a run treats position bias and parallelism.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnnotateOptions {
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Seeds the order in which each item's responses are shown.
    pub seed: u64,
    /// Judge both orders and keep only verdicts that agree (MT-bench's rule); others are ties.
    pub both_orders: bool,
}

impl Default for AnnotateOptions {
    fn default() -> Self {
        Self {
            concurrency: 16,
            seed: 0,
            both_orders: false,
        }
    }
}

/// A line of `<output>.failures.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    pub key: String,
    pub id: String,
    /// `failure` (no verdict; retried by the next run), `tie` or `inconsistent` (final).
    pub kind: String,
    pub error: String,
    /// The judge's replies, verbatim.
    pub raw: Vec<String>,
    pub shown_order: [Winner; 2],
}

/// Counts for the closing table.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AnnotateSummary {
    pub inputs: usize,
    /// Items already in the output (or final in the failures file) before this run.
    pub already_done: usize,
    /// Inputs whose key repeats an earlier input.
    pub duplicates: usize,
    pub judged: usize,
    pub by_rating: BTreeMap<String, usize>,
    pub ties: usize,
    pub inconsistent: usize,
    pub failures: usize,
    pub usage: Usage,
}

/// Progress after each finished item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
    pub failures: usize,
}

/// The failures file beside `output`.
pub fn failures_path(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".failures.jsonl");
    output.with_file_name(name)
}

fn item_key(input: &PairInput, judge: &Value, options: &AnnotateOptions) -> String {
    let text = serde_json::json!({
        "prompt": input.prompt, "a": input.response_a, "b": input.response_b,
        "reference": input.reference, "judge": judge,
        "seed": options.seed, "both_orders": options.both_orders,
    })
    .to_string();
    format!("{:016x}", stable_hash(text.as_bytes()))
}

/// Keys already final in the output and failures files (read after their torn tails were cut).
fn done_keys(output: &Path, failures: &Path) -> Result<HashSet<String>> {
    let mut done = HashSet::new();
    for (path, is_output) in [(output, true), (failures, false)] {
        // Line by line: an annotation run's output can be gigabytes.
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(xwin_data::DataError::io(path, e).into()),
        };
        for (i, line) in std::io::BufRead::lines(std::io::BufReader::new(file)).enumerate() {
            let line = line.map_err(|e| xwin_data::DataError::io(path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let err = |message: String| AnnotateError::Output {
                path: path.to_path_buf(),
                line: i + 1,
                message,
            };
            if is_output {
                let pair: XwinPair = serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
                done.insert(pair.judge.key);
            } else {
                let f: FailureRecord =
                    serde_json::from_str(&line).map_err(|e| err(e.to_string()))?;
                if f.kind != "failure" {
                    done.insert(f.key);
                }
            }
        }
    }
    Ok(done)
}

/// The outcome of one item.
enum Outcome {
    Pair(XwinPair),
    Final(FailureRecord),
    Failed(FailureRecord, bool),
}

fn order_for(key: &str, seed: u64) -> [Winner; 2] {
    if stable_hash(format!("{seed}:{key}").as_bytes()) & 1 == 0 {
        [Winner::A, Winner::B]
    } else {
        [Winner::B, Winner::A]
    }
}

/// Maps a verdict on the shown order back to A/B; `None` for a tie.
fn to_winner(shown: Shown, order: [Winner; 2]) -> Option<Winner> {
    match shown {
        Shown::First => Some(order[0]),
        Shown::Second => Some(order[1]),
        Shown::Tie => None,
    }
}

async fn judge_item<J: Judge>(
    judge: &J,
    input: &PairInput,
    key: String,
    meta: &JudgeMeta,
    options: &AnnotateOptions,
) -> Outcome {
    let order = order_for(&key, options.seed);
    let id = input.id.clone().unwrap_or_else(|| key.clone());
    let question = input.question();
    let text = |w: Winner| match w {
        Winner::A => input.response_a.as_str(),
        Winner::B => input.response_b.as_str(),
    };
    let ask = |order: [Winner; 2]| {
        judge.compare(PairQuery {
            question: &question,
            first: text(order[0]),
            second: text(order[1]),
            reference: input.reference.as_deref(),
        })
    };
    let failed = |f: JudgeFailure, kind: &str| {
        let fatal = f.fatal;
        Outcome::Failed(
            FailureRecord {
                key: key.clone(),
                id: id.clone(),
                kind: kind.into(),
                error: f.error,
                raw: f.raw,
                shown_order: order,
            },
            fatal,
        )
    };
    let first: PairVerdict = match ask(order).await {
        Ok(v) => v,
        Err(f) => return failed(f, "failure"),
    };
    let winner = to_winner(first.winner, order);
    let mut raw = vec![first.raw.clone()];
    if options.both_orders {
        let swapped = [order[1], order[0]];
        let second = match ask(swapped).await {
            Ok(v) => v,
            Err(f) => return failed(f, "failure"),
        };
        raw.push(second.raw.clone());
        if to_winner(second.winner, swapped) != winner || winner.is_none() {
            return Outcome::Final(FailureRecord {
                key,
                id,
                kind: "inconsistent".into(),
                error: format!(
                    "verdicts disagree or tie across orders: {:?} then {:?}",
                    first.winner, second.winner
                ),
                raw,
                shown_order: order,
            });
        }
    }
    let (Some(winner), Some(rating)) = (winner, first.rating) else {
        return Outcome::Final(FailureRecord {
            key,
            id,
            kind: "tie".into(),
            error: "the judge declared a tie".into(),
            raw,
            shown_order: order,
        });
    };
    Outcome::Pair(XwinPair {
        id,
        prompt: input.prompt.clone(),
        response_a: input.response_a.clone(),
        response_b: input.response_b.clone(),
        winner,
        rating,
        reason: first.reason,
        judge: JudgeMeta {
            key,
            ..meta.clone()
        },
        shown_order: order,
    })
}

/// Judges every input not already done and appends the results to `output`.
pub async fn annotate_pairs<J: Judge>(
    judge: &J,
    inputs: &[PairInput],
    output: &Path,
    options: AnnotateOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<AnnotateSummary> {
    if options.concurrency == 0 {
        return Err(AnnotateError::Config("concurrency must be ≥ 1".into()));
    }
    let identity = judge.identity();
    if identity.format != crate::judge::VerdictFormat::Xwin {
        return Err(AnnotateError::Config(format!(
            "Xwin-Pair records need the four-level rating, which the {:?} format does not give; \
             use the xwin format here (MT-bench and AlpacaEval formats are for evaluation)",
            identity.format
        )));
    }
    let identity_value = serde_json::to_value(&identity).unwrap_or_default();
    let meta = JudgeMeta {
        model: identity.model.clone(),
        template: identity.template.clone(),
        temperature: identity.temperature,
        key: String::new(),
    };
    let failures_path = failures_path(output);
    // Opening for append cuts a torn last line first; then the surviving keys are read.
    let mut out = JsonlWriter::append(output)?;
    let mut failures = JsonlWriter::append(&failures_path)?;
    let done = done_keys(output, &failures_path)?;

    let mut summary = AnnotateSummary {
        inputs: inputs.len(),
        ..Default::default()
    };
    let mut seen = HashSet::new();
    let mut todo = Vec::new();
    for input in inputs {
        let key = item_key(input, &identity_value, &options);
        if !seen.insert(key.clone()) {
            summary.duplicates += 1;
        } else if done.contains(&key) {
            summary.already_done += 1;
        } else {
            todo.push((input, key));
        }
    }
    let total = todo.len();
    tracing::info!(
        inputs = inputs.len(),
        already_done = summary.already_done,
        to_judge = total,
        "judging pairs"
    );
    let mut results = futures::stream::iter(todo)
        .map(|(input, key)| judge_item(judge, input, key, &meta, &options))
        .buffer_unordered(options.concurrency);
    let mut finished = 0;
    let mut fatal = None;
    while let Some(outcome) = results.next().await {
        finished += 1;
        match outcome {
            Outcome::Pair(pair) => {
                *summary
                    .by_rating
                    .entry(pair.rating.as_str().to_string())
                    .or_default() += 1;
                summary.judged += 1;
                out.write(&pair)?;
            }
            Outcome::Final(record) => {
                if record.kind == "tie" {
                    summary.ties += 1;
                } else {
                    summary.inconsistent += 1;
                }
                failures.write(&record)?;
            }
            Outcome::Failed(record, is_fatal) => {
                summary.failures += 1;
                if is_fatal && fatal.is_none() {
                    fatal = Some(record.error.clone());
                }
                failures.write(&record)?;
            }
        }
        on_progress(Progress {
            done: finished,
            total,
            failures: summary.failures,
        });
        if fatal.is_some() {
            break;
        }
    }
    summary.usage = judge.usage();
    if let Some(e) = fatal {
        return Err(AnnotateError::Config(format!(
            "the endpoint refused a request in a way every request would fail ({e}); \
             stopped after {finished} items, all of them saved"
        )));
    }
    Ok(summary)
}
