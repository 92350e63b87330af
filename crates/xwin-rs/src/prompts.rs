//! The prompts a policy answers: unfolded conversations (each history up to a human turn).

use crate::RsError;
use std::collections::HashSet;
use std::path::Path;
use xwin_data::{
    Conversation, ReadOptions, ReadReport, Role, for_each_conversation, stable_hash,
    strip_last_reply, unfold,
};

/// One prompt: a history ending with the human turn to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Unique within a run; keys resumable output.
    pub id: String,
    pub conversation: Conversation,
}

/// What reading prompts found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PromptReport {
    pub conversations: usize,
    pub prompts: usize,
    /// Records skipped as malformed (with `skip_bad`).
    pub skipped: usize,
    /// Prompts whose id and text repeat an earlier one.
    pub duplicates: usize,
}

/// Prompts of a conversation file (ShareGPT, Alpaca, HH-RLHF, OpenAI messages). A
/// conversation ending with a human turn is one prompt as it is; otherwise it is unfolded
/// into one instance per reply (only the first `first_replies` with a limit; the paper's RS
/// uses 3) and each instance loses its last reply, which is what gets sampled anew (step 2a
/// drops the original response the same way). Ids are the conversation's id with `#k` for
/// the k-th reply, or a hash of the text without an id.
pub fn read_prompts(
    path: &Path,
    first_replies: Option<usize>,
    read: ReadOptions,
) -> Result<(Vec<Prompt>, PromptReport), RsError> {
    let mut prompts = Vec::new();
    let mut report = PromptReport::default();
    let mut seen = HashSet::new();
    let read_report: ReadReport = for_each_conversation(path, read, |c| {
        report.conversations += 1;
        let instances = if c.turns.last().is_some_and(|t| t.from == Role::Human) {
            vec![c]
        } else {
            unfold(&c, first_replies)
                .iter()
                .filter_map(strip_last_reply)
                .collect()
        };
        for conversation in instances {
            let text = serde_json::to_string(&(&conversation.system, &conversation.turns))
                .unwrap_or_default();
            let id = conversation
                .id
                .clone()
                .unwrap_or_else(|| format!("{:016x}", stable_hash(text.as_bytes())));
            if !seen.insert(id.clone()) {
                report.duplicates += 1;
                continue;
            }
            prompts.push(Prompt { id, conversation });
        }
    })?;
    report.skipped = read_report.skipped;
    report.prompts = prompts.len();
    Ok((prompts, report))
}
