//! Chat templates: a conversation rendered to text, then to token ids with a per-token loss
//! mask that covers each assistant reply and its `</s>`, and nothing else.
//!
//! The mask comes from the tokenizer's byte offsets over the whole rendered string, so the ids
//! are exactly what tokenizing the full prompt gives (as FastChat trains), with no guessing of
//! how separately tokenized pieces would join.

use crate::conversation::{Conversation, Role};
use crate::error::{DataError, Result};
use std::ops::Range;

/// The Vicuna v1.1 system prompt that Xwin-LM uses.
pub const VICUNA_SYSTEM: &str = "A chat between a curious user and an artificial intelligence assistant. \
The assistant gives helpful, detailed, and polite answers to the user's questions.";

/// Supported prompt formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChatTemplate {
    /// `SYSTEM USER: q ASSISTANT: a</s>USER: …` (the Xwin-LM format).
    VicunaV11,
    /// `<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nq [/INST] a </s><s>[INST] …`.
    Llama2Chat,
}

/// Which assistant replies a loss trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrainOn {
    /// Every assistant reply (SFT).
    AllAssistant,
    /// Only the last reply (rejection-sampling finetune).
    LastAssistant,
}

/// A rendered conversation with the byte ranges that matter.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub text: String,
    /// For each assistant reply: the bytes a loss may train on (separator, reply, `</s>`).
    pub replies: Vec<Range<usize>>,
    /// Start byte of each round (a human turn and its reply), separators included.
    pub round_starts: Vec<usize>,
}

impl ChatTemplate {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "vicuna" | "vicuna_v1.1" | "vicuna-v11" | "xwin" => Some(Self::VicunaV11),
            "llama2" | "llama-2" | "llama2-chat" => Some(Self::Llama2Chat),
            _ => None,
        }
    }

    /// The same rendering as a Jinja chat template for `tokenizer_config.json`, so that
    /// `transformers`' `apply_chat_template` and servers such as vLLM format prompts exactly
    /// as training did (the assistant cue always follows a user turn, as in FastChat).
    pub fn hf_chat_template(self) -> String {
        match self {
            Self::VicunaV11 => format!(
                "{{{{ bos_token }}}}{{% if messages[0]['role'] == 'system' %}}\
                 {{{{ messages[0]['content'] }}}}{{% set loop_messages = messages[1:] %}}\
                 {{% else %}}{{{{ \"{VICUNA_SYSTEM}\" }}}}{{% set loop_messages = messages %}}{{% endif %}}\
                 {{% for message in loop_messages %}}{{% if message['role'] == 'user' %}}\
                 {{% if loop.first %}}{{{{ ' ' }}}}{{% endif %}}\
                 {{{{ 'USER: ' + message['content'] + ' ASSISTANT:' }}}}\
                 {{% elif message['role'] == 'assistant' %}}\
                 {{{{ ' ' + message['content'] + eos_token }}}}{{% endif %}}{{% endfor %}}"
            ),
            Self::Llama2Chat => "{% if messages[0]['role'] == 'system' %}\
                 {% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}\
                 {% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}\
                 {% for message in loop_messages %}{% if message['role'] == 'user' %}\
                 {{ bos_token + '[INST] ' }}{% if loop.first and system %}\
                 {{ '<<SYS>>\n' + system + '\n<</SYS>>\n\n' }}{% endif %}\
                 {{ message['content'] | trim + ' [/INST]' }}\
                 {% elif message['role'] == 'assistant' %}\
                 {{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}"
                .to_string(),
        }
    }

    fn default_system(self) -> &'static str {
        match self {
            Self::VicunaV11 => VICUNA_SYSTEM,
            Self::Llama2Chat => "",
        }
    }

    /// Renders the conversation. If it ends with a human turn, the text ends with the
    /// assistant cue (`ASSISTANT:` / `[/INST]`) ready for generation.
    pub fn render(self, conversation: &Conversation) -> Rendered {
        let system = conversation
            .system
            .as_deref()
            .unwrap_or(self.default_system());
        let mut text = String::new();
        let mut replies = Vec::new();
        let mut round_starts = Vec::new();
        match self {
            Self::VicunaV11 => {
                text.push_str("<s>");
                text.push_str(system);
                for (i, turn) in conversation.turns.iter().enumerate() {
                    match turn.from {
                        Role::Human => {
                            round_starts.push(text.len());
                            // FastChat: system + " " before the first round; "</s>" before the rest.
                            if i == 0 {
                                text.push(' ');
                            }
                            text.push_str("USER: ");
                            text.push_str(&turn.value);
                            text.push_str(" ASSISTANT:");
                        }
                        Role::Gpt => {
                            let start = text.len();
                            text.push(' ');
                            text.push_str(&turn.value);
                            text.push_str("</s>");
                            replies.push(start..text.len());
                        }
                        Role::System => {}
                    }
                }
            }
            Self::Llama2Chat => {
                for (i, turn) in conversation.turns.iter().enumerate() {
                    match turn.from {
                        Role::Human => {
                            round_starts.push(text.len());
                            text.push_str("<s>[INST] ");
                            if i == 0 && !system.is_empty() {
                                text.push_str(&format!("<<SYS>>\n{system}\n<</SYS>>\n\n"));
                            }
                            text.push_str(turn.value.trim());
                            text.push_str(" [/INST]");
                        }
                        Role::Gpt => {
                            let start = text.len();
                            text.push(' ');
                            text.push_str(turn.value.trim());
                            text.push_str(" </s>");
                            replies.push(start..text.len());
                        }
                        Role::System => {}
                    }
                }
            }
        }
        Rendered {
            text,
            replies,
            round_starts,
        }
    }

    /// The text a model continues to answer the last human turn (BOS included as `<s>`).
    pub fn prompt_text(self, conversation: &Conversation) -> String {
        self.render(conversation).text
    }
}

