//! AlpacaEval's head-to-head win rate from an `annotations.json` (the official format: a
//! list of `{instruction, output_1, generator_1, output_2, generator_2, preference, …}`),
//! computed as `alpaca_eval.metrics.winrate.get_winrate` does: preference 1 = the reference
//! (`output_1`) wins, 2 = the model wins, 1.5 (or the legacy 0) = a draw, anything in between
//! a weighted judgment; draws are counted before the legacy 0 becomes 1.5; values outside
//! [1, 2] and missing ones are dropped; win rate = mean(p − 1) · 100, standard error the
//! sample standard error · 100, wins strictly above / below one half.

use crate::EvalError;
use crate::bootstrap::{Interval, bootstrap_percent};
use serde::Serialize;
use std::path::Path;

/// The aggregates, with the official key names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlpacaScore {
    /// Percent.
    pub win_rate: f64,
    pub standard_error: f64,
    pub n_wins: usize,
    pub n_wins_base: usize,
    pub n_draws: usize,
    pub n_total: usize,
    /// The same with each preference rounded to a win, loss or draw (percent).
    pub discrete_win_rate: f64,
    /// Annotations without a usable preference (missing, null or outside [1, 2]).
    pub n_dropped: usize,
    /// Seeded 95 % bootstrap interval of `win_rate` (percent).
    pub interval: Option<Interval>,
    /// The win rate at equal output lengths (percent; see [`crate::length_controlled`] for
    /// how it differs from alpaca_eval's default GLM), where the outputs are known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length_controlled_winrate: Option<f64>,
}

/// The preferences of an annotations file (`None` where missing or null).
pub fn read_annotations(path: &Path) -> Result<Vec<Option<f64>>, EvalError> {
    read_annotation_list(path)?
        .iter()
        .enumerate()
        .map(|(i, row)| match row.get("preference") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(p) => p.as_f64().map(Some).ok_or_else(|| EvalError::Input {
                path: path.display().to_string(),
                message: format!("annotation {i}: preference is not a number"),
            }),
        })
        .collect()
}

/// The win rate of a list of preferences.
pub fn win_rate(preferences: &[Option<f64>]) -> AlpacaScore {
    let n_draws = preferences
        .iter()
        .filter(|p| matches!(p, Some(x) if *x == 1.5 || *x == 0.0))
        .count();
    let valid: Vec<f64> = preferences
        .iter()
        .flatten()
        .map(|&p| if p == 0.0 { 1.5 } else { p })
        .filter(|p| (1.0..=2.0).contains(p))
        .map(|p| p - 1.0)
        .collect();
    let n = valid.len();
    let mean = valid.iter().sum::<f64>() / n as f64;
    let sem = if n > 1 {
        let var = valid.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        (var / n as f64).sqrt()
    } else {
        f64::NAN
    };
    // The discrete rule rounds each preference (pandas rounds half to even: 1.5 stays a draw).
    let discrete: Vec<f64> = valid
        .iter()
        .map(|v| {
            let p = v + 1.0;
            if p == 1.5 {
                0.5
            } else {
                p.round_ties_even() - 1.0
            }
        })
        .collect();
    let interval = bootstrap_percent(&valid);
    AlpacaScore {
        win_rate: mean * 100.0,
        standard_error: sem * 100.0,
        n_wins: valid.iter().filter(|v| **v > 0.5).count(),
        n_wins_base: valid.iter().filter(|v| **v < 0.5).count(),
        n_draws,
        n_total: n,
        discrete_win_rate: discrete.iter().sum::<f64>() / n as f64 * 100.0,
        n_dropped: preferences.len() - n,
        interval,
        length_controlled_winrate: None,
    }
}

/// The records of an `annotations.json` (a JSON list), as JSON values.
pub fn read_annotation_list(path: &Path) -> Result<Vec<serde_json::Value>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| xwin_data::DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EvalError::Input {
        path: path.display().to_string(),
        message: format!("not an annotations list: {e}"),
    })
}

/// Each annotation's output lengths (characters) and preference.
pub fn read_annotation_rows(path: &Path) -> Result<Vec<(usize, usize, Option<f64>)>, EvalError> {
    Ok(read_annotation_list(path)?
        .iter()
        .map(|r| {
            let len = |k: &str| r[k].as_str().map_or(0, |t| t.chars().count());
            (len("output_1"), len("output_2"), r["preference"].as_f64())
        })
        .collect())
}

/// The win rate of an annotations file, with the length-controlled win rate.
pub fn score_file(path: &Path) -> Result<AlpacaScore, EvalError> {
    let rows = read_annotation_rows(path)?;
    let mut score = win_rate(&rows.iter().map(|r| r.2).collect::<Vec<_>>());
    score.length_controlled_winrate =
        crate::length_controlled(&rows).map(|lc| lc.length_controlled_winrate);
    Ok(score)
}
