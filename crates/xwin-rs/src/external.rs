//! Sampling through an OpenAI-compatible server (vLLM, TGI, llama.cpp, …): the judge's client
//! (`xwin_annotate::ChatClient`: concurrency, retries with backoff and `Retry-After`, rate
//! limits, usage) asks for `n` choices per request. A reply with fewer choices than asked, or
//! without text, is retried and, when retries run out, recorded in `<output>.failures.jsonl`
//! for the next run: the output never holds a prompt with fewer samples than the spec.

use crate::RsError;
use crate::output::{Progress, SampleFailure, SampleOutput, SampleSummary};
use crate::prompts::Prompt;
use crate::spec::{SampleSpec, record};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Instant;
use xwin_annotate::{CallError, ChatClient, Parsed};
use xwin_data::{ChatTemplate, Conversation, Role, SampledResponse};

/// Which endpoint samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Api {
    /// `/completions` on the prompt rendered with our template: exactly the text the policy
    /// was trained on (without the leading `<s>`, which the server's tokenizer adds).
    Completions,
    /// `/chat/completions`: the server renders the messages with its own chat template (our
    /// exported models carry the Vicuna template in `tokenizer_config.json`).
    Chat,
}

/// Samples `spec` for every prompt not yet in `output` through `client`.
#[allow(clippy::too_many_arguments)]
pub async fn sample_external(
    client: &ChatClient,
    api: Api,
    template: ChatTemplate,
    prompts: &[Prompt],
    spec: &SampleSpec,
    concurrency: usize,
    output: &std::path::Path,
    mut on_progress: impl FnMut(Progress),
) -> Result<SampleSummary, RsError> {
    spec.check()?;
    if concurrency == 0 {
        return Err(RsError::Setup("concurrency must be at least 1".into()));
    }
    let mut out = SampleOutput::open(output)?;
    let todo: Vec<&Prompt> = prompts
        .iter()
        .filter(|p| !out.done.contains(&p.id))
        .collect();
    let mut summary = SampleSummary {
        prompts: prompts.len(),
        already_done: prompts.len() - todo.len(),
        ..SampleSummary::default()
    };
    let start = Instant::now();
    let mut results = std::pin::pin!(
        futures::stream::iter(todo.iter().copied())
            .map(|p| async move { (p, sample_prompt(client, api, template, p, spec).await) })
            .buffer_unordered(concurrency)
    );
    let mut fatal = None;
    while let Some((prompt, result)) = results.next().await {
        match result {
            Ok((responses, tokens)) => {
                summary.tokens += tokens;
                summary.responses += responses.len();
                summary.unfinished += responses.iter().filter(|r| !r.finished).count();
                let line = record(
                    spec,
                    &prompt.id,
                    &prompt.conversation,
                    &client.config().model,
                    responses,
                );
                out.writer.write(&line)?;
                summary.sampled_prompts += 1;
            }
            Err(error) => {
                summary.failures += 1;
                if let CallError::Fatal { .. } | CallError::Config(_) = &error {
                    fatal.get_or_insert_with(|| error.to_string());
                }
                out.failures.write(&SampleFailure {
                    id: prompt.id.clone(),
                    error: error.to_string(),
                })?;
            }
        }
        summary.elapsed_s = start.elapsed().as_secs_f64();
        on_progress(Progress {
            done: summary.sampled_prompts + summary.failures,
            total: todo.len(),
            failures: summary.failures,
            tokens: summary.tokens,
            elapsed_s: summary.elapsed_s,
        });
        if fatal.is_some() {
            break;
        }
    }
    summary.usage = Some(client.usage());
    if let Some(e) = fatal {
        return Err(RsError::Setup(format!(
            "the endpoint refused a request in a way every request would fail ({e}); \
             stopped after {} prompts, all of them saved",
            summary.sampled_prompts
        )));
    }
    Ok(summary)
}

