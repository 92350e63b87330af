//! Conversations: the unit every stage trains on, in the ShareGPT dialect FastChat uses.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Human,
    Gpt,
}

impl Role {
    /// ShareGPT and OpenAI role names.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "system" => Some(Self::System),
            "human" | "user" => Some(Self::Human),
            "gpt" | "assistant" | "chatgpt" | "bard" | "bing" => Some(Self::Gpt),
            _ => None,
        }
    }
}

/// One message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub from: Role,
    pub value: String,
}

impl Turn {
    pub fn human(value: impl Into<String>) -> Self {
        Self {
            from: Role::Human,
            value: value.into(),
        }
    }
    pub fn gpt(value: impl Into<String>) -> Self {
        Self {
            from: Role::Gpt,
            value: value.into(),
        }
    }
}

/// A conversation: an optional system prompt, then alternating human/gpt turns starting with
/// a human turn. Written as ShareGPT: `{"id", "system"?, "conversations": [{"from", "value"}]}`
/// (a leading `system` turn in the list is accepted on input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conversation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(rename = "conversations")]
    pub turns: Vec<Turn>,
}

impl Conversation {
    pub fn new(turns: Vec<Turn>) -> Self {
        Self {
            id: None,
            system: None,
            turns,
        }
    }

    /// Parses a ShareGPT object, naming the field of any problem.
    pub fn from_value(value: &Value) -> Result<Self, FieldError> {
        let obj = value
            .as_object()
            .ok_or_else(|| FieldError::new("<record>", "expected a JSON object"))?;
        let id = match obj.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(other) => {
                return Err(FieldError::new(
                    "id",
                    format!("expected a string, found {}", kind(other)),
                ));
            }
        };
        let mut system = match obj.get("system") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                return Err(FieldError::new(
                    "system",
                    format!("expected a string, found {}", kind(other)),
                ));
            }
        };
        let list = obj
            .get("conversations")
            .ok_or_else(|| FieldError::new("conversations", "missing"))?
            .as_array()
            .ok_or_else(|| FieldError::new("conversations", "expected a list of turns"))?;
        let mut turns = Vec::with_capacity(list.len());
        for (i, item) in list.iter().enumerate() {
            let turn = parse_turn(item, &format!("conversations[{i}]"))?;
            if turn.from == Role::System {
                if i != 0 {
                    return Err(FieldError::new(
                        format!("conversations[{i}].from"),
                        "a system turn must come first",
                    ));
                }
                system = Some(turn.value);
            } else {
                turns.push(turn);
            }
        }
        let conversation = Self { id, system, turns };
        conversation
            .validate()
            .map_err(|e| FieldError::new(format!("conversations{}", e.field), e.message))?;
        Ok(conversation)
    }

    /// Human first, then strict alternation; at least one turn.
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.turns.is_empty() {
            return Err(FieldError::new("", "no turns"));
        }
        for (i, turn) in self.turns.iter().enumerate() {
            let want = if i % 2 == 0 { Role::Human } else { Role::Gpt };
            if turn.from != want {
                return Err(FieldError::new(
                    format!("[{i}].from"),
                    format!(
                        "expected {want:?} (turns must alternate human/gpt, human first), found {:?}",
                        turn.from
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Number of assistant replies.
    pub fn num_replies(&self) -> usize {
        self.turns.iter().filter(|t| t.from == Role::Gpt).count()
    }
}

pub(crate) fn parse_turn(item: &Value, field: &str) -> Result<Turn, FieldError> {
    let obj = item
        .as_object()
        .ok_or_else(|| FieldError::new(field, "expected a turn object"))?;
    let from = match obj.get("from").or_else(|| obj.get("role")) {
        Some(Value::String(s)) => Role::parse(s).ok_or_else(|| {
            FieldError::new(format!("{field}.from"), format!("unknown role `{s}`"))
        })?,
        Some(other) => {
            return Err(FieldError::new(
                format!("{field}.from"),
                format!("expected a string, found {}", kind(other)),
            ));
        }
        None => return Err(FieldError::new(format!("{field}.from"), "missing")),
    };
    let value = match obj.get("value").or_else(|| obj.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(FieldError::new(
                format!("{field}.value"),
                format!("expected a string, found {}", kind(other)),
            ));
        }
        None => return Err(FieldError::new(format!("{field}.value"), "missing")),
    };
    Ok(Turn { from, value })
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