/// Token ids and each one's byte span `(start, end)` in the encoded text.
pub type Encoding = (Vec<u32>, Vec<(usize, usize)>);

/// Anything that turns text into token ids with byte offsets (special tokens such as `<s>`
/// and `</s>` written in the text must come out as their ids).
pub trait TextEncoder {
    fn encode_with_offsets(&self, text: &str) -> Result<Encoding>;
}

impl TextEncoder for tokenizers::Tokenizer {
    fn encode_with_offsets(&self, text: &str) -> Result<Encoding> {
        let enc = self
            .encode(text, false)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok((enc.get_ids().to_vec(), enc.get_offsets().to_vec()))
    }
}

/// Token ids with a loss mask and round boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TokenizedConversation {
    pub ids: Vec<u32>,
    /// `mask[t]`: token `t` is a target of the loss.
    pub mask: Vec<bool>,
    /// Token index where each round starts; tokens before the first round are the prefix.
    pub round_starts: Vec<usize>,
}

impl TokenizedConversation {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn trainable(&self) -> usize {
        self.mask.iter().filter(|m| **m).count()
    }
    /// Token range of round `i`.
    pub fn round(&self, i: usize) -> Range<usize> {
        let end = self
            .round_starts
            .get(i + 1)
            .copied()
            .unwrap_or(self.ids.len());
        self.round_starts[i]..end
    }
}

/// Renders and tokenizes a conversation, masking the replies chosen by `train_on`.
pub fn tokenize(
    template: ChatTemplate,
    conversation: &Conversation,
    encoder: &dyn TextEncoder,
    train_on: TrainOn,
) -> Result<TokenizedConversation> {
    let rendered = template.render(conversation);
    let (ids, offsets) = encoder.encode_with_offsets(&rendered.text)?;
    let trained: &[Range<usize>] = match train_on {
        TrainOn::AllAssistant => &rendered.replies,
        TrainOn::LastAssistant => rendered
            .replies
            .last()
            .map(std::slice::from_ref)
            .unwrap_or(&[]),
    };
    let mask = offsets
        .iter()
        .map(|&(start, end)| {
            // A token belongs where it starts; zero-width tokens (a prepended ▁) where they end.
            let at = if start == end { end } else { start };
            trained.iter().any(|r| r.contains(&at))
        })
        .collect();
    let mut round_starts = Vec::with_capacity(rendered.round_starts.len());
    let mut t = 0;
    for &byte in &rendered.round_starts {
        while t < offsets.len() && offsets[t].0 < byte {
            t += 1;
        }
        round_starts.push(t);
    }
    Ok(TokenizedConversation {
        ids,
        mask,
        round_starts,
    })
}
