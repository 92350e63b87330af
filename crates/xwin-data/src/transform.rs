//! The paper's data transforms: blocks of at most `max_len` tokens cut at round boundaries,
//! unfolding multi-turn conversations into one instance per reply, and a deterministic
//! train/validation split.

use crate::conversation::{Conversation, Role};
use crate::error::{DataError, Result};
use crate::template::TokenizedConversation;

/// The paper's block length for SFT and RS.
pub const DEFAULT_BLOCK_LEN: usize = 4096;

/// Blocks cut from one tokenized conversation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Blocks {
    pub blocks: Vec<TokenizedConversation>,
    /// Rounds longer than a block on their own, cut to fit.
    pub truncated_rounds: usize,
    /// Trainable tokens lost to that cutting.
    pub truncated_trainable_tokens: usize,
}

/// Splits into blocks of at most `max_len` tokens. Each block is the prefix (BOS and system
/// prompt) followed by whole consecutive rounds; a round that cannot fit even alone is cut.
pub fn split_into_blocks(conv: &TokenizedConversation, max_len: usize) -> Result<Blocks> {
    let prefix_len = conv.round_starts.first().copied().unwrap_or(conv.ids.len());
    if prefix_len >= max_len {
        return Err(DataError::Invalid(format!(
            "the prompt prefix alone has {prefix_len} tokens, max_len is {max_len}"
        )));
    }
    let budget = max_len - prefix_len;
    let mut out = Blocks::default();
    let mut current: Vec<std::ops::Range<usize>> = Vec::new();
    let mut used = 0;
    let flush = |rounds: &mut Vec<std::ops::Range<usize>>, out: &mut Blocks| {
        if rounds.is_empty() {
            return;
        }
        let mut block = TokenizedConversation {
            ids: conv.ids[..prefix_len].to_vec(),
            mask: conv.mask[..prefix_len].to_vec(),
            round_starts: Vec::with_capacity(rounds.len()),
        };
        for r in rounds.drain(..) {
            block.round_starts.push(block.ids.len());
            block.ids.extend_from_slice(&conv.ids[r.clone()]);
            block.mask.extend_from_slice(&conv.mask[r]);
        }
        out.blocks.push(block);
    };
    for i in 0..conv.round_starts.len() {
        let mut round = conv.round(i);
        if round.len() > budget {
            // Too long for any block: it gets a block of its own, cut to fit.
            flush(&mut current, &mut out);
            used = 0;
            let cut = round.start + budget;
            out.truncated_rounds += 1;
            out.truncated_trainable_tokens +=
                conv.mask[cut..round.end].iter().filter(|m| **m).count();
            round.end = cut;
            current.push(round);
            flush(&mut current, &mut out);
            continue;
        }
        if used + round.len() > budget {
            flush(&mut current, &mut out);
            used = 0;
        }
        used += round.len();
        current.push(round);
    }
    flush(&mut current, &mut out);
    Ok(out)
}

/// One instance per assistant reply: the history up to and including that reply. With
/// `first_k`, only the first `k` replies are unfolded (RS uses 3).
pub fn unfold(conversation: &Conversation, first_k: Option<usize>) -> Vec<Conversation> {
    let limit = first_k.unwrap_or(usize::MAX);
    conversation
        .turns
        .iter()
        .enumerate()
        .filter(|(_, t)| t.from == Role::Gpt)
        .take(limit)
        .enumerate()
        .map(|(n, (i, _))| Conversation {
            id: conversation.id.as_ref().map(|id| format!("{id}#{n}")),
            system: conversation.system.clone(),
            turns: conversation.turns[..=i].to_vec(),
        })
        .collect()
}

/// Drops the final assistant reply, leaving the prompt to sample new replies for.
pub fn strip_last_reply(conversation: &Conversation) -> Option<Conversation> {
    let (last, rest) = conversation.turns.split_last()?;
    (last.from == Role::Gpt && !rest.is_empty()).then(|| Conversation {
        turns: rest.to_vec(),
        ..conversation.clone()
    })
}

/// Stable 64-bit hash: FNV-1a, then the splitmix64 finalizer so that keys differing only in
/// their last bytes (`c1`, `c2`, …) still spread over the high bits.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let h = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Deterministic split: a conversation goes to validation when the hash of its id (or its
/// content, without an id) with `seed` falls below `fraction`. Independent of file order.
pub fn is_validation(conversation: &Conversation, fraction: f64, seed: u64) -> bool {
    let key = match &conversation.id {
        Some(id) => id.clone(),
        None => serde_json::to_string(&conversation.turns).unwrap_or_default(),
    };
    let h = stable_hash(&[seed.to_le_bytes().as_slice(), key.as_bytes()].concat());
    (h as f64 / u64::MAX as f64) < fraction
}
