//! A length-controlled win rate in the form of alpaca_eval's GLM (`length_controlled_minimal`:
//! `preference ~ tanh(std_delta_len) + not_gamed_baseline − 1`): a logistic model of the
//! preference (in [0, 1], a continuous target) on the standardised length difference
//! `(len(output_1) − len(output_2)) / std` through `tanh`, with a per-model term; the LC win
//! rate is its prediction at zero length difference, `σ(w_model) · 100`.
//!
//! What differs from alpaca_eval's default (`length_controlled_v1`): no instruction-difficulty
//! term (its precomputed difficulties come from a Hugging Face dataset that is not here), no
//! regularisation towards its gamed baselines, and a plain maximum-likelihood fit (Newton's
//! method) instead of `LogisticRegressionCV` with an L1 penalty chosen by 5-fold CV. The
//! tests pin it to scikit-learn's unpenalised `LogisticRegression` on the same design.

use serde::Serialize;

/// The fit and the controlled win rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LengthControlled {
    /// Percent: the predicted win rate at equal lengths.
    pub length_controlled_winrate: f64,
    /// Weight of the model term (`not_gamed_baseline`).
    pub model_weight: f64,
    /// Weight of `tanh(std_delta_len)`.
    pub length_weight: f64,
    pub n: usize,
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Fits the model to `(len(output_1), len(output_2), preference)` rows (lengths in characters,
/// as pandas' `str.len`; preference in [1, 2], the legacy 0 read as a draw). As alpaca_eval,
/// the length difference is standardised over every row and rows without a preference are
/// left out of the fit. `None` with fewer than two usable rows or no length variation.
pub fn length_controlled(rows: &[(usize, usize, Option<f64>)]) -> Option<LengthControlled> {
    if rows.len() < 2 {
        return None;
    }
    let deltas: Vec<f64> = rows.iter().map(|(a, b, _)| *a as f64 - *b as f64).collect();
    let mean = deltas.iter().sum::<f64>() / deltas.len() as f64;
    let var = deltas.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (deltas.len() - 1) as f64;
    let std = var.sqrt();
    if std.is_nan() || std <= 0.0 {
        return None;
    }
    let (x, y): (Vec<f64>, Vec<f64>) = deltas
        .iter()
        .zip(rows)
        .filter_map(|(d, (_, _, p))| {
            let p = (*p)?;
            Some(((d / std).tanh(), if p == 0.0 { 0.5 } else { p - 1.0 }))
        })
        .unzip();
    let n = x.len();
    if n < 2 {
        return None;
    }
    // Newton's method on the concave log-likelihood of (w_model, w_length).
    let (mut a, mut b) = (0.0f64, 0.0f64);
    for _ in 0..100 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (xi, yi) in x.iter().zip(&y) {
            let p = sigmoid(a + b * xi);
            let w = p * (1.0 - p);
            ga += p - yi;
            gb += (p - yi) * xi;
            haa += w;
            hab += w * xi;
            hbb += w * xi * xi;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-300 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        a -= da;
        b -= db;
        if da.abs().max(db.abs()) < 1e-12 {
            break;
        }
    }
    Some(LengthControlled {
        length_controlled_winrate: sigmoid(a) * 100.0,
        model_weight: a,
        length_weight: b,
        n,
    })
}
