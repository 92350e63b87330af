//! A paired comparison of two policies judged on the same instructions: the difference of
//! their win rates against the same reference, with a seeded bootstrap interval that
//! resamples instructions (both policies' verdicts on an instruction move together), so a
//! claim such as "DPO beats RS" comes with its uncertainty.

use crate::EvalError;
use crate::bootstrap::{Interval, bootstrap_mean};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

/// The comparison of `a` against `b`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairedComparison {
    /// Instructions both were judged on (with a usable preference each).
    pub n: usize,
    /// Win rates against the reference on those instructions (percent).
    pub a_win_rate: f64,
    pub b_win_rate: f64,
    /// `a − b` in percentage points, with its 95 % interval.
    pub difference: f64,
    pub interval: Option<Interval>,
    /// Instructions where a's verdict is better, worse, equal.
    pub a_better: usize,
    pub b_better: usize,
    pub same: usize,
}

/// Preferences of an `annotations.json` by instruction (usable ones only, as `win_rate`
/// keeps them: in [1, 2], the legacy 0 read as a draw).
pub fn preferences_by_instruction(path: &Path) -> Result<HashMap<String, f64>, EvalError> {
    let rows = crate::alpaca::read_annotation_list(path)?;
    let mut out = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let instruction = row["instruction"]
            .as_str()
            .ok_or_else(|| EvalError::Input {
                path: path.display().to_string(),
                message: format!("annotation {i}: no instruction"),
            })?;
        if let Some(p) = row["preference"].as_f64() {
            let p = if p == 0.0 { 1.5 } else { p };
            if (1.0..=2.0).contains(&p) && out.insert(instruction.to_string(), p).is_some() {
                return Err(EvalError::Input {
                    path: path.display().to_string(),
                    message: format!("instruction judged twice (annotation {i})"),
                });
            }
        }
    }
    Ok(out)
}

/// Compares two policies on the instructions both have a verdict for.
pub fn paired_comparison(
    a: &HashMap<String, f64>,
    b: &HashMap<String, f64>,
    seed: u64,
) -> PairedComparison {
    let mut keys: Vec<&String> = a.keys().filter(|k| b.contains_key(*k)).collect();
    keys.sort();
    let pairs: Vec<(f64, f64)> = keys.iter().map(|k| (a[*k] - 1.0, b[*k] - 1.0)).collect();
    let n = pairs.len();
    let mean =
        |f: &dyn Fn(&(f64, f64)) -> f64| pairs.iter().map(f).sum::<f64>() / n.max(1) as f64 * 100.0;
    let diffs: Vec<f64> = pairs.iter().map(|(x, y)| (x - y) * 100.0).collect();
    PairedComparison {
        n,
        a_win_rate: mean(&|p| p.0),
        b_win_rate: mean(&|p| p.1),
        difference: mean(&|p| p.0 - p.1),
        interval: bootstrap_mean(&diffs, 2000, 0.95, seed),
        a_better: pairs.iter().filter(|(x, y)| x > y).count(),
        b_better: pairs.iter().filter(|(x, y)| x < y).count(),
        same: pairs.iter().filter(|(x, y)| x == y).count(),
    }
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn paired_difference_and_its_interval() {
        let a: HashMap<String, f64> = (0..100)
            .map(|i| (format!("q{i}"), if i % 4 == 0 { 1.0 } else { 2.0 }))
            .collect();
        let mut b: HashMap<String, f64> = (0..100)
            .map(|i| (format!("q{i}"), if i % 2 == 0 { 1.0 } else { 2.0 }))
            .collect();
        b.insert("only-b".into(), 2.0);
        let c = paired_comparison(&a, &b, 1);
        assert_eq!(c.n, 100);
        assert_eq!(
            (c.a_win_rate, c.b_win_rate, c.difference),
            (75.0, 50.0, 25.0)
        );
        assert_eq!((c.a_better, c.b_better, c.same), (25, 0, 75));
        let i = c.interval.unwrap();
        assert!(i.low > 0.0 && i.low < 25.0 && i.high > 25.0, "{i:?}");
        // The same policy against itself: no difference, a degenerate interval at 0.
        let same = paired_comparison(&a, &a, 1);
        assert_eq!(
            (
                same.difference,
                same.interval.unwrap().low,
                same.interval.unwrap().high
            ),
            (0.0, 0.0, 0.0)
        );
    }
}
