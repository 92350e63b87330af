//! Importers: ShareGPT (`.json`/`.jsonl`), Alpaca `instruction/input/output`, HH-RLHF
//! `\n\nHuman: … \n\nAssistant: …` transcripts and OpenAI `messages`, all to [`Conversation`];
//! and preference pairs (ShareGPT `chosen`/`rejected`, HH-RLHF) to [`PreferencePair`].

use crate::conversation::{Conversation, Role, Turn, kind, parse_turn};
use crate::error::{FieldError, Result};
use crate::io::{ReadOptions, ReadReport, for_each_value};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;

/// Reads conversations from any supported format, detected per record.
pub fn for_each_conversation(
    path: &Path,
    options: ReadOptions,
    mut f: impl FnMut(Conversation),
) -> Result<ReadReport> {
    for_each_value(path, options, |value, _| {
        f(conversation_from_value(&value)?);
        Ok(())
    })
}

/// Reads all conversations of a file.
pub fn read_conversations(
    path: &Path,
    options: ReadOptions,
) -> Result<(Vec<Conversation>, ReadReport)> {
    let mut out = Vec::new();
    let report = for_each_conversation(path, options, |c| out.push(c))?;
    Ok((out, report))
}

/// One record in any supported conversation format.
pub fn conversation_from_value(value: &Value) -> std::result::Result<Conversation, FieldError> {
    let obj = value.as_object().ok_or_else(|| {
        FieldError::new(
            "<record>",
            format!("expected an object, found {}", kind(value)),
        )
    })?;
    if obj.contains_key("conversations") {
        Conversation::from_value(value)
    } else if obj.contains_key("instruction") {
        from_alpaca(obj)
    } else if obj.contains_key("messages") {
        let mut v = value.clone();
        if let Some(o) = v.as_object_mut()
            && let Some(m) = o.remove("messages")
        {
            o.insert("conversations".into(), m);
        }
        Conversation::from_value(&v).map_err(|e| {
            FieldError::new(e.field.replacen("conversations", "messages", 1), e.message)
        })
    } else if let Some(chosen) = obj.get("chosen") {
        let text = chosen
            .as_str()
            .ok_or_else(|| FieldError::new("chosen", "expected an HH-RLHF transcript string"))?;
        hh_transcript(text).map_err(|m| FieldError::new("chosen", m))
    } else {
        Err(FieldError::new(
            "<record>",
            "unknown format: expected `conversations` (ShareGPT), `messages`, `instruction` (Alpaca) or `chosen` (HH-RLHF)",
        ))
    }
}

fn string_field(
    obj: &serde_json::Map<String, Value>,
    field: &str,
    required: bool,
) -> std::result::Result<String, FieldError> {
    match obj.get(field) {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if !required => Ok(String::new()),
        None => Err(FieldError::new(field, "missing")),
        Some(other) => Err(FieldError::new(
            field,
            format!("expected a string, found {}", kind(other)),
        )),
    }
}

/// Alpaca: the human turn is the instruction, then a newline and the input if there is one.
fn from_alpaca(
    obj: &serde_json::Map<String, Value>,
) -> std::result::Result<Conversation, FieldError> {
    let instruction = string_field(obj, "instruction", true)?;
    let input = string_field(obj, "input", false)?;
    let output = string_field(obj, "output", true)?;
    let prompt = if input.is_empty() {
        instruction
    } else {
        format!("{instruction}\n{input}")
    };
    let mut c = Conversation::new(vec![Turn::human(prompt), Turn::gpt(output)]);
    c.system = Some(string_field(obj, "system", false)?).filter(|s| !s.is_empty());
    Ok(c)
}

/// Parses `\n\nHuman: …\n\nAssistant: …` into turns.
pub fn hh_transcript(text: &str) -> std::result::Result<Conversation, String> {
    const HUMAN: &str = "\n\nHuman:";
    const ASSISTANT: &str = "\n\nAssistant:";
    let mut turns = Vec::new();
    let mut rest = text;
    if !rest.starts_with(HUMAN) {
        return Err("transcript must start with `\\n\\nHuman:`".into());
    }
    while !rest.is_empty() {
        let (role, marker) = if rest.starts_with(HUMAN) {
            (Role::Human, HUMAN)
        } else if rest.starts_with(ASSISTANT) {
            (Role::Gpt, ASSISTANT)
        } else {
            return Err(format!(
                "unexpected text at byte {}",
                text.len() - rest.len()
            ));
        };
        rest = &rest[marker.len()..];
        let end = [rest.find(HUMAN), rest.find(ASSISTANT)]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(rest.len());
        let value = rest[..end]
            .strip_prefix(' ')
            .unwrap_or(&rest[..end])
            .to_string();
        // Consecutive same-role turns (rare in HH) are merged so roles alternate.
        match turns.last_mut() {
            Some(Turn { from, value: prev }) if *from == role => {
                prev.push_str("\n\n");
                prev.push_str(&value);
            }
            _ => turns.push(Turn { from: role, value }),
        }
        rest = &rest[end..];
    }
    let c = Conversation::new(turns);
    c.validate()
        .map_err(|e| format!("turns{}: {}", e.field, e.message))?;
    Ok(c)
}

/// A prompt (history ending with a human turn) with a preferred and a dispreferred reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub prompt: Conversation,
    pub chosen: String,
    pub rejected: String,
}

/// Reads preference pairs: TRL's `{prompt, chosen, rejected}` (strings, or message lists in
/// its conversational form), ShareGPT with `chosen`/`rejected` turns, or HH-RLHF transcripts
/// (which must share everything but the last assistant reply).
pub fn for_each_preference_pair(
    path: &Path,
    options: ReadOptions,
    mut f: impl FnMut(PreferencePair),
) -> Result<ReadReport> {
    for_each_value(path, options, |value, _| {
        f(preference_from_value(&value)?);
        Ok(())
    })
}

