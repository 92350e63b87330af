//! An OpenAI-compatible chat-completions client for judges: async-openai's request and
//! response types over reqwest, with bounded retries and backoff that honour `Retry-After`,
//! per-request timeouts, requests- and tokens-per-minute limits, and usage and cost totals.
//! The API key is read from an environment variable and never logged or serialised.

use crate::limiter::RateLimiter;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequest, CreateChatCompletionResponse,
};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;

/// Where and how to call the judge model.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Base URL up to `/v1`, e.g. `https://api.openai.com/v1` or `http://127.0.0.1:8000/v1`.
    pub base_url: String,
    pub model: String,
    /// Environment variable holding the API key (none: no `Authorization` header).
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub temperature: f32,
    #[serde(default = "max_tokens")]
    pub max_tokens: u32,
    /// Seconds one request may take before it is abandoned and retried.
    #[serde(default = "timeout_s")]
    pub timeout_s: f64,
    /// Retries of one request after HTTP 429/5xx, timeouts and connection errors.
    #[serde(default = "max_retries")]
    pub max_retries: u32,
    /// First backoff in seconds; doubles per retry up to `backoff_max_s`.
    #[serde(default = "backoff_s")]
    pub backoff_s: f64,
    #[serde(default = "backoff_max_s")]
    pub backoff_max_s: f64,
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    #[serde(default)]
    pub tokens_per_minute: Option<u32>,
    /// Prices in dollars per million tokens, for the cost total.
    #[serde(default)]
    pub price_prompt_per_m: f64,
    #[serde(default)]
    pub price_completion_per_m: f64,
}

fn max_tokens() -> u32 {
    1024
}
fn timeout_s() -> f64 {
    120.0
}
fn max_retries() -> u32 {
    6
}
fn backoff_s() -> f64 {
    1.0
}
fn backoff_max_s() -> f64 {
    60.0
}

impl EndpointConfig {
    /// Defaults for `model` at `base_url`.
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key_env: None,
            temperature: 0.0,
            max_tokens: max_tokens(),
            timeout_s: timeout_s(),
            max_retries: max_retries(),
            backoff_s: backoff_s(),
            backoff_max_s: backoff_max_s(),
            requests_per_minute: None,
            tokens_per_minute: None,
            price_prompt_per_m: 0.0,
            price_completion_per_m: 0.0,
        }
    }
}

impl std::fmt::Debug for EndpointConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only the variable's name is shown; the key itself is never held here.
        f.debug_struct("EndpointConfig")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("temperature", &self.temperature)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

/// Token usage and cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub requests: u64,
    /// Requests repeated after 429, 5xx, timeouts or connection errors.
    pub retries: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_usd: f64,
}

/// Why a call gave no reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CallError {
    /// Not worth retrying (401, 403, 404, 400…): every other request would fail the same way.
    #[error("HTTP {status}: {body}")]
    Fatal { status: u16, body: String },
    #[error("gave up after {attempts} attempts; last error: {last}")]
    GaveUp { attempts: u32, last: String },
    #[error("judge config: {0}")]
    Config(String),
}

/// A reply and the usage it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub text: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// The client. Cheap to share behind `&`; all state is internally synchronised.
pub struct ChatClient {
    config: EndpointConfig,
    api_key: Option<String>,
    http: reqwest::Client,
    limiter: RateLimiter,
    usage: Mutex<Usage>,
}

/// A parsed response and the usage it reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T> {
    pub value: T,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

/// One attempt's outcome, for the retry loop.
enum Attempt<T> {
    Done(Parsed<T>),
    Retry {
        error: String,
        wait: Option<Duration>,
    },
    Fatal(CallError),
}

