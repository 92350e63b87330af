//! The external sampler against a real OpenAI-compatible server on 127.0.0.1 that answers
//! with 429s, 500s, stalls, malformed bodies and too few choices: retried where retrying
//! helps, recorded where it does not, never a short record; a rerun completes the artifact,
//! which then equals a clean run's.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use xwin_annotate::{ChatClient, EndpointConfig};
use xwin_data::{ChatTemplate, ReadOptions, ResponseSamples};
use xwin_rs::{Api, SampleSpec, read_prompts, sample_external};
use xwin_testkit::test_server::{Action, Request, TestServer};

fn prompts(dir: &Path) -> Vec<xwin_rs::Prompt> {
    let path = dir.join("prompts.jsonl");
    let lines: Vec<String> = (0..12)
        .map(|i| {
            format!(
                r#"{{"id":"p{i}","conversations":[{{"from":"human","value":"Question {i}?"}}]}}"#
            )
        })
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    read_prompts(&path, None, ReadOptions::default()).unwrap().0
}

/// The prompt text a request carries (completions) or its last message (chat).
fn prompt_of(r: &Request) -> String {
    r.body["prompt"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| r.user().to_string())
}

/// `n` choices, each naming the prompt's question, the temperature and its index.
fn good(r: &Request, n: usize) -> Action {
    let prompt = prompt_of(r);
    let question = prompt
        .split("USER: ")
        .last()
        .unwrap_or("")
        .trim_end_matches(" ASSISTANT:")
        .to_string();
    let t = r.body["temperature"].as_f64().unwrap_or(-1.0);
    let chat = r.body.get("messages").is_some();
    let choices: Vec<Value> = (0..n)
        .map(|k| {
            let text = format!(" answer {k} to {question} at {t}");
            let finish = if k == 1 { "length" } else { "stop" };
            if chat {
                json!({"index": k, "finish_reason": finish,
                       "message": {"role": "assistant", "content": text}})
            } else {
                json!({"index": k, "finish_reason": finish, "text": text})
            }
        })
        .collect();
    Action::Raw {
        status: 200,
        body:
            json!({"choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 5 * n}})
                .to_string(),
        headers: vec![],
    }
}

fn client(server: &TestServer) -> ChatClient {
    ChatClient::new(EndpointConfig {
        timeout_s: 0.5,
        backoff_s: 0.01,
        backoff_max_s: 0.05,
        max_retries: 4,
        ..EndpointConfig::new(server.base_url(), "served-policy")
    })
    .unwrap()
}

fn spec() -> SampleSpec {
    SampleSpec {
        n: 4,
        temperature: 0.9,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 32,
        seed: 5,
        pair_temperatures: None,
    }
}

fn records(path: &Path) -> BTreeMap<String, ResponseSamples> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let r: ResponseSamples = serde_json::from_str(line).unwrap();
        assert!(out.insert(r.id.clone(), r).is_none(), "written twice");
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_retried_or_recorded_and_a_rerun_completes_the_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = prompts(dir.path());
    let spec = spec();

    let clean_server = TestServer::start(Duration::ZERO, move |r| good(r, 4))
        .await
        .unwrap();
    let clean = dir.path().join("clean.jsonl");
    let summary = sample_external(
        &client(&clean_server),
        Api::Completions,
        ChatTemplate::VicunaV11,
        &prompts,
        &spec,
        4,
        &clean,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.sampled_prompts, summary.responses, summary.failures),
        (12, 48, 0)
    );
    assert_eq!(
        summary.unfinished, 12,
        "choice 1 of each ends at the length limit"
    );
    let expected = records(&clean);
    let first = &expected["p0"];
    assert_eq!(first.model, "served-policy");
    assert_eq!(first.responses[2].text, "answer 2 to Question 0? at 0.9");
    assert!(!first.responses[1].finished && first.responses[0].finished);

    // The faulty server: the first requests fail in every retryable way; the prompt
    // "Question 7?" always gets fewer choices than asked until `fixed`.
    let fixed = Arc::new(AtomicBool::new(false));
    let fixed_in = fixed.clone();
    let faulty = TestServer::start(Duration::ZERO, move |r| {
        let raw = |status: u16, body: &str, headers: Vec<(String, String)>| Action::Raw {
            status,
            body: body.to_string(),
            headers,
        };
        // The body must be a completions request carrying our rendered prompt, no BOS.
        let prompt = prompt_of(r);
        assert!(
            prompt.starts_with("A chat between") && prompt.ends_with("ASSISTANT:"),
            "{prompt}"
        );
        assert_eq!(r.body["n"], 4);
        if prompt.contains("Question 7?") && !fixed_in.load(Ordering::SeqCst) {
            return good(r, 3);
        }
        match r.index {
            0 => raw(429, "slow down", vec![("retry-after".into(), "0".into())]),
            1 => raw(500, "oops", vec![]),
            2 => raw(200, "{not json", vec![]),
            3 => good(r, 2),
            4 => Action::Stall(Duration::from_secs(3), "late".into()),
            5 => raw(200, r#"{"choices":[{"index":0}]}"#, vec![]),
            _ => good(r, 4),
        }
    })
    .await
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let c = client(&faulty);
    let first_run = sample_external(
        &c,
        Api::Completions,
        ChatTemplate::VicunaV11,
        &prompts,
        &spec,
        3,
        &out,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!((first_run.sampled_prompts, first_run.failures), (11, 1));
    assert!(c.usage().retries >= 6, "{:?}", c.usage());
    let failures = std::fs::read_to_string(xwin_rs::failures_path(&out)).unwrap();
    assert!(
        failures.contains("\"p7\"") && failures.contains("3 choices for n = 4"),
        "{failures}"
    );
    assert!(!records(&out).contains_key("p7"), "no short record");

    fixed.store(true, Ordering::SeqCst);
    let rerun = sample_external(
        &c,
        Api::Completions,
        ChatTemplate::VicunaV11,
        &prompts,
        &spec,
        3,
        &out,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        (rerun.already_done, rerun.sampled_prompts, rerun.failures),
        (11, 1, 0)
    );
    assert_eq!(records(&out), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_api_pairs_and_a_refusing_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = prompts(dir.path());
    let server = TestServer::start(Duration::ZERO, move |r| {
        assert!(r.body.get("messages").is_some());
        good(r, r.body["n"].as_u64().unwrap() as usize)
    })
    .await
    .unwrap();
    let out = dir.path().join("pairs.jsonl");
    let spec = SampleSpec::pairs(16, 0);
    let summary = sample_external(
        &client(&server),
        Api::Chat,
        ChatTemplate::VicunaV11,
        &prompts[..3],
        &spec,
        2,
        &out,
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.sampled_prompts, 3);
    let (pairs, _) = xwin_annotate::read_pair_inputs(&out, ReadOptions::default()).unwrap();
    assert_eq!(pairs.len(), 3);
    assert!(
        pairs
            .iter()
            .all(|p| p.response_a.ends_with("at 0.7") && p.response_b.ends_with("at 0.3"))
    );

    // 401: every request would fail the same way; the run stops and says so.
    let refusing = TestServer::start(Duration::ZERO, |_| Action::Raw {
        status: 401,
        body: "bad key".into(),
        headers: vec![],
    })
    .await
    .unwrap();
    let err = sample_external(
        &client(&refusing),
        Api::Completions,
        ChatTemplate::VicunaV11,
        &prompts,
        &spec,
        2,
        &dir.path().join("x.jsonl"),
        |_| {},
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("HTTP 401"), "{err}");
}
