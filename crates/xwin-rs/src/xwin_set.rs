//! Xwin-Set statistics the paper plots (Fig. 5/7: mean RM score by rank across prompts) and
//! the selection of one response per prompt at a rank, optionally among the first `n`
//! samples only (the N ablation).

use crate::RsError;
use serde::Serialize;
use std::path::Path;
use xwin_data::{ReadOptions, ScoredResponse, XwinSet, for_each_record};

/// Score statistics over an Xwin-Set file.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RankStats {
    pub prompts: usize,
    pub responses: usize,
    /// Mean score over every response (with one sample per prompt: best-of-1).
    pub mean: f64,
    /// `mean_by_rank[r - 1]`: mean score of the rank-`r` response over prompts that have one.
    pub mean_by_rank: Vec<f64>,
    /// Prompts contributing to each rank's mean.
    pub count_by_rank: Vec<usize>,
    /// Mean over prompts of (best − worst score).
    pub mean_spread: f64,
    /// Mean over prompts of the standard deviation of its scores.
    pub mean_std: f64,
}

impl RankStats {
    /// Adds one prompt's responses, best first.
    pub(crate) fn add(&mut self, responses: &[ScoredResponse]) {
        if responses.is_empty() {
            return;
        }
        self.prompts += 1;
        let scores: Vec<f64> = responses.iter().map(|r| f64::from(r.score)).collect();
        for s in &scores {
            self.responses += 1;
            self.mean += (s - self.mean) / self.responses as f64;
        }
        if self.mean_by_rank.len() < scores.len() {
            self.mean_by_rank.resize(scores.len(), 0.0);
            self.count_by_rank.resize(scores.len(), 0);
        }
        for (r, s) in scores.iter().enumerate() {
            // Running mean: exact enough and no second pass over a large file.
            self.count_by_rank[r] += 1;
            self.mean_by_rank[r] += (s - self.mean_by_rank[r]) / self.count_by_rank[r] as f64;
        }
        let (max, min) = (scores[0], scores[scores.len() - 1]);
        let mean = scores.iter().sum::<f64>() / scores.len() as f64;
        let var = scores.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / scores.len() as f64;
        let k = self.prompts as f64;
        self.mean_spread += (max - min - self.mean_spread) / k;
        self.mean_std += (var.sqrt() - self.mean_std) / k;
    }

    /// A Markdown table: rank, mean score, prompts (every rank up to 8, then every 8th).
    pub fn table(&self) -> String {
        let mut out = String::from("| rank | mean RM score | prompts |\n|---:|---:|---:|\n");
        for (i, (m, c)) in self
            .mean_by_rank
            .iter()
            .zip(&self.count_by_rank)
            .enumerate()
        {
            let r = i + 1;
            if r <= 8 || r % 8 == 0 || r == self.mean_by_rank.len() {
                out.push_str(&format!("| {r} | {m:.4} | {c} |\n"));
            }
        }
        out.push_str(&format!(
            "\n{} prompts, {} responses, mean score {:.4}; per prompt: mean spread \
             (best − worst) {:.4}, mean std {:.4}\n",
            self.prompts, self.responses, self.mean, self.mean_spread, self.mean_std
        ));
        out
    }
}

/// The responses a run considers: the first `n` samples (by `index`; all when `None`),
/// best first.
pub fn considered(set: &XwinSet, n: Option<usize>) -> Result<Vec<ScoredResponse>, RsError> {
    let mut responses: Vec<ScoredResponse> = match n {
        None => set.responses.clone(),
        Some(n) => {
            let mut kept = Vec::with_capacity(n);
            for r in &set.responses {
                let index = r.index.ok_or_else(|| RsError::Prompt {
                    id: set.id.clone(),
                    message: "select.n needs each response's sample `index` (re-score the \
                              samples with this version)"
                        .into(),
                })?;
                if index < n {
                    kept.push(r.clone());
                }
            }
            kept
        }
    };
    responses.sort_by(|a, b| b.score.total_cmp(&a.score));
    for (i, r) in responses.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    Ok(responses)
}

/// Rank statistics of every prompt of an Xwin-Set file (first `n` samples each).
pub fn rank_stats(path: &Path, n: Option<usize>) -> Result<RankStats, RsError> {
    let mut stats = RankStats::default();
    let mut failure = None;
    for_each_record(
        path,
        ReadOptions::default(),
        |set: XwinSet| match considered(&set, n) {
            Ok(responses) => stats.add(&responses),
            Err(e) => {
                failure.get_or_insert(e);
            }
        },
    )?;
    match failure {
        Some(e) => Err(e),
        None => Ok(stats),
    }
}

/// Rank statistics of Xwin-Set records already in memory (first `n` samples each).
pub fn rank_stats_of(sets: &[XwinSet], n: Option<usize>) -> Result<RankStats, RsError> {
    let mut stats = RankStats::default();
    for set in sets {
        stats.add(&considered(set, n)?);
    }
    Ok(stats)
}

#[cfg(test)]
mod checks {
    use super::*;

    fn scored(scores: &[f32]) -> XwinSet {
        XwinSet {
            id: "p".into(),
            prompt: xwin_data::Conversation::new(vec![xwin_data::Turn::human("q")]),
            reward_model: "rm".into(),
            responses: scores
                .iter()
                .enumerate()
                .map(|(i, &score)| ScoredResponse {
                    text: format!("r{i}"),
                    score,
                    rank: 0,
                    index: Some(i),
                })
                .collect(),
        }
    }

    #[test]
    fn first_n_are_re_ranked_and_stats_average_by_rank() {
        let set = scored(&[0.5, 2.0, -1.0, 3.0]);
        let top2: Vec<String> = considered(&set, Some(2))
            .unwrap()
            .into_iter()
            .map(|r| r.text)
            .collect();
        assert_eq!(top2, ["r1", "r0"]);
        assert_eq!(considered(&set, None).unwrap()[0].text, "r3");
        let mut stats = RankStats::default();
        stats.add(&considered(&set, None).unwrap());
        stats.add(&considered(&scored(&[1.0, 0.0]), None).unwrap());
        assert_eq!(stats.count_by_rank, [2, 2, 1, 1]);
        assert_eq!(stats.mean_by_rank, [2.0, 1.0, 0.5, -1.0]);
        assert!((stats.mean_spread - (4.0 + 1.0) / 2.0).abs() < 1e-12);
        assert!((stats.mean - (0.5 + 2.0 - 1.0 + 3.0 + 1.0) / 6.0).abs() < 1e-12);
    }
}
