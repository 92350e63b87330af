//! The artifacts the stages exchange. Each has a JSON Schema in `data-schemas/`.

use crate::conversation::Conversation;
use serde::{Deserialize, Serialize};

/// Settings a response was sampled with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSettings {
    pub temperature: f32,
    pub top_p: f32,
    #[serde(default)]
    pub top_k: usize,
    pub max_new_tokens: usize,
    pub seed: u64,
}

/// One sampled reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampledResponse {
    pub text: String,
    pub sampling: SamplingSettings,
    /// Whether generation ended at EOS (false: cut at max_new_tokens).
    pub finished: bool,
}

/// A prompt with `n` sampled replies (step 2a and step 3 sampling).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseSamples {
    pub id: String,
    /// History ending with the human turn to answer.
    pub prompt: Conversation,
    pub model: String,
    pub responses: Vec<SampledResponse>,
}

/// Which response won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Winner {
    A,
    B,
}

/// The paper's four-level preference strength.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Significantly,
    Better,
    Slightly,
    Negligibly,
}

impl Rating {
    pub const ALL: [Rating; 4] = [
        Rating::Significantly,
        Rating::Better,
        Rating::Slightly,
        Rating::Negligibly,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Significantly => "significantly",
            Self::Better => "better",
            Self::Slightly => "slightly",
            Self::Negligibly => "negligibly",
        }
    }
}

/// Who judged, and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JudgeMeta {
    pub model: String,
    pub template: String,
    pub temperature: f32,
    /// Hash of (inputs, judge config) that keys resumable output.
    pub key: String,
}

/// One annotated pair (Xwin-Pair).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XwinPair {
    pub id: String,
    pub prompt: Conversation,
    pub response_a: String,
    pub response_b: String,
    pub winner: Winner,
    /// By how much (the Xwin judge's four levels); `null` when the judge's format states
    /// no margin (MT-bench pair, AlpacaEval ranking).
    pub rating: Option<Rating>,
    pub reason: String,
    pub judge: JudgeMeta,
    /// Order shown to the judge: `["a","b"]` or `["b","a"]`.
    pub shown_order: [Winner; 2],
}

impl XwinPair {
    pub fn chosen(&self) -> &str {
        match self.winner {
            Winner::A => &self.response_a,
            Winner::B => &self.response_b,
        }
    }
    pub fn rejected(&self) -> &str {
        match self.winner {
            Winner::A => &self.response_b,
            Winner::B => &self.response_a,
        }
    }
}

/// A reply with its reward-model score and rank (1 = best).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoredResponse {
    pub text: String,
    pub score: f32,
    pub rank: usize,
    /// Position among the prompt's samples as drawn (sample `k` of `ResponseSamples`), so
    /// that an ablation can keep the first `n` of N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

/// A prompt with N scored replies (Xwin-Set).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XwinSet {
    pub id: String,
    pub prompt: Conversation,
    pub reward_model: String,
    pub responses: Vec<ScoredResponse>,
}

impl XwinSet {
    /// Sorts by score (best first) and assigns ranks 1..=N.
    pub fn rank(&mut self) {
        self.responses.sort_by(|a, b| b.score.total_cmp(&a.score));
        for (i, r) in self.responses.iter_mut().enumerate() {
            r.rank = i + 1;
        }
    }
}

/// One evaluated output (AlpacaEval pairwise or MT-bench single grading).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRecord {
    pub id: String,
    pub benchmark: String,
    pub model: String,
    pub instruction: String,
    pub output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_output: Option<String>,
    /// AlpacaEval convention: 1 = reference better, 2 = model better, 1.5 = tie.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preference: Option<f64>,
    /// MT-bench 1–10 grade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<usize>,
    pub judge: JudgeMeta,
    pub judgment: String,
}
