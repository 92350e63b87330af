//! A real HTTP/1.1 server on 127.0.0.1 that speaks the OpenAI chat-completions protocol and
//! answers from a script: good replies, garbage, HTTP errors with headers (429 with
//! `Retry-After`), stalls. Keep-alive connections and a fixed latency per reply make it a
//! fair load target for the judge benchmark. Used by tests, the benchmark and demos.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A request as the script sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// 0-based arrival number.
    pub index: usize,
    pub body: Value,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl Request {
    /// Content of the last message (the user prompt).
    pub fn user(&self) -> &str {
        self.body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or("")
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Action {
    /// 200 with a chat completion whose message is this text.
    Reply(String),
    /// Any status, body and extra headers (e.g. 429 + `Retry-After`, 500, or garbage with 200).
    Raw {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// Waits this long before replying with the text (to trip client timeouts).
    Stall(Duration, String),
}

type Script = dyn Fn(&Request) -> Action + Send + Sync;

/// The running server; stops when dropped.
pub struct TestServer {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// Starts on a free port; every reply waits `latency` first.
    pub async fn start(
        latency: Duration,
        script: impl Fn(&Request) -> Action + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let script: Arc<Script> = Arc::new(script);
        let counter = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (script, counter) = (script.clone(), counter.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, latency, script, counter).await;
                });
            }
        });
        Ok(Self {
            addr,
            requests,
            task,
        })
    }

    /// `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A chat-completion response body carrying `text`.
pub fn completion_body(model: &str, text: &str, prompt_tokens: usize) -> String {
    let completion_tokens = text.len().div_ceil(4);
    json!({
        "id": "chatcmpl-xwin-test", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens}
    })
    .to_string()
}

async fn serve(
    stream: TcpStream,
    latency: Duration,
    script: Arc<Script>,
    counter: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        if line.trim().is_empty() {
            continue;
        }
        let mut length = 0usize;
        let mut authorization = None;
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "authorization" => authorization = Some(value.to_string()),
                    "connection" => close = value.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let request = Request {
            index: counter.fetch_add(1, Ordering::SeqCst),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            authorization,
        };
        let model = request.body["model"].as_str().unwrap_or("test").to_string();
        let prompt_tokens = request.body.to_string().len() / 4;
        let action = script(&request);
        tokio::time::sleep(latency).await;
        let (status, body, headers) = match action {
            Action::Reply(text) => (200, completion_body(&model, &text, prompt_tokens), vec![]),
            Action::Raw {
                status,
                body,
                headers,
            } => (status, body, headers),
            Action::Stall(wait, text) => {
                tokio::time::sleep(wait).await;
                (200, completion_body(&model, &text, prompt_tokens), vec![])
            }
        };
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
            reason(status),
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        // One write per response: a head and body written separately would wait on the
        // client's delayed ACK (Nagle), adding ~40 ms to every reply.
        head.push_str(&body);
        write.write_all(head.as_bytes()).await?;
        write.flush().await?;
        if close {
            return Ok(());
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}
