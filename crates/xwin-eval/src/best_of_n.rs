//! Best-of-n (paper Fig. 3, 4, 8): from one set of N scored samples per prompt, the reward
//! model's top among the first n samples for n = 1, 2, 4, …, N, so every point of the curve
//! reuses the same samples; each point carries the mean RM score of its picks (with a
//! bootstrap interval) and the picks themselves, to be judged like any outputs.

use crate::EvalError;
use crate::bootstrap::{Interval, bootstrap_mean};
use serde::Serialize;
use xwin_data::XwinSet;

/// One point of the curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BestOfN {
    pub n: usize,
    pub mean_score: f64,
    pub interval: Option<Interval>,
    /// Per prompt (in input order): its id and the picked response's text and score.
    #[serde(skip)]
    pub picks: Vec<(String, String, f32)>,
}

/// 1, 2, 4, … up to `n` (and `n` itself when it is not a power of two).
pub fn curve_points(n: usize) -> Vec<usize> {
    let mut out: Vec<usize> = std::iter::successors(Some(1usize), |k| k.checked_mul(2))
        .take_while(|k| *k <= n)
        .collect();
    if out.last() != Some(&n) && n > 0 {
        out.push(n);
    }
    out
}

/// The best-of-n picks for each `n` in `ns`: among each prompt's samples with `index < n`
/// (the order they were drawn in), the highest score (the first drawn on ties). A prompt
/// with fewer than `n` samples, or samples without an index, is an error naming it.
pub fn best_of_n(sets: &[XwinSet], ns: &[usize]) -> Result<Vec<BestOfN>, EvalError> {
    ns.iter()
        .map(|&n| {
            let mut picks = Vec::with_capacity(sets.len());
            for set in sets {
                let err = |message: String| EvalError::Input {
                    path: format!("Xwin-Set prompt {}", set.id),
                    message,
                };
                let mut best: Option<(usize, &xwin_data::ScoredResponse)> = None;
                let mut seen = 0;
                for r in &set.responses {
                    let index = r.index.ok_or_else(|| {
                        err("a response has no sample `index` (score the samples again)".into())
                    })?;
                    if index >= n {
                        continue;
                    }
                    seen += 1;
                    let better = best.is_none_or(|(i, b)| {
                        r.score > b.score || (r.score == b.score && index < i)
                    });
                    if better {
                        best = Some((index, r));
                    }
                }
                if seen < n {
                    return Err(err(format!(
                        "best-of-{n} asked for, {seen} samples with index < {n}"
                    )));
                }
                let (_, r) = best.ok_or_else(|| err("no samples".into()))?;
                picks.push((set.id.clone(), r.text.clone(), r.score));
            }
            let scores: Vec<f64> = picks.iter().map(|p| f64::from(p.2)).collect();
            Ok(BestOfN {
                n,
                mean_score: scores.iter().sum::<f64>() / scores.len().max(1) as f64,
                interval: bootstrap_mean(&scores, 2000, 0.95, 0),
                picks,
            })
        })
        .collect()
}

#[cfg(test)]
mod checks {
    use super::*;
    use xwin_data::{Conversation, ScoredResponse, Turn};

    fn set(id: &str, scores: &[f32]) -> XwinSet {
        let mut s = XwinSet {
            id: id.into(),
            prompt: Conversation::new(vec![Turn::human("q")]),
            reward_model: "rm".into(),
            responses: scores
                .iter()
                .enumerate()
                .map(|(i, &score)| ScoredResponse {
                    text: format!("s{i}"),
                    score,
                    rank: 0,
                    index: Some(i),
                })
                .collect(),
        };
        s.rank();
        s
    }

    #[test]
    fn picks_the_best_of_the_first_n_and_the_curve_rises() {
        let sets = [
            set("a", &[0.1, 0.5, 0.2, 0.9]),
            set("b", &[1.0, -1.0, 1.0, 0.0]),
        ];
        let curve = best_of_n(&sets, &curve_points(4)).unwrap();
        assert_eq!(curve.iter().map(|p| p.n).collect::<Vec<_>>(), [1, 2, 4]);
        let picks = |k: usize| {
            curve[k]
                .picks
                .iter()
                .map(|p| p.1.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(0), ["s0", "s0"]);
        assert_eq!(picks(1), ["s1", "s0"]);
        assert_eq!(picks(2), ["s3", "s0"], "ties go to the first drawn");
        assert!(curve.windows(2).all(|w| w[0].mean_score <= w[1].mean_score));
        assert_eq!(curve_points(6), [1, 2, 4, 6]);
        let err = best_of_n(&sets, &[8]).unwrap_err().to_string();
        assert!(
            err.contains("prompt a") && err.contains("best-of-8"),
            "{err}"
        );
    }
}
