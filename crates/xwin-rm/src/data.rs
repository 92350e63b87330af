//! Preference pairs for the reward model: read from Xwin-Pair JSONL (with the judge's
//! rating) or from TRL / HH-RLHF preference files, rendered with the chat template exactly
//! as the policy was trained (each response closed by EOS), tokenized, split.

use crate::RmError;
use std::path::Path;
use xwin_data::{
    ChatTemplate, Conversation, PreferencePair, Rating, ReadOptions, TextEncoder, TrainOn, Turn,
    XwinPair, for_each_preference_pair, for_each_record, is_validation, tokenize,
};

/// One pair in text.
#[derive(Debug, Clone, PartialEq)]
pub struct TextPair {
    pub id: String,
    /// Where it was read: `FILE: record N`.
    pub origin: String,
    pub prompt: Conversation,
    pub chosen: String,
    pub rejected: String,
    /// The judge's margin; `None` for sources without one.
    pub rating: Option<Rating>,
}

/// One pair in tokens: prompt + response + EOS, for each side.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPair {
    pub chosen: Vec<u32>,
    pub rejected: Vec<u32>,
    pub rating: Option<Rating>,
}

/// Where a pairs file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairFormat {
    /// Xwin-Pair JSONL from `xwin-annotate` (winner and rating).
    XwinPair,
    /// `{prompt|conversations, chosen, rejected}` (TRL style) or HH-RLHF transcripts.
    Preference,
}

/// Reads every pair of `path`. A record that does not parse stops with file, line and field
/// (or is skipped and counted with `skip_bad`).
pub fn read_pairs(
    path: &Path,
    format: PairFormat,
    options: ReadOptions,
) -> Result<(Vec<TextPair>, usize), RmError> {
    let mut out = Vec::new();
    let origin = |n: usize| format!("{}: record {}", path.display(), n + 1);
    let report = match format {
        PairFormat::XwinPair => for_each_record(path, options, |p: XwinPair| {
            out.push(TextPair {
                origin: origin(out.len()),
                chosen: p.chosen().to_string(),
                rejected: p.rejected().to_string(),
                id: p.id,
                prompt: p.prompt,
                rating: p.rating,
            });
        })?,
        PairFormat::Preference => for_each_preference_pair(path, options, |p: PreferencePair| {
            out.push(TextPair {
                origin: origin(out.len()),
                id: p.id.unwrap_or_else(|| format!("pair-{}", out.len() + 1)),
                prompt: p.prompt,
                chosen: p.chosen,
                rejected: p.rejected,
                rating: None,
            });
        })?,
    };
    Ok((out, report.skipped))
}

/// Counts of what [`tokenize_pairs`] left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// A side is empty (only with `skip_bad`; otherwise an error).
    pub empty: usize,
    /// Chosen and rejected are the same text: nothing to learn.
    pub identical: usize,
    /// A side longer than `max_len` tokens (dropped, not truncated: a cut response would
    /// teach the model to score truncation).
    pub too_long: usize,
}

/// Tokenizes pairs as prompt + response + EOS. An empty response is an error naming the
/// file, record and pair (with `skip_bad`, dropped and counted); identical sides and
/// over-long pairs are dropped and counted.
pub fn tokenize_pairs(
    pairs: &[TextPair],
    template: ChatTemplate,
    encoder: &dyn TextEncoder,
    eos: u32,
    max_len: usize,
    skip_bad: bool,
) -> Result<(Vec<TokenPair>, Dropped), RmError> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut dropped = Dropped::default();
    'pairs: for pair in pairs {
        for (side, text) in [("chosen", &pair.chosen), ("rejected", &pair.rejected)] {
            if text.trim().is_empty() {
                if skip_bad {
                    dropped.empty += 1;
                    continue 'pairs;
                }
                return Err(RmError::Pair {
                    origin: pair.origin.clone(),
                    id: pair.id.clone(),
                    message: format!(
                        "the {side} response is empty (data.skip_bad drops such pairs)"
                    ),
                });
            }
        }
        if pair.chosen == pair.rejected {
            dropped.identical += 1;
            continue;
        }
        let side = |response: &str| -> Result<Vec<u32>, RmError> {
            let mut conversation = pair.prompt.clone();
            conversation.turns.push(Turn::gpt(response));
            let mut ids = tokenize(template, &conversation, encoder, TrainOn::LastAssistant)?.ids;
            // The template closes the reply with `</s>`; a tokenizer that does not map it to
            // the model's EOS id gets it appended, so the reward is read where the policy stops.
            if ids.last() != Some(&eos) {
                ids.push(eos);
            }
            Ok(ids)
        };
        let (chosen, rejected) = (side(&pair.chosen)?, side(&pair.rejected)?);
        if chosen.len() > max_len || rejected.len() > max_len {
            dropped.too_long += 1;
            continue;
        }
        out.push(TokenPair {
            chosen,
            rejected,
            rating: pair.rating,
        });
    }
    Ok((out, dropped))
}

/// Splits pairs into (train, held out): a prompt goes to the held-out side when its hash
/// with `seed` falls below `fraction`, so all pairs of one prompt stay on one side.
pub fn split(pairs: Vec<TextPair>, fraction: f64, seed: u64) -> (Vec<TextPair>, Vec<TextPair>) {
    if fraction <= 0.0 {
        return (pairs, Vec::new());
    }
    pairs
        .into_iter()
        .partition(|p| !is_validation(&p.prompt, fraction, seed))
}
