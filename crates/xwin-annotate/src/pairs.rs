//! The pairs a judge compares: the input record and its readers.

use crate::error::Result;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use xwin_data::io::{for_each_value, from_value};
use xwin_data::{Conversation, FieldError, ReadOptions, ReadReport, Role, Turn};

/// Two responses to one prompt, to be judged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairInput {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub prompt: Conversation,
    pub response_a: String,
    pub response_b: String,
    /// A reference answer for judges that use one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl PairInput {
    /// `{prompt | conversations, response_a, response_b}` or AlpacaFarm's
    /// `{instruction, input, output_1, output_2}`.
    pub fn from_value(value: Value) -> std::result::Result<Self, FieldError> {
        if value.get("output_1").is_some() {
            let text = |k: &str| {
                value
                    .get(k)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| FieldError::new(k, "missing or not a string"))
            };
            let instruction = text("instruction")?;
            let input = value.get("input").and_then(Value::as_str).unwrap_or("");
            let question = if input.is_empty() {
                instruction
            } else {
                format!("{instruction}\n\n{input}")
            };
            return Ok(Self {
                id: value.get("id").and_then(Value::as_str).map(str::to_string),
                prompt: Conversation::new(vec![Turn::human(question)]),
                response_a: text("output_1")?,
                response_b: text("output_2")?,
                reference: None,
            });
        }
        let mut value = value;
        // A plain-string prompt is a one-turn conversation.
        if let Some(obj) = value.as_object_mut()
            && let Some(Value::String(text)) = obj.get("prompt")
        {
            let turn = serde_json::json!({ "from": "human", "value": text });
            obj.insert(
                "prompt".into(),
                serde_json::json!({ "conversations": [turn] }),
            );
        }
        if let Some(obj) = value.as_object_mut()
            && !obj.contains_key("prompt")
            && let Some(turns) = obj.remove("conversations")
        {
            obj.insert(
                "prompt".into(),
                serde_json::json!({ "conversations": turns }),
            );
        }
        let input: Self = from_value(value)?;
        input
            .prompt
            .validate()
            .map_err(|e| FieldError::new(format!("prompt.{}", e.field), e.message))?;
        Ok(input)
    }

    /// The prompt as the judge sees it: the question alone for one turn, else a transcript.
    pub fn question(&self) -> String {
        let turns = &self.prompt.turns;
        match turns.as_slice() {
            [only] if only.from == Role::Human && self.prompt.system.is_none() => {
                only.value.clone()
            }
            _ => {
                let mut out = String::new();
                if let Some(s) = &self.prompt.system {
                    out.push_str(&format!("SYSTEM: {s}\n"));
                }
                for t in turns {
                    let who = match t.from {
                        Role::Human => "USER",
                        Role::Gpt => "ASSISTANT",
                        Role::System => "SYSTEM",
                    };
                    out.push_str(&format!("{who}: {}\n", t.value));
                }
                out.trim_end().to_string()
            }
        }
    }
}

/// Reads pair inputs (JSONL or a JSON array, optionally gzipped).
pub fn read_pair_inputs(path: &Path, options: ReadOptions) -> Result<(Vec<PairInput>, ReadReport)> {
    let mut out = Vec::new();
    let report = for_each_value(path, options, |v, _| {
        out.push(PairInput::from_value(v)?);
        Ok(())
    })?;
    Ok((out, report))
}
