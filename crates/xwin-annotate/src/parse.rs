//! Parsers for judge replies. Each returns a typed verdict or a [`ParseError`] that keeps
//! what was wrong; the caller retries or records the failure with the raw text, never
//! counting an unparsed reply as a verdict.

use serde_json::Value;
use xwin_data::Rating;

/// A reply that does not carry the verdict the format asks for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(msg.into()))
}

/// FastChat writes `$ERROR$` where the API call itself failed.
const API_ERROR: &str = "$ERROR$";

/// Which shown answer won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shown {
    /// The answer shown first (as "A" / "model_1").
    First,
    /// The answer shown second.
    Second,
    Tie,
}

/// The Xwin pairwise format: `[[A]]` or `[[B]]`, then `Rating: [[… better]]`.
/// Both letters, or neither, is ambiguous; a missing or unknown rating fails too.
pub fn parse_xwin_pairwise(reply: &str) -> Result<(Shown, Rating), ParseError> {
    let (a, b) = (reply.contains("[[A]]"), reply.contains("[[B]]"));
    let winner = match (a, b) {
        (true, false) => Shown::First,
        (false, true) => Shown::Second,
        (true, true) => return fail("reply names both [[A]] and [[B]]"),
        (false, false) => return fail("no [[A]] or [[B]] verdict"),
    };
    // "[[better]]" is not a substring of "[[slightly better]]": the tags cannot overlap.
    let lower = reply.to_lowercase();
    let found: Vec<Rating> = Rating::ALL
        .into_iter()
        .filter(|r| lower.contains(&rating_tag(*r)))
        .collect();
    let rating = match found.as_slice() {
        [one] => *one,
        [] => {
            return fail(
                "no rating: one of [[significantly better]], [[better]], [[slightly better]], [[negligibly better]]",
            );
        }
        _ => return fail("reply gives more than one rating"),
    };
    Ok((winner, rating))
}

/// The tag a rating is written as in the Xwin format.
pub fn rating_tag(rating: Rating) -> String {
    match rating {
        Rating::Better => "[[better]]".into(),
        r => format!("[[{} better]]", r.as_str()),
    }
}

/// MT-bench pairwise (`pair-v2`), as FastChat reads it: `[[A]]`, else `[[B]]`, else `[[C]]` (tie).
pub fn parse_mt_bench_pair(reply: &str) -> Result<Shown, ParseError> {
    if reply.contains(API_ERROR) {
        return fail("judgment is $ERROR$ (the API call failed)");
    }
    if reply.contains("[[A]]") {
        Ok(Shown::First)
    } else if reply.contains("[[B]]") {
        Ok(Shown::Second)
    } else if reply.contains("[[C]]") {
        Ok(Shown::Tie)
    } else {
        fail("no [[A]], [[B]] or [[C]] verdict")
    }
}

/// First `open digits[.digits] close` in `text`.
fn bracketed_number(text: &str, open: &str, close: &str) -> Option<f64> {
    let mut rest = text;
    while let Some(i) = rest.find(open) {
        let after = &rest[i + open.len()..];
        let digits = after
            .char_indices()
            .take_while(|(_, c)| c.is_ascii_digit() || *c == '.')
            .last()
            .map_or(0, |(j, c)| j + c.len_utf8());
        let number = &after[..digits];
        if !number.is_empty()
            && number.starts_with(|c: char| c.is_ascii_digit())
            && number.matches('.').count() <= 1
            && after[digits..].starts_with(close)
            && let Ok(v) = number.parse::<f64>()
        {
            return Some(v);
        }
        rest = after;
    }
    None
}

/// MT-bench single-answer grading: the first `[[x]]` (FastChat's pattern), else the first `[x]`;
/// the score must lie in 1–10.
pub fn parse_single_rating(reply: &str) -> Result<f64, ParseError> {
    if reply.contains(API_ERROR) {
        return fail("judgment is $ERROR$ (the API call failed)");
    }
    let score = bracketed_number(reply, "[[", "]]")
        .or_else(|| bracketed_number(reply, "[", "]"))
        .ok_or_else(|| ParseError("no [[rating]] in the reply".into()))?;
    if !(1.0..=10.0).contains(&score) {
        return fail(format!("rating {score} outside 1–10"));
    }
    Ok(score)
}

/// AlpacaEval 1 (`ranking_parser`): `[{'model': 'model_1', 'rank': 1}, {'model': 'model_2', 'rank': 2}]`.
/// Returns which shown output ranked first.
pub fn parse_alpaca_ranking(reply: &str) -> Result<Shown, ParseError> {
    // Python literal → JSON: the judge writes single quotes.
    let start = reply
        .find('[')
        .ok_or_else(|| ParseError("no ranking list".into()))?;
    let end = reply
        .rfind(']')
        .ok_or_else(|| ParseError("no ranking list".into()))?;
    if end < start {
        return fail("no ranking list");
    }
    let json = reply[start..=end].replace('\'', "\"");
    let list: Vec<Value> = serde_json::from_str(&json)
        .map_err(|e| ParseError(format!("ranking is not a list of dicts: {e}")))?;
    let rank_of = |name: &str| {
        list.iter()
            .find(|d| d.get("model").and_then(Value::as_str) == Some(name))
            .and_then(|d| d.get("rank").and_then(Value::as_i64))
    };
    match (rank_of("model_1"), rank_of("model_2")) {
        (Some(1), Some(2)) | (Some(1), None) => Ok(Shown::First),
        (Some(2), Some(1)) | (None, Some(1)) => Ok(Shown::Second),
        (a, b) => fail(format!("ranks model_1 {a:?}, model_2 {b:?}")),
    }
}

/// AlpacaEval's function-calling judges: `ordered_models` ranks the aliases of
/// `referenced_models` (alias → `output_1`/`output_2`). Returns the AlpacaEval preference
/// (1.0 = output_1 better, 2.0 = output_2 better).
pub fn parse_ordered_models(completion: &Value, referenced: &Value) -> Result<f64, ParseError> {
    let ordered = completion
        .get("ordered_models")
        .and_then(Value::as_array)
        .ok_or_else(|| ParseError("no ordered_models".into()))?;
    let best = ordered
        .iter()
        .find(|m| m.get("rank").and_then(Value::as_i64) == Some(1))
        .and_then(|m| m.get("model").and_then(Value::as_str))
        .ok_or_else(|| ParseError("no model with rank 1".into()))?;
    match referenced.get(best).and_then(Value::as_str) {
        Some("output_1") => Ok(1.0),
        Some("output_2") => Ok(2.0),
        other => fail(format!("alias {best:?} refers to {other:?}")),
    }
}

/// AlpacaEval 2's weighted judge (`logprob_parser`): from the first token's top log-probs,
/// P(numerator) / (P(m) + P(M)). Tokens missing from the top list count as probability 0.
pub fn logprob_preference(top_logprobs: &Value, numerator: &str) -> Result<f64, ParseError> {
    let list = top_logprobs
        .as_array()
        .ok_or_else(|| ParseError("top_logprobs is not a list".into()))?;
    let prob = |token: &str| {
        list.iter()
            .find(|t| t.get("token").and_then(Value::as_str) == Some(token))
            .and_then(|t| t.get("logprob").and_then(Value::as_f64))
            .map_or(0.0, f64::exp)
    };
    let (m, big) = (prob("m"), prob("M"));
    if m + big == 0.0 {
        return fail("neither 'm' nor 'M' among the top log-probs");
    }
    Ok(prob(numerator) / (m + big))
}
