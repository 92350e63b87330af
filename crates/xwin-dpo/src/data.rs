//! DPO pairs: (top-1, rank r) of each Xwin-Set prompt, or preference pairs (Xwin-Pair, TRL,
//! HH-RLHF) read by `xwin-rm`'s readers; rendered with the chat template, the response's
//! tokens (reply and `</s>`) marked as the part whose log-probability counts.

use crate::DpoError;
use crate::objective::DpoBatch;
use std::path::Path;
use xwin_data::{
    ChatTemplate, PadSide, Padding, ReadOptions, TextEncoder, TokenizedConversation, TrainOn, Turn,
    XwinSet, for_each_record, length_buckets, pad_batch_to, stable_hash, tokenize,
};
use xwin_rm::TextPair;

/// Pairs of an Xwin-Set: the best response against the one at `rejected_rank` (1-based,
/// ranked by score). A prompt with fewer responses is an error naming it.
pub fn xwin_set_pairs(
    path: &Path,
    rejected_rank: usize,
    read: ReadOptions,
) -> Result<Vec<TextPair>, DpoError> {
    if rejected_rank < 2 {
        return Err(DpoError::Setup(format!(
            "the rejected rank must be at least 2 (rank 1 is the chosen response), got {rejected_rank}"
        )));
    }
    let mut out = Vec::new();
    let mut failure = None;
    let mut line = 0;
    for_each_record(path, read, |mut set: XwinSet| {
        line += 1;
        if failure.is_some() {
            return;
        }
        set.rank();
        let origin = format!("{}: record {line}", path.display());
        match set.responses.get(rejected_rank - 1) {
            Some(rejected) => out.push(TextPair {
                chosen: set.responses[0].text.clone(),
                rejected: rejected.text.clone(),
                id: set.id,
                prompt: set.prompt,
                origin,
                rating: None,
            }),
            None => {
                failure = Some(DpoError::Pair {
                    origin,
                    id: set.id,
                    message: format!(
                        "rank {rejected_rank} asked for, the prompt has {} responses",
                        set.responses.len()
                    ),
                })
            }
        }
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// One pair in tokens, each side `prompt + response + </s>` with the response marked.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenPair {
    pub id: String,
    pub chosen: TokenizedConversation,
    pub rejected: TokenizedConversation,
}

impl TokenPair {
    /// Identity of the tokens, so that a reference log-probability computed for other
    /// tokens under the same id is not reused.
    pub fn key(&self) -> String {
        let bytes: Vec<u8> = [&self.chosen, &self.rejected]
            .iter()
            .flat_map(|side| {
                side.ids
                    .iter()
                    .zip(&side.mask)
                    .flat_map(|(i, m)| i.to_le_bytes().into_iter().chain([u8::from(*m)]))
                    .chain([0xff; 4])
            })
            .collect();
        format!("{}#{:016x}", self.id, stable_hash(&bytes))
    }
}

/// What tokenization left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    /// Identical or empty sides (with `skip_bad`; otherwise an error).
    pub bad: usize,
    /// A side longer than `max_len` tokens.
    pub too_long: usize,
}

/// Tokenizes pairs. A pair whose chosen and rejected responses are the same text, or with an
/// empty side, is an error naming it (`skip_bad`: dropped and counted); longer than
/// `max_len`: dropped and counted.
pub fn tokenize_pairs(
    pairs: &[TextPair],
    template: ChatTemplate,
    encoder: &dyn TextEncoder,
    max_len: usize,
    skip_bad: bool,
) -> Result<(Vec<TokenPair>, Dropped), DpoError> {
    let mut out = Vec::with_capacity(pairs.len());
    let mut dropped = Dropped::default();
    for pair in pairs {
        let problem = if pair.chosen == pair.rejected {
            Some("chosen and rejected are the same text: nothing to prefer")
        } else if pair.chosen.trim().is_empty() || pair.rejected.trim().is_empty() {
            Some("a response is empty")
        } else {
            None
        };
        if let Some(message) = problem {
            if skip_bad {
                dropped.bad += 1;
                continue;
            }
            return Err(DpoError::Pair {
                origin: pair.origin.clone(),
                id: pair.id.clone(),
                message: format!("{message} (data.skip_bad drops such pairs)"),
            });
        }
        let side = |response: &str| {
            let mut conversation = pair.prompt.clone();
            conversation.turns.push(Turn::gpt(response));
            tokenize(template, &conversation, encoder, TrainOn::LastAssistant)
        };
        let (chosen, rejected) = (side(&pair.chosen)?, side(&pair.rejected)?);
        if chosen.len() > max_len || rejected.len() > max_len {
            dropped.too_long += 1;
            continue;
        }
        out.push(TokenPair {
            id: pair.id.clone(),
            chosen,
            rejected,
        });
    }
    Ok((out, dropped))
}

/// Right-padded micro-batches of up to `pairs_per_batch` pairs of similar length, each with
/// its reference log-probabilities; a pair without them is an error naming it.
pub fn dpo_batches(
    pairs: &[TokenPair],
    reference: &crate::ReferenceByKey,
    pairs_per_batch: usize,
    max_batch_tokens: usize,
    padding: Padding,
    seed: u64,
) -> Result<Vec<DpoBatch>, DpoError> {
    let lengths: Vec<usize> = pairs
        .iter()
        .map(|p| p.chosen.len().max(p.rejected.len()))
        .collect();
    length_buckets(&lengths, pairs_per_batch, max_batch_tokens / 2, seed)
        .into_iter()
        .map(|members| {
            let sides: Vec<&TokenizedConversation> = members
                .iter()
                .map(|&i| &pairs[i].chosen)
                .chain(members.iter().map(|&i| &pairs[i].rejected))
                .collect();
            let reference = members
                .iter()
                .map(|&i| {
                    reference
                        .get(&pairs[i].key())
                        .copied()
                        .ok_or_else(|| DpoError::Pair {
                            origin: "reference log-probabilities".into(),
                            id: pairs[i].id.clone(),
                            message: "missing from the reference artifact".into(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let padded = pad_batch_to(&sides, padding, PadSide::Right);
            Ok(DpoBatch {
                ids: padded.ids,
                attention: padded.attention,
                mask: padded.loss_mask,
                reference,
            })
        })
        .collect()
}

/// Splits pairs by prompt (all pairs of a prompt on one side), as the RM stage does.
pub fn split(pairs: Vec<TextPair>, fraction: f64, seed: u64) -> (Vec<TextPair>, Vec<TextPair>) {
    xwin_rm::data::split(pairs, fraction, seed)
}
