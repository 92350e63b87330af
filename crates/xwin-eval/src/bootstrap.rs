//! Seeded percentile bootstrap of a mean: the interval every reported win rate and score
//! carries.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// A two-sided percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// Coverage, e.g. 0.95.
    pub level: f64,
    pub resamples: usize,
    pub seed: u64,
}

impl Interval {
    /// The same interval in units `factor` times larger (e.g. 100 for percent).
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            low: self.low * factor,
            high: self.high * factor,
            ..self
        }
    }
}

/// The report's interval of a mean of 0–1 values, in percent: 95 %, 2,000 resamples, seed 0.
pub fn bootstrap_percent(values: &[f64]) -> Option<Interval> {
    bootstrap_mean(values, 2000, 0.95, 0).map(|i| i.scaled(100.0))
}

/// The `level` percentile interval of the mean of `values` over `resamples` resamples with
/// replacement (seeded: the same inputs give the same interval). `None` for no values.
pub fn bootstrap_mean(values: &[f64], resamples: usize, level: f64, seed: u64) -> Option<Interval> {
    if values.is_empty() || resamples == 0 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = values.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| values[rng.random_range(0..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    let tail = (1.0 - level) / 2.0;
    let at = |q: f64| means[((q * resamples as f64).floor() as usize).min(resamples - 1)];
    Some(Interval {
        low: at(tail),
        high: at(1.0 - tail),
        level,
        resamples,
        seed,
    })
}

#[cfg(test)]
mod checks {
    use super::bootstrap_mean;

    #[test]
    fn interval_covers_the_mean_and_is_reproducible() {
        let values: Vec<f64> = (0..200).map(|i| f64::from(i % 7)).collect();
        let mean = values.iter().sum::<f64>() / 200.0;
        let a = bootstrap_mean(&values, 2000, 0.95, 3).unwrap();
        assert!(a.low < mean && mean < a.high, "{a:?}");
        // Roughly ±1.96 standard errors.
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 199.0).sqrt();
        let se = sd / 200f64.sqrt();
        assert!(
            (a.high - a.low - 2.0 * 1.96 * se).abs() < 0.25 * 2.0 * 1.96 * se,
            "{a:?}"
        );
        assert_eq!(a, bootstrap_mean(&values, 2000, 0.95, 3).unwrap());
        assert!(bootstrap_mean(&[], 10, 0.95, 0).is_none());
    }
}
