//! Held-out evaluation of a reward model: loss, pair accuracy overall and per judge rating
//! (the paper's Table 3), and the spread of chosen and rejected rewards.

use crate::objective::{PairBatch, bradley_terry, pair_rewards};
use burn::module::Module;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use xwin_data::Rating;
use xwin_model::{LlamaForReward, ModelError};

/// Accuracy on the pairs of one rating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub pairs: usize,
    pub correct: usize,
}

impl Bucket {
    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.pairs.max(1) as f64
    }
}

/// Mean and standard deviation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    pub mean: f64,
    pub std: f64,
}

fn spread(values: &[f64]) -> Spread {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    Spread {
        mean,
        std: var.sqrt(),
    }
}

/// What [`evaluate`] measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Mean loss per pair (without margins, so runs with and without them compare).
    pub loss: f64,
    pub all: Bucket,
    /// By rating name (`significantly` … `negligibly`, `unrated`).
    pub by_rating: BTreeMap<String, Bucket>,
    pub chosen: Spread,
    pub rejected: Spread,
}

impl EvalReport {
    /// Named metrics for `metrics.jsonl`: loss aside, overall and per-rating accuracy.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let mut out = vec![("accuracy".to_string(), self.all.accuracy())];
        for (name, bucket) in &self.by_rating {
            out.push((format!("accuracy_{name}"), bucket.accuracy()));
        }
        out.push(("reward_chosen".into(), self.chosen.mean));
        out.push(("reward_rejected".into(), self.rejected.mean));
        out
    }

    /// The paper's Table 3 for this model, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::from("| rating | pairs | accuracy |\n|---|---:|---:|\n");
        let names = Rating::ALL.iter().map(|r| r.as_str()).chain(["unrated"]);
        for name in names {
            if let Some(b) = self.by_rating.get(name) {
                out.push_str(&format!(
                    "| {name} | {} | {:.1} % |\n",
                    b.pairs,
                    100.0 * b.accuracy()
                ));
            }
        }
        out.push_str(&format!(
            "| all | {} | {:.1} % |\n\nrewards: chosen {:.3} ± {:.3}, rejected {:.3} ± {:.3}; loss {:.4}\n",
            self.all.pairs,
            100.0 * self.all.accuracy(),
            self.chosen.mean,
            self.chosen.std,
            self.rejected.mean,
            self.rejected.std,
            self.loss
        ));
        out
    }
}

/// Evaluates `model` on `batches` without building a graph.
pub fn evaluate(
    model: &LlamaForReward,
    batches: &[PairBatch],
    center: f64,
    device: &Device,
) -> Result<EvalReport, ModelError> {
    let frozen = model.valid();
    let device = device.clone().inner();
    let mut report = EvalReport::default();
    let (mut chosen, mut rejected) = (Vec::new(), Vec::new());
    let mut loss = 0.0;
    for batch in batches {
        let (w, l) = pair_rewards(&frozen, batch, &device)?;
        let zeros = vec![0.0; batch.pairs()];
        let (sum, _) = bradley_terry(w.clone(), l.clone(), &zeros, center);
        loss += f64::from(sum.into_scalar::<f32>());
        let w = w.try_into_vec_as::<f32>()?;
        let l = l.try_into_vec_as::<f32>()?;
        for ((w, l), rating) in w.iter().zip(&l).zip(&batch.ratings) {
            let right = usize::from(w > l);
            let name = rating.map_or("unrated", |r| r.as_str()).to_string();
            let bucket = report.by_rating.entry(name).or_default();
            bucket.pairs += 1;
            bucket.correct += right;
            report.all.pairs += 1;
            report.all.correct += right;
            chosen.push(f64::from(*w));
            rejected.push(f64::from(*l));
        }
    }
    report.loss = loss / report.all.pairs.max(1) as f64;
    report.chosen = spread(&chosen);
    report.rejected = spread(&rejected);
    Ok(report)
}
