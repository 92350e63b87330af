//! `xwin-eval alpaca-score --annotations FILE [--json]`: AlpacaEval's win rate of an
//! `annotations.json`, as `alpaca_eval` computes it.
//! `xwin-eval mt-bench-score --judgments FILE --mode single|pairwise [--baseline M] [--json]`:
//! MT-bench aggregates of a FastChat `model_judgment/*.jsonl`, as `show_result.py` prints them.

use clap::{Parser, Subcommand, ValueEnum};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_eval::{
    EvalError, pairwise_scores, read_annotations, read_judgments, single_scores, win_rate,
};

#[derive(Parser)]
#[command(
    name = "xwin-eval",
    version,
    about = "Evaluation aggregates from official-format files"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Win rate, standard error, counts and a bootstrap interval of an annotations.json.
    AlpacaScore {
        #[arg(long)]
        annotations: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Turn 1 / turn 2 / overall (single) or win / loss / tie rates (pairwise) per model.
    MtBenchScore {
        #[arg(long)]
        judgments: PathBuf,
        #[arg(long, value_enum)]
        mode: Mode,
        /// Pairwise: only games against this model (FastChat's default is gpt-3.5-turbo;
        /// omit for all pairs).
        #[arg(long)]
        baseline: Option<String>,
        /// MT-bench `question.jsonl`: judgments for other question ids are errors.
        #[arg(long)]
        questions: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    Single,
    Pairwise,
}

fn question_ids(path: &std::path::Path) -> Result<BTreeSet<i64>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| xwin_eval::EvalError::Input {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v["question_id"].as_i64())
                .ok_or_else(|| EvalError::Input {
                    path: format!("{}: line {}", path.display(), i + 1),
                    message: "no integer question_id".into(),
                })
        })
        .collect()
}

fn run(cli: Cli) -> Result<String, EvalError> {
    match cli.command {
        Command::AlpacaScore { annotations, json } => {
            let s = win_rate(&read_annotations(&annotations)?);
            Ok(if json {
                serde_json::to_string(&s).unwrap_or_default()
            } else {
                let ci = s.interval.map_or(String::new(), |i| {
                    format!(" (95 % bootstrap {:.2}–{:.2})", i.low, i.high)
                });
                format!(
                    "win rate {:.2} % ± {:.2}{ci}; {} wins, {} losses, {} draws of {} ({} without a preference); discrete {:.2} %",
                    s.win_rate,
                    s.standard_error,
                    s.n_wins,
                    s.n_wins_base,
                    s.n_draws,
                    s.n_total,
                    s.n_dropped,
                    s.discrete_win_rate
                )
            })
        }
        Command::MtBenchScore {
            judgments,
            mode,
            baseline,
            questions,
            json,
        } => {
            let ids = questions.as_deref().map(question_ids).transpose()?;
            let (value, table) = match mode {
                Mode::Single => {
                    let scores = single_scores(&read_judgments(&judgments, ids.as_ref())?);
                    let mut table = String::from(
                        "| model | turn 1 | turn 2 | overall | ratings |\n|---|---:|---:|---:|---:|\n",
                    );
                    for (m, s) in &scores {
                        let f = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.4}"));
                        table.push_str(&format!(
                            "| {m} | {} | {} | {:.4} | {} |\n",
                            f(s.turn1),
                            f(s.turn2),
                            s.overall,
                            s.n_ratings
                        ));
                    }
                    (serde_json::json!({ "models": scores }), table)
                }
                Mode::Pairwise => {
                    let scores = pairwise_scores(
                        &read_judgments(&judgments, ids.as_ref())?,
                        baseline.as_deref(),
                    );
                    let mut table = String::from(
                        "| model | win | loss | tie | win rate | loss rate | adjusted |\n|---|---:|---:|---:|---:|---:|---:|\n",
                    );
                    for (m, s) in &scores {
                        table.push_str(&format!(
                            "| {m} | {} | {} | {} | {:.4} | {:.4} | {:.4} |\n",
                            s.win, s.loss, s.tie, s.win_rate, s.loss_rate, s.win_rate_adjusted
                        ));
                    }
                    (serde_json::json!({ "models": scores }), table)
                }
            };
            Ok(if json { value.to_string() } else { table })
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xwin-eval: error: {e}");
            ExitCode::FAILURE
        }
    }
}
