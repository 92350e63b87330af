//! What to sample: how many responses per prompt and how each is drawn, and the record a
//! prompt's responses are written as.

use crate::RsError;
use serde::{Deserialize, Serialize};
use xwin_data::{Conversation, ResponseSamples, SampledResponse, SamplingSettings};
use xwin_model::SamplingConfig;

/// Best-of-N (`n` samples at `temperature`, step 3) or a pair (step 2a: one sample at each
/// of `pair_temperatures`, the paper's 0.7 and 0.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    #[serde(default = "one")]
    pub n: usize,
    #[serde(default = "one_f")]
    pub temperature: f32,
    #[serde(default = "one_f")]
    pub top_p: f32,
    #[serde(default)]
    pub top_k: usize,
    pub max_new_tokens: usize,
    #[serde(default)]
    pub seed: u64,
    /// Step 2a: two samples, at these temperatures, written as a pair for the judge.
    #[serde(default)]
    pub pair_temperatures: Option<[f32; 2]>,
}

fn one() -> usize {
    1
}
fn one_f() -> f32 {
    1.0
}

impl SampleSpec {
    /// The paper's step 2a: two samples at 0.7 and 0.3.
    pub fn pairs(max_new_tokens: usize, seed: u64) -> Self {
        Self {
            n: 2,
            temperature: 0.7,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens,
            seed,
            pair_temperatures: Some([0.7, 0.3]),
        }
    }

    /// One sample per prompt (evaluation, probes) at `temperature` (0: greedy), no top-k.
    pub fn single(temperature: f32, top_p: f32, max_new_tokens: usize, seed: u64) -> Self {
        Self {
            n: 1,
            temperature,
            top_p,
            top_k: 0,
            max_new_tokens,
            seed,
            pair_temperatures: None,
        }
    }

    /// Samples per prompt.
    pub fn count(&self) -> usize {
        if self.pair_temperatures.is_some() {
            2
        } else {
            self.n
        }
    }

    pub fn check(&self) -> Result<(), RsError> {
        let bad = |m: String| Err(RsError::Setup(m));
        if self.count() == 0 {
            return bad("n must be at least 1 (samples per prompt)".into());
        }
        if self.max_new_tokens == 0 {
            return bad("max_new_tokens must be at least 1".into());
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p {} must be in (0, 1]", self.top_p));
        }
        let temps = self.pair_temperatures.unwrap_or([self.temperature; 2]);
        if temps.iter().any(|t| !t.is_finite() || *t < 0.0) {
            return bad(format!("temperatures {temps:?} must be finite and ≥ 0"));
        }
        Ok(())
    }

    /// How sample `k` is drawn, as recorded with it.
    pub fn settings(&self, k: usize) -> SamplingSettings {
        SamplingSettings {
            temperature: self
                .pair_temperatures
                .map_or(self.temperature, |t| t[k.min(1)]),
            top_p: self.top_p,
            top_k: self.top_k,
            max_new_tokens: self.max_new_tokens,
            seed: self.seed,
        }
    }

    /// The sampler's settings of sample `k`.
    pub fn sampling(&self, k: usize) -> SamplingConfig {
        let s = self.settings(k);
        SamplingConfig {
            temperature: s.temperature,
            top_p: s.top_p,
            top_k: s.top_k,
        }
    }
}

/// A sampled pair for the judge: what `xwin-annotate` reads (`prompt`, `response_a`,
/// `response_b`), with every sample's settings kept in `responses`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampledPair {
    pub id: String,
    pub prompt: Conversation,
    pub model: String,
    pub response_a: String,
    pub response_b: String,
    pub responses: Vec<SampledResponse>,
}

/// The output line of one prompt: `ResponseSamples`, or a [`SampledPair`] in pair mode.
pub fn record(
    spec: &SampleSpec,
    id: &str,
    prompt: &Conversation,
    model: &str,
    responses: Vec<SampledResponse>,
) -> serde_json::Value {
    let value = if spec.pair_temperatures.is_some() && responses.len() == 2 {
        serde_json::to_value(SampledPair {
            id: id.to_string(),
            prompt: prompt.clone(),
            model: model.to_string(),
            response_a: responses[0].text.clone(),
            response_b: responses[1].text.clone(),
            responses,
        })
    } else {
        serde_json::to_value(ResponseSamples {
            id: id.to_string(),
            prompt: prompt.clone(),
            model: model.to_string(),
            responses,
        })
    };
    value.unwrap_or_default()
}