impl ChatClient {
    /// Builds the client, reading the API key from `config.api_key_env` when set.
    pub fn new(config: EndpointConfig) -> Result<Self, CallError> {
        let api_key = match &config.api_key_env {
            None => None,
            Some(var) => Some(std::env::var(var).map_err(|_| {
                CallError::Config(format!(
                    "environment variable {var} (the API key) is not set"
                ))
            })?),
        };
        // NaN and ∞ too: `Duration::from_secs_f64` panics on them.
        if !config.timeout_s.is_finite() || config.timeout_s <= 0.0 {
            return Err(CallError::Config(
                "timeout_s must be a finite number > 0".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs_f64(config.timeout_s))
            .pool_max_idle_per_host(1024)
            .build()
            .map_err(|e| CallError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            limiter: RateLimiter::new(config.requests_per_minute, config.tokens_per_minute),
            config,
            api_key,
            http,
            usage: Mutex::new(Usage::default()),
        })
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Usage and cost so far.
    pub fn usage(&self) -> Usage {
        *self.usage.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn request(&self, system: &str, user: &str) -> CreateChatCompletionRequest {
        let mut messages = Vec::with_capacity(2);
        if !system.is_empty() {
            messages.push(ChatCompletionRequestMessage::System(
                ChatCompletionRequestSystemMessage::from(system),
            ));
        }
        messages.push(ChatCompletionRequestMessage::User(
            ChatCompletionRequestUserMessage::from(user),
        ));
        #[allow(deprecated)]
        CreateChatCompletionRequest {
            model: self.config.model.clone(),
            messages,
            temperature: Some(self.config.temperature),
            max_tokens: Some(self.config.max_tokens),
            ..Default::default()
        }
    }

    /// One chat completion (system + user message), retried as configured.
    pub async fn chat(&self, system: &str, user: &str) -> Result<Reply, CallError> {
        let body = self.request(system, user);
        // ~4 characters per token, plus the most the reply may use.
        let estimate = ((system.len() + user.len()) / 4) as u64 + u64::from(self.config.max_tokens);
        let parsed = self
            .post("chat/completions", &body, estimate, parse_chat)
            .await?;
        Ok(Reply {
            text: parsed.value,
            prompt_tokens: parsed.prompt_tokens,
            completion_tokens: parsed.completion_tokens,
        })
    }

    /// POSTs `body` to `{base_url}/{path}` with the rate limits, retries and usage totals of
    /// every call. A body `parse` rejects (malformed JSON, missing fields, too few choices)
    /// is retried like a 5xx: servers under load do send truncated replies.
    pub async fn post<T>(
        &self,
        path: &str,
        body: &impl Serialize,
        estimated_tokens: u64,
        parse: impl Fn(&str) -> Result<Parsed<T>, String>,
    ) -> Result<Parsed<T>, CallError> {
        let url = format!("{}/{path}", self.config.base_url.trim_end_matches('/'));
        let mut last = String::new();
        for attempt in 0..=self.config.max_retries {
            self.limiter.acquire(estimated_tokens).await;
            if attempt > 0 {
                self.bump(|u| u.retries += 1);
            }
            self.bump(|u| u.requests += 1);
            match self.attempt(&url, body, &parse).await {
                Attempt::Done(reply) => {
                    self.bump(|u| {
                        u.prompt_tokens += reply.prompt_tokens;
                        u.completion_tokens += reply.completion_tokens;
                        u.cost_usd += reply.prompt_tokens as f64 * self.config.price_prompt_per_m
                            / 1e6
                            + reply.completion_tokens as f64 * self.config.price_completion_per_m
                                / 1e6;
                    });
                    return Ok(reply);
                }
                Attempt::Fatal(e) => return Err(e),
                Attempt::Retry { error, wait } => {
                    if attempt == self.config.max_retries {
                        last = error;
                        break;
                    }
                    let wait = wait.unwrap_or_else(|| self.backoff(attempt));
                    tracing::debug!(attempt, ?wait, %error, "request will be retried");
                    last = error;
                    tokio::time::sleep(wait).await;
                }
            }
        }
        Err(CallError::GaveUp {
            attempts: self.config.max_retries + 1,
            last,
        })
    }

    fn bump(&self, f: impl FnOnce(&mut Usage)) {
        f(&mut self.usage.lock().unwrap_or_else(|e| e.into_inner()));
    }

    /// Exponential backoff with jitter in [50 %, 100 %] so that many waiting tasks spread out.
    fn backoff(&self, attempt: u32) -> Duration {
        let base =
            (self.config.backoff_s * 2f64.powi(attempt as i32)).min(self.config.backoff_max_s);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = 0.5 + 0.5 * f64::from(nanos % 1000) / 1000.0;
        Duration::from_secs_f64(base * jitter)
    }

    async fn attempt<T>(
        &self,
        url: &str,
        body: &impl Serialize,
        parse: &impl Fn(&str) -> Result<Parsed<T>, String>,
    ) -> Attempt<T> {
        let mut req = self.http.post(url).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let response = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let kind = if e.is_timeout() {
                    "timeout"
                } else {
                    "connection error"
                };
                return Attempt::Retry {
                    error: format!("{kind}: {e}"),
                    wait: None,
                };
            }
        };
        let status = response.status();
        let wait = retry_after(response.headers());
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Retry {
                    error: format!("reading the body: {e}"),
                    wait: None,
                };
            }
        };
        if status.is_success() {
            return match parse(&text) {
                Ok(parsed) => Attempt::Done(parsed),
                Err(e) => Attempt::Retry {
                    error: format!("malformed response ({e}): {}", truncate(&text)),
                    wait: None,
                },
            };
        }
        let code = status.as_u16();
        if code == 429 || code == 408 || code == 409 || status.is_server_error() {
            Attempt::Retry {
                error: format!("HTTP {code}: {}", truncate(&text)),
                wait,
            }
        } else {
            Attempt::Fatal(CallError::Fatal {
                status: code,
                body: truncate(&text),
            })
        }
    }
}

/// The first choice's message of a chat completion.
fn parse_chat(text: &str) -> Result<Parsed<String>, String> {
    let r: CreateChatCompletionResponse = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let content = r
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .ok_or("response has no message content")?;
    Ok(Parsed {
        value: content,
        prompt_tokens: r.usage.as_ref().map_or(0, |u| u64::from(u.prompt_tokens)),
        completion_tokens: r
            .usage
            .as_ref()
            .map_or(0, |u| u64::from(u.completion_tokens)),
    })
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(300) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// `Retry-After` (seconds; OpenAI also sends `retry-after-ms`), capped at 10 minutes.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    get("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| get("retry-after"))
        .map(|s| Duration::from_secs_f64(s.min(600.0)))
}