/// TRL's preference formats: `prompt` a string (one user turn) or a list of messages ending
/// with a user turn; `chosen` / `rejected` strings or one-assistant-message lists.
fn trl_preference(
    obj: &serde_json::Map<String, Value>,
    prompt: &Value,
) -> std::result::Result<PreferencePair, FieldError> {
    let prompt = match prompt {
        Value::String(text) => Conversation::new(vec![Turn::human(text.clone())]),
        Value::Array(items) => {
            let turns = items
                .iter()
                .enumerate()
                .map(|(i, t)| parse_turn(t, &format!("prompt[{i}]")))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let mut c = Conversation::new(turns);
            if c.turns.first().is_some_and(|t| t.from == Role::System) {
                c.system = Some(c.turns.remove(0).value);
            }
            c
        }
        _ => {
            return Err(FieldError::new(
                "prompt",
                "expected a string or a list of messages",
            ));
        }
    };
    if prompt.turns.last().map(|t| t.from) != Some(Role::Human) {
        return Err(FieldError::new("prompt", "must end with a user turn"));
    }
    let side = |field: &str| -> std::result::Result<String, FieldError> {
        match obj.get(field) {
            Some(Value::String(text)) => Ok(text.clone()),
            Some(Value::Array(items)) if items.len() == 1 => {
                let turn = parse_turn(&items[0], field)?;
                if turn.from != Role::Gpt {
                    return Err(FieldError::new(field, "expected an assistant message"));
                }
                Ok(turn.value)
            }
            Some(_) => Err(FieldError::new(
                field,
                "expected a string or a list of one assistant message",
            )),
            None => Err(FieldError::new(field, "missing")),
        }
    };
    Ok(PreferencePair {
        id: obj.get("id").and_then(Value::as_str).map(str::to_string),
        prompt,
        chosen: side("chosen")?,
        rejected: side("rejected")?,
    })
}

pub fn preference_from_value(value: &Value) -> std::result::Result<PreferencePair, FieldError> {
    let obj = value
        .as_object()
        .ok_or_else(|| FieldError::new("<record>", "expected an object"))?;
    if let Some(prompt) = obj.get("prompt") {
        return trl_preference(obj, prompt);
    }
    match (obj.get("chosen"), obj.get("rejected")) {
        (Some(Value::String(c)), Some(Value::String(r))) => {
            let chosen = hh_transcript(c).map_err(|m| FieldError::new("chosen", m))?;
            let rejected = hh_transcript(r).map_err(|m| FieldError::new("rejected", m))?;
            let (Some((cl, ch)), Some((rl, rh))) =
                (chosen.turns.split_last(), rejected.turns.split_last())
            else {
                return Err(FieldError::new("chosen", "empty transcript"));
            };
            if ch != rh || cl.from != Role::Gpt || rl.from != Role::Gpt {
                return Err(FieldError::new(
                    "rejected",
                    "chosen and rejected must differ only in the last assistant turn",
                ));
            }
            Ok(PreferencePair {
                id: None,
                prompt: Conversation::new(ch.to_vec()),
                chosen: cl.value.clone(),
                rejected: rl.value.clone(),
            })
        }
        (Some(c), Some(r)) => {
            let chosen = parse_turn(c, "chosen")?;
            let rejected = parse_turn(r, "rejected")?;
            let prompt = Conversation::from_value(value)?;
            if prompt.turns.len() % 2 == 0 {
                return Err(FieldError::new(
                    "conversations",
                    "the history must end with a human turn",
                ));
            }
            Ok(PreferencePair {
                id: prompt.id.clone(),
                prompt,
                chosen: chosen.value,
                rejected: rejected.value,
            })
        }
        _ => Err(FieldError::new(
            "chosen",
            "a preference record needs `chosen` and `rejected`",
        )),
    }
}

#[cfg(test)]
mod trl_checks {
    use super::*;
    use serde_json::json;

    /// TRL's standard and conversational preference records, and what is refused.
    #[test]
    fn trl_preference_records() {
        let standard = json!({"id": "a", "prompt": "Hi?", "chosen": "Hello!", "rejected": "No."});
        let p = preference_from_value(&standard).unwrap();
        assert_eq!(
            (p.id.as_deref(), p.chosen.as_str(), p.rejected.as_str()),
            (Some("a"), "Hello!", "No.")
        );
        assert_eq!(p.prompt.turns, vec![Turn::human("Hi?")]);
        let conversational = json!({
            "prompt": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Hi?"},
                       {"role": "assistant", "content": "Hello."},
                       {"role": "user", "content": "Name?"}],
            "chosen": [{"role": "assistant", "content": "Vicuna."}],
            "rejected": [{"role": "assistant", "content": "No."}]});
        let p = preference_from_value(&conversational).unwrap();
        assert_eq!(p.prompt.system.as_deref(), Some("Be brief."));
        assert_eq!(p.prompt.turns.len(), 3);
        assert_eq!(p.chosen, "Vicuna.");
        let ends_with_reply = json!({"prompt": [{"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "x"}], "chosen": "a", "rejected": "b"});
        assert_eq!(
            preference_from_value(&ends_with_reply).unwrap_err().field,
            "prompt"
        );
        let user_side =
            json!({"prompt": "Hi", "chosen": [{"role": "user", "content": "a"}], "rejected": "b"});
        assert_eq!(
            preference_from_value(&user_side).unwrap_err().field,
            "chosen"
        );
    }
}
