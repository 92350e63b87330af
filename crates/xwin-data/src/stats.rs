//! Dataset statistics in the shape of the paper's Table 1 (conversations) and Table 2 (pairs).

use crate::conversation::{Conversation, Role};
use crate::error::Result;
use crate::records::{Rating, XwinPair};
use crate::template::TextEncoder;
use serde::Serialize;
use std::collections::BTreeMap;

/// Running mean without holding the values.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Mean {
    pub count: usize,
    pub mean: f64,
}

impl Mean {
    pub fn add(&mut self, x: f64) {
        self.count += 1;
        self.mean += (x - self.mean) / self.count as f64;
    }
}

/// Table 1: conversations, rounds per conversation, tokens per conversation/prompt/response.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ConversationStats {
    pub conversations: usize,
    /// Human/assistant exchanges per conversation.
    pub turns_per_conversation: Mean,
    pub tokens_per_conversation: Mean,
    pub tokens_per_prompt: Mean,
    pub tokens_per_response: Mean,
}

impl ConversationStats {
    /// Adds one conversation; token counts use `encoder` on the raw turn texts.
    pub fn add(&mut self, conversation: &Conversation, encoder: &dyn TextEncoder) -> Result<()> {
        self.conversations += 1;
        let rounds = conversation
            .turns
            .iter()
            .filter(|t| t.from == Role::Human)
            .count();
        self.turns_per_conversation.add(rounds as f64);
        let mut total = 0usize;
        for turn in &conversation.turns {
            let n = encoder.encode_with_offsets(&turn.value)?.0.len();
            total += n;
            match turn.from {
                Role::Human => self.tokens_per_prompt.add(n as f64),
                Role::Gpt => self.tokens_per_response.add(n as f64),
                Role::System => {}
            }
        }
        self.tokens_per_conversation.add(total as f64);
        Ok(())
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let rows = [
            ("conversations", self.conversations as f64, 0),
            ("turns / conversation", self.turns_per_conversation.mean, 2),
            (
                "tokens / conversation",
                self.tokens_per_conversation.mean,
                1,
            ),
            ("tokens / prompt", self.tokens_per_prompt.mean, 1),
            ("tokens / response", self.tokens_per_response.mean, 1),
        ];
        let mut out = String::from("| statistic | value |\n|---|---:|\n");
        for (name, value, digits) in rows {
            out.push_str(&format!("| {name} | {value:.digits$} |\n"));
        }
        out
    }
}

/// Table 2: pairs per rating.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PairStats {
    pub pairs: usize,
    pub per_rating: BTreeMap<String, usize>,
}

impl PairStats {
    pub fn add(&mut self, pair: &XwinPair) {
        self.pairs += 1;
        *self
            .per_rating
            .entry(pair.rating.map_or("unrated", Rating::as_str).to_string())
            .or_default() += 1;
    }

    pub fn table(&self) -> String {
        let mut out = String::from("| rating | pairs | share |\n|---|---:|---:|\n");
        for rating in Rating::ALL {
            let n = self.per_rating.get(rating.as_str()).copied().unwrap_or(0);
            let share = if self.pairs == 0 {
                0.0
            } else {
                100.0 * n as f64 / self.pairs as f64
            };
            out.push_str(&format!("| {} | {n} | {share:.1} % |\n", rating.as_str()));
        }
        out.push_str(&format!("| total | {} | 100 % |\n", self.pairs));
        out
    }
}
