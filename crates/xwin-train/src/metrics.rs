//! One line of `metrics.jsonl` per optimizer step, and the trimming a resumed run does.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What one optimizer step did; one line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    pub total_steps: usize,
    /// Loss of the optimizer step: the sum over every loss item (trained token, pair) of its
    /// micro-batches divided by their number, as `transformers` ≥ 4.46 computes it with
    /// `num_items_in_batch`; comparable with the evaluation loss.
    pub loss: f32,
    /// Loss items in this step (what `loss` is averaged over).
    #[serde(default)]
    pub items: usize,
    pub lr: f64,
    /// Global gradient norm before clipping (unscaled); `null` in JSON on a skipped step.
    #[serde(deserialize_with = "nan_for_null_f64")]
    pub grad_norm: f64,
    /// f16: the loss scale this step ran with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<f64>,
    /// f16: the gradients overflowed, so the step was skipped (parameters unchanged).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// Tokens in this step's micro-batches (as the objective counts them).
    pub tokens: usize,
    pub tokens_per_s: f64,
    /// Held-out loss, on steps where evaluation ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
    /// The objective's named metrics, averaged over the step's items like the loss. JSON has
    /// no NaN: a non-finite value is written as `null` and read back as NaN.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nan_for_null"
    )]
    pub metrics: BTreeMap<String, f64>,
    /// The evaluation's named metrics, on steps where evaluation ran.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nan_for_null"
    )]
    pub eval_metrics: BTreeMap<String, f64>,
}

/// Reads a number written as `null` (serde_json's form of a non-finite value) as NaN.
fn nan_for_null_f64<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Reads a metrics map whose non-finite values were written as `null`.
fn nan_for_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// Keeps the metrics lines up to `step` (the ones a resumed run does not redo).
pub(crate) fn truncate_metrics(path: &Path, step: usize) -> Result<(), xwin_data::DataError> {
    if !path.exists() {
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| xwin_data::DataError::io(path, e))?;
    let kept: String = text
        .lines()
        .filter(|l| serde_json::from_str::<StepMetrics>(l).is_ok_and(|m| m.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    let tmp = path.with_extension("jsonl.tmp");
    std::fs::write(&tmp, kept).map_err(|e| xwin_data::DataError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| xwin_data::DataError::io(path, e))?;
    Ok(())
}
