//! AlpacaEval 2's default judge (`weighted_alpaca_eval_gpt4_turbo`): the classification
//! prompt asks for one token, `m` (the first output shown) or `M`; from the first token's
//! top-5 log-probabilities the preference is `2 − P(m) / (P(m) + P(M))` for the order shown
//! (alpaca_eval's `logprob_parser`), and `3 −` that when the outputs were shown swapped. The
//! order is switched per instruction by a seeded hash and recorded. Calls go through the
//! judge client (retries, rate limits); verdicts are appended to `weighted-judgments.jsonl`
//! and a rerun asks only for the missing ones.

use crate::EvalError;
use crate::alpaca_protocol::{AlpacaAnnotation, AlpacaOutput};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use xwin_annotate::{ChatClient, Parsed};
use xwin_data::{JsonlWriter, stable_hash};

/// One verdict, as appended to `weighted-judgments.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedVerdict {
    pub id: String,
    /// `output_1` (the reference) shown second.
    pub switched: bool,
    /// AlpacaEval's preference: 1 = reference better, 2 = model better.
    pub preference: f64,
    /// The first token's top log-probabilities, verbatim.
    pub top_logprobs: Value,
}

/// A ChatML prompt (`<|im_start|>role\ncontent<|im_end|>`) as chat messages, as alpaca_eval's
/// `prompt_to_chatml` reads it.
pub fn chatml_messages(prompt: &str) -> Vec<Value> {
    prompt
        .split("<|im_start|>")
        .filter_map(|chunk| {
            let body = chunk.split("<|im_end|>").next()?.trim();
            let (role, content) = body.split_once('\n')?;
            Some(json!({"role": role.trim(), "content": content.trim()}))
        })
        .collect()
}

fn switched(id: &str, seed: u64) -> bool {
    stable_hash(format!("{seed}:{id}").as_bytes()) & 1 == 1
}

/// Judges every (reference, output) pair not yet in `dir/weighted-judgments.jsonl` with the
/// classification `template` (ChatML with `{instruction}`, `{output_1}`, `{output_2}`), and
/// returns the annotations in alpaca_eval's format (`null` preference where the judge gave
/// none usable).
pub async fn judge_weighted(
    client: &ChatClient,
    template: &str,
    outputs: &[AlpacaOutput],
    reference: &[AlpacaOutput],
    dir: &Path,
    seed: u64,
    concurrency: usize,
) -> Result<Vec<AlpacaAnnotation>, EvalError> {
    let path = dir.join("weighted-judgments.jsonl");
    let _lock = xwin_data::OutputLock::acquire(xwin_data::lock_path_for(&path, false))?;
    let mut writer = JsonlWriter::append(&path)?;
    let mut verdicts: HashMap<String, f64> = HashMap::new();
    xwin_data::for_each_record(
        &path,
        xwin_data::ReadOptions::default(),
        |v: WeightedVerdict| {
            verdicts.insert(v.id, v.preference);
        },
    )?;
    let todo: Vec<usize> = (0..reference.len())
        .filter(|i| !verdicts.contains_key(&format!("alpaca-{i}")))
        .collect();
    let mut results = std::pin::pin!(
        futures::stream::iter(todo)
            .map(|i| async move {
                let id = format!("alpaca-{i}");
                let swap = switched(&id, seed);
                let (first, second) = if swap {
                    (&outputs[i].output, &reference[i].output)
                } else {
                    (&reference[i].output, &outputs[i].output)
                };
                let prompt = template
                    .replace("{instruction}", &reference[i].instruction)
                    .replace("{output_1}", first)
                    .replace("{output_2}", second);
                let body = json!({
                    "model": client.config().model,
                    "messages": chatml_messages(&prompt),
                    "max_tokens": 1,
                    "temperature": 1,
                    "logprobs": true,
                    "top_logprobs": 5,
                });
                let reply = client
                    .post(
                        "chat/completions",
                        &body,
                        (prompt.len() / 4 + 1) as u64,
                        |text| {
                            let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
                            let top =
                                v["choices"][0]["logprobs"]["content"][0]["top_logprobs"].clone();
                            let p_m = xwin_annotate::parse::logprob_preference(&top, "m")
                                .map_err(|e| e.0)?;
                            let usage = |k: &str| v["usage"][k].as_u64().unwrap_or(0);
                            Ok(Parsed {
                                value: (top, p_m),
                                prompt_tokens: usage("prompt_tokens"),
                                completion_tokens: usage("completion_tokens"),
                            })
                        },
                    )
                    .await;
                (id, swap, reply)
            })
            .buffer_unordered(concurrency.max(1))
    );
    while let Some((id, swap, reply)) = results.next().await {
        match reply {
            Ok(parsed) => {
                let (top, p_m) = parsed.value;
                let shown = 2.0 - p_m;
                let preference = if swap { 3.0 - shown } else { shown };
                writer.write(&WeightedVerdict {
                    id: id.clone(),
                    switched: swap,
                    preference,
                    top_logprobs: top,
                })?;
                verdicts.insert(id, preference);
            }
            // No usable verdict after the client's retries: left out, asked again next run.
            Err(e) => tracing::warn!(%id, error = %e, "weighted judge gave no verdict"),
        }
    }
    let annotator = format!("weighted_alpaca_eval/{}", client.config().model);
    Ok(crate::alpaca_protocol::annotations(
        outputs, reference, &annotator, &verdicts,
    ))
}

#[cfg(test)]
mod checks {
    use super::chatml_messages;

    #[test]
    fn chatml_becomes_messages() {
        let m = chatml_messages(
            "<|im_start|>system\nBe fair.\n<|im_end|>\n<|im_start|>user\nQ: {x}\nA?\n<|im_end|>",
        );
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0]["role"].as_str(), m[0]["content"].as_str()),
            (Some("system"), Some("Be fair."))
        );
        assert_eq!(m[1]["content"], "Q: {x}\nA?");
    }
}
