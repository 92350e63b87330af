//! MT-bench aggregates from FastChat's `model_judgment/*.jsonl`, as its `show_result.py`
//! prints them. Single grading: ratings of −1 (no `[[rating]]` in the judge's reply) are
//! excluded; per model the mean of turn 1, of turn 2, and of all its ratings. Pairwise:
//! rows where either order's verdict is `error` are dropped; a tie in the first order or
//! verdicts that disagree across the two orders count as a tie for both models; with a
//! baseline, only games involving it count and the baseline itself is not listed;
//! win rate = wins / games, adjusted win rate = (wins + ties / 2) / games.

use crate::EvalError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A line of `*_single.jsonl` (the fields the aggregates need; others are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SingleJudgment {
    pub question_id: i64,
    pub model: String,
    pub score: f64,
    pub turn: u32,
}

/// A line of `*_pair.jsonl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PairwiseJudgment {
    pub question_id: i64,
    pub model_1: String,
    pub model_2: String,
    /// `model_1`, `model_2`, `tie` or `error`, in the first order shown...
    pub g1_winner: String,
    /// ...and with the answers swapped.
    pub g2_winner: String,
    #[serde(default)]
    pub turn: Option<u32>,
}

/// A model's single-grading scores (means of the 1–10 ratings).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SingleScore {
    pub turn1: Option<f64>,
    pub turn2: Option<f64>,
    pub overall: f64,
    /// Ratings averaged, and those excluded for having no rating (−1).
    pub n_ratings: usize,
    pub n_unrated: usize,
}

/// A model's pairwise record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairwiseScore {
    pub win: usize,
    pub loss: usize,
    pub tie: usize,
    pub win_rate: f64,
    pub loss_rate: f64,
    pub win_rate_adjusted: f64,
}

/// Reads a judgment JSONL, each line checked against `question_ids` when given (a judgment
/// for an unknown question is an error naming the line).
pub fn read_judgments<T: for<'de> Deserialize<'de> + HasQuestion>(
    path: &Path,
    question_ids: Option<&BTreeSet<i64>>,
) -> Result<Vec<T>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| xwin_data::DataError::io(path, e))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let input = |message: String| EvalError::Input {
            path: format!("{}: line {}", path.display(), i + 1),
            message,
        };
        let j: T = serde_json::from_str(line).map_err(|e| input(e.to_string()))?;
        if let Some(ids) = question_ids
            && !ids.contains(&j.question_id())
        {
            return Err(input(format!(
                "question_id {} is not an MT-bench question",
                j.question_id()
            )));
        }
        out.push(j);
    }
    Ok(out)
}

/// Judgments that name a question.
pub trait HasQuestion {
    fn question_id(&self) -> i64;
}

impl HasQuestion for SingleJudgment {
    fn question_id(&self) -> i64 {
        self.question_id
    }
}

impl HasQuestion for PairwiseJudgment {
    fn question_id(&self) -> i64 {
        self.question_id
    }
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Per model: turn-1, turn-2 and overall means of the ratings (−1 excluded).
pub fn single_scores(judgments: &[SingleJudgment]) -> BTreeMap<String, SingleScore> {
    // Per model: turn-1, turn-2 and all ratings, and the count of unrated judgments.
    type Ratings = (Vec<f64>, Vec<f64>, Vec<f64>, usize);
    let mut by_model: BTreeMap<&str, Ratings> = BTreeMap::new();
    for j in judgments {
        let entry = by_model.entry(&j.model).or_default();
        if j.score == -1.0 {
            entry.3 += 1;
            continue;
        }
        match j.turn {
            1 => entry.0.push(j.score),
            2 => entry.1.push(j.score),
            _ => {}
        }
        entry.2.push(j.score);
    }
    by_model
        .into_iter()
        .filter(|(_, (_, _, all, _))| !all.is_empty())
        .map(|(model, (t1, t2, all, unrated))| {
            let score = SingleScore {
                turn1: mean(&t1),
                turn2: mean(&t2),
                overall: mean(&all).unwrap_or(f64::NAN),
                n_ratings: all.len(),
                n_unrated: unrated,
            };
            (model.to_string(), score)
        })
        .collect()
}

/// Per model: wins, losses and ties over both-order judgments, optionally only against
/// `baseline` (which is then left out of the table).
pub fn pairwise_scores(
    judgments: &[PairwiseJudgment],
    baseline: Option<&str>,
) -> BTreeMap<String, PairwiseScore> {
    let mut counts: BTreeMap<&str, [usize; 3]> = BTreeMap::new();
    for j in judgments {
        if j.g1_winner == "error" || j.g2_winner == "error" {
            continue;
        }
        if let Some(b) = baseline
            && b != j.model_1
            && b != j.model_2
        {
            continue;
        }
        if j.g1_winner == "tie" || j.g1_winner != j.g2_winner {
            counts.entry(&j.model_1).or_default()[2] += 1;
            counts.entry(&j.model_2).or_default()[2] += 1;
        } else {
            let (winner, loser) = if j.g1_winner == "model_1" {
                (&j.model_1, &j.model_2)
            } else {
                (&j.model_2, &j.model_1)
            };
            counts.entry(winner).or_default()[0] += 1;
            counts.entry(loser).or_default()[1] += 1;
        }
    }
    counts
        .into_iter()
        .filter(|(m, _)| Some(*m) != baseline)
        .map(|(model, [win, loss, tie])| {
            let games = (win + loss + tie) as f64;
            let score = PairwiseScore {
                win,
                loss,
                tie,
                win_rate: win as f64 / games,
                loss_rate: loss as f64 / games,
                win_rate_adjusted: (win as f64 + 0.5 * tie as f64) / games,
            };
            (model.to_string(), score)
        })
        .collect()
}