/// All samples of one prompt: one request per distinct setting (a pair asks twice, at each
/// temperature; best-of-N asks once for `n` choices). Returns them and the tokens generated.
async fn sample_prompt(
    client: &ChatClient,
    api: Api,
    template: ChatTemplate,
    prompt: &Prompt,
    spec: &SampleSpec,
) -> Result<(Vec<SampledResponse>, usize), CallError> {
    let groups: Vec<(usize, usize)> = if spec.pair_temperatures.is_some() {
        vec![(0, 1), (1, 1)]
    } else {
        vec![(0, spec.n)]
    };
    let text = template.prompt_text(&prompt.conversation);
    let text = text.strip_prefix("<s>").unwrap_or(&text);
    let mut responses = Vec::with_capacity(spec.count());
    let mut tokens = 0;
    for (first, n) in groups {
        let settings = spec.settings(first);
        let mut body = json!({
            "model": client.config().model,
            "n": n,
            "temperature": decimal(settings.temperature),
            "top_p": decimal(settings.top_p),
            "max_tokens": settings.max_new_tokens,
            // Reproducible where the server supports it (vLLM does, per request).
            "seed": spec.seed ^ xwin_data::stable_hash(format!("{}:{first}", prompt.id).as_bytes()) >> 1,
        });
        if settings.top_k > 0 {
            body["top_k"] = json!(settings.top_k);
        }
        let path = match api {
            Api::Completions => {
                body["prompt"] = json!(text);
                "completions"
            }
            Api::Chat => {
                body["messages"] = messages(&prompt.conversation);
                "chat/completions"
            }
        };
        let estimate = (text.len() / 4 + n * settings.max_new_tokens) as u64;
        let parsed = client
            .post(path, &body, estimate, |reply| parse_choices(reply, api, n))
            .await?;
        tokens += parsed.completion_tokens as usize;
        for (i, (text, finished)) in parsed.value.into_iter().enumerate() {
            responses.push(SampledResponse {
                text,
                sampling: spec.settings(first + i),
                finished,
            });
        }
    }
    Ok((responses, tokens))
}

/// The f64 whose shortest decimal is the f32's: `0.7f32` goes out as `0.7`, not as
/// `0.699999988079071`.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// The conversation as chat messages (system prompt first when it has one).
fn messages(conversation: &Conversation) -> Value {
    let mut out = Vec::with_capacity(conversation.turns.len() + 1);
    if let Some(system) = &conversation.system {
        out.push(json!({"role": "system", "content": system}));
    }
    for turn in &conversation.turns {
        let role = match turn.from {
            Role::Human => "user",
            Role::Gpt => "assistant",
            Role::System => "system",
        };
        out.push(json!({"role": role, "content": turn.value}));
    }
    Value::Array(out)
}

/// `n` choices (text, ended by a stop rather than the length limit), in index order.
fn parse_choices(reply: &str, api: Api, n: usize) -> Result<Parsed<Vec<(String, bool)>>, String> {
    let v: Value = serde_json::from_str(reply).map_err(|e| e.to_string())?;
    let choices = v["choices"].as_array().ok_or("no `choices` array")?;
    if choices.len() < n {
        return Err(format!("{} choices for n = {n}", choices.len()));
    }
    let mut indexed: Vec<(u64, String, bool)> = Vec::with_capacity(n);
    for (i, c) in choices.iter().enumerate() {
        let text = match api {
            Api::Completions => c["text"].as_str(),
            Api::Chat => c["message"]["content"].as_str(),
        }
        .ok_or_else(|| format!("choice {i} has no text"))?;
        let index = c["index"].as_u64().unwrap_or(i as u64);
        let finished = c["finish_reason"].as_str() != Some("length");
        indexed.push((index, text.trim_start().to_string(), finished));
    }
    indexed.sort_by_key(|c| c.0);
    let usage = |k: &str| v["usage"][k].as_u64().unwrap_or(0);
    Ok(Parsed {
        value: indexed
            .into_iter()
            .take(n)
            .map(|(_, t, f)| (t, f))
            .collect(),
        prompt_tokens: usage("prompt_tokens"),
        completion_tokens: usage("completion_tokens"),
    })
}
