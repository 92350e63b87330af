//! Judging a file of response pairs into Xwin-Pair records, resumably: every item has a key
//! (a stable hash of its inputs and the judge's configuration); the output is append-only
//! JSON Lines, one flushed line per finished item; a rerun skips keys already written and
//! repairs a torn last line, so a killed run loses at most the requests in flight and never
//! writes an item twice. Items without a usable verdict go to `<output>.failures.jsonl`
//! with the raw replies; failures are retried by the next run, ties are not.

use crate::client::Usage;
use crate::error::{AnnotateError, Result};
use crate::judge::{Judge, JudgeFailure, PairQuery, PairVerdict};
use crate::pairs::PairInput;
use crate::parse::Shown;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::cell::Cell;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use xwin_data::io::for_each_value;
use xwin_data::{
    JsonlWriter, JudgeMeta, OutputLock, ReadOptions, ReadReport, Winner, XwinPair, lock_path_for,
    stable_hash,
};

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
    xwin_data::sidecar(output, ".failures.jsonl")
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
    let Some(winner) = winner else {
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
        rating: first.rating,
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
    on_progress: impl FnMut(Progress),
) -> Result<AnnotateSummary> {
    let stream = futures::stream::iter(inputs.iter().cloned());
    annotate_stream(judge, stream, inputs.len(), output, options, on_progress).await
}

/// [`annotate_pairs`] over a file read as it is judged (JSONL or a JSON array, optionally
/// gzipped): memory holds the items in flight, not the file. A first pass counts the items
/// for the progress bar; a bad record stops the run (or is skipped and counted) as usual.
pub async fn annotate_file<J: Judge>(
    judge: &J,
    input: &Path,
    read: ReadOptions,
    output: &Path,
    options: AnnotateOptions,
    on_progress: impl FnMut(Progress),
) -> Result<(AnnotateSummary, ReadReport)> {
    let mut total = 0;
    for_each_value(input, read, |v, _| {
        PairInput::from_value(v)?;
        total += 1;
        Ok(())
    })?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<PairInput>(4 * options.concurrency.max(1));
    let path = input.to_path_buf();
    let reader = tokio::task::spawn_blocking(move || {
        for_each_value(&path, read, |v, _| {
            // A closed channel means the run stopped (a fatal endpoint error): drain quietly.
            let _ = tx.blocking_send(PairInput::from_value(v)?);
            Ok(())
        })
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let summary = annotate_stream(judge, stream, total, output, options, on_progress).await;
    let report = reader
        .await
        .map_err(|e| AnnotateError::Config(format!("input reader: {e}")))??;
    Ok((summary?, report))
}

async fn annotate_stream<J: Judge>(
    judge: &J,
    inputs: impl futures::Stream<Item = PairInput>,
    count: usize,
    output: &Path,
    options: AnnotateOptions,
    mut on_progress: impl FnMut(Progress),
) -> Result<AnnotateSummary> {
    if options.concurrency == 0 {
        return Err(AnnotateError::Config("concurrency must be ≥ 1".into()));
    }
    let _lock = OutputLock::acquire(lock_path_for(output, false))?;
    let identity = judge.identity();
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
        inputs: count,
        ..Default::default()
    };
    // Items already done or repeated are counted as they stream past, so the total to
    // judge is known only at the end; progress counts against what is not yet known done.
    let mut seen = HashSet::new();
    let (duplicates, already_done) = (Cell::new(0usize), Cell::new(0usize));
    let todo = inputs.filter_map(|input| {
        let key = item_key(&input, &identity_value, &options);
        let keep = if !seen.insert(key.clone()) {
            duplicates.set(duplicates.get() + 1);
            false
        } else if done.contains(&key) {
            already_done.set(already_done.get() + 1);
            false
        } else {
            true
        };
        std::future::ready(keep.then_some((input, key)))
    });
    tracing::info!(inputs = count, already_done = done.len(), "judging pairs");
    let mut results = std::pin::pin!(
        todo.map(|(input, key)| {
            let meta = &meta;
            let options = &options;
            async move { judge_item(judge, &input, key, meta, options).await }
        })
        .buffer_unordered(options.concurrency)
    );
    let mut finished = 0;
    let mut fatal = None;
    while let Some(outcome) = results.next().await {
        finished += 1;
        match outcome {
            Outcome::Pair(pair) => {
                *summary
                    .by_rating
                    .entry(pair.rating.map_or("unrated", |r| r.as_str()).to_string())
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
            total: count.saturating_sub(duplicates.get() + already_done.get()),
            failures: summary.failures,
        });
        if fatal.is_some() {
            break;
        }
    }
    (summary.duplicates, summary.already_done) = (duplicates.get(), already_done.get());
    summary.usage = judge.usage();
    if let Some(e) = fatal {
        return Err(AnnotateError::Config(format!(
            "the endpoint refused a request in a way every request would fail ({e}); \
             stopped after {finished} items, all of them saved"
        )));
    }
    Ok(summary)
}
