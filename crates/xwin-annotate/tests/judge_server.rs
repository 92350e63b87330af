//! The judge against a real OpenAI-compatible HTTP server on 127.0.0.1, scripted to return
//! good replies, garbage, 429 with Retry-After, 500s and stalls.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use xwin_annotate::{
    AnnotateOptions, ChatClient, EndpointConfig, FailureRecord, LlmJudge, PairInput,
    PromptTemplate, VerdictFormat, annotate_pairs, failures_path,
};
use xwin_data::{Conversation, Turn, Winner, XwinPair};
use xwin_testkit::test_server::{Action, Request, TestServer};

/// Items whose better response contains "GOOD"; in odd items it is response B.
fn inputs(n: usize) -> Vec<PairInput> {
    (0..n)
        .map(|i| {
            let (good, bad) = (format!("GOOD answer {i}"), format!("weak answer {i}"));
            let (a, b) = if i % 2 == 0 { (good, bad) } else { (bad, good) };
            PairInput {
                id: Some(format!("item-{i}")),
                prompt: Conversation::new(vec![Turn::human(format!("question {i}"))]),
                response_a: a,
                response_b: b,
                reference: None,
            }
        })
        .collect()
}

/// A judge that reads the prompt and prefers the answer containing GOOD.
fn verdict(req: &Request) -> String {
    let user = req.user();
    let a_start = user
        .find("[The Start of Assistant A's Answer]")
        .unwrap_or(0);
    let b_start = user
        .find("[The Start of Assistant B's Answer]")
        .unwrap_or(0);
    let good = user.find("GOOD").unwrap_or(0);
    let letter = if good > a_start && good < b_start {
        "A"
    } else {
        "B"
    };
    format!(
        "Assistant {letter} answers the question; the other is weak.\n[[{letter}]]\nRating: [[slightly better]]"
    )
}

/// An Xwin-format judge on `server`, with short backoff and timeout, adjusted by `tweak`.
fn judge(server: &TestServer, tweak: impl FnOnce(&mut EndpointConfig)) -> LlmJudge {
    judge_with(server, VerdictFormat::Xwin, "xwin-pairwise", tweak)
}

fn judge_with(
    server: &TestServer,
    format: VerdictFormat,
    pair_template: &str,
    tweak: impl FnOnce(&mut EndpointConfig),
) -> LlmJudge {
    let mut config = EndpointConfig::new(server.base_url(), "gpt-4-test");
    config.backoff_s = 0.05;
    config.timeout_s = 5.0;
    tweak(&mut config);
    LlmJudge::new(
        ChatClient::new(config).unwrap(),
        format,
        PromptTemplate::builtin(pair_template).unwrap(),
        PromptTemplate::builtin("mt-bench-single").unwrap(),
    )
}

/// A server whose judge prefers the answer containing GOOD, replying at once.
async fn good_server() -> TestServer {
    TestServer::start(Duration::ZERO, |r| Action::Reply(verdict(r)))
        .await
        .unwrap()
}

/// Wall time of judging `n` items with default options into a file in `dir`.
async fn time_run(judge: &LlmJudge, n: usize, dir: &std::path::Path) -> Duration {
    let started = Instant::now();
    let out = dir.join("p.jsonl");
    annotate_pairs(judge, &inputs(n), &out, AnnotateOptions::default(), |_| {})
        .await
        .unwrap();
    started.elapsed()
}

/// One request at a time, so that the server sees them in item order.
fn one_at_a_time() -> AnnotateOptions {
    AnnotateOptions {
        concurrency: 1,
        ..Default::default()
    }
}

fn read<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Vec<T> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_map_back_through_the_random_order() {
    let server = good_server().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let items = inputs(40);
    let summary = annotate_pairs(
        &judge(&server, |_| {}),
        &items,
        &out,
        AnnotateOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(summary.judged, 40);
    assert_eq!(summary.by_rating["slightly"], 40);
    let pairs: Vec<XwinPair> = read(&out);
    assert_eq!(pairs.len(), 40);
    for p in &pairs {
        assert!(p.chosen().starts_with("GOOD"), "{p:?}");
        assert_eq!(p.judge.model, "gpt-4-test");
        assert_eq!(p.judge.template, "xwin-pairwise");
        assert!(p.reason.contains("answers the question"), "{}", p.reason);
    }
    // Both orders were shown (seeded), and the order is recorded.
    let swapped = pairs
        .iter()
        .filter(|p| p.shown_order == [Winner::B, Winner::A])
        .count();
    assert!((8..=32).contains(&swapped), "{swapped} of 40 shown B first");
    // Usage is counted from the server's usage fields.
    assert_eq!(summary.usage.requests, 40);
    assert!(summary.usage.prompt_tokens > 0 && summary.usage.completion_tokens > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_is_retried_then_recorded_as_a_failure_with_the_raw_text() {
    // item-0: garbage once, then a verdict; item-1: garbage always.
    let server = TestServer::start(Duration::ZERO, |r| {
        if r.user().contains("question 1\n") {
            return Action::Reply("I cannot decide.".into());
        }
        if r.index == 0 {
            Action::Reply("The first is fine I guess".into())
        } else {
            Action::Reply(verdict(r))
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let options = one_at_a_time();
    let summary = annotate_pairs(&judge(&server, |_| {}), &inputs(2), &out, options, |_| {})
        .await
        .unwrap();
    assert_eq!(summary.judged, 1);
    assert_eq!(summary.failures, 1);
    let failures: Vec<FailureRecord> = read(&failures_path(&out));
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].id, "item-1");
    assert_eq!(failures[0].kind, "failure");
    assert_eq!(
        failures[0].raw,
        vec!["I cannot decide."; 3],
        "three attempts, kept verbatim"
    );
    assert!(
        failures[0].error.contains("unparseable"),
        "{}",
        failures[0].error
    );
    // 1 garbage + 1 good for item-0, 3 garbage for item-1.
    assert_eq!(server.requests(), 5);
    // A rerun retries the failure (still garbage) and does not redo item-0.
    let again = annotate_pairs(&judge(&server, |_| {}), &inputs(2), &out, options, |_| {})
        .await
        .unwrap();
    assert_eq!((again.already_done, again.failures), (1, 1));
    assert_eq!(read::<XwinPair>(&out).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_429_honours_retry_after_and_500_and_stalls_are_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = TestServer::start(Duration::ZERO, move |r| {
        match c.fetch_add(1, Ordering::SeqCst) {
            0 => Action::Raw {
                status: 429,
                body: r#"{"error":{"message":"rate limited","type":"rate_limit_error"}}"#.into(),
                headers: vec![("retry-after".into(), "1".into())],
            },
            1 => Action::Raw {
                status: 500,
                body: "oops".into(),
                headers: vec![],
            },
            2 => Action::Stall(Duration::from_secs(3), verdict(r)),
            3 => Action::Raw {
                status: 200,
                body: "{not json".into(),
                headers: vec![],
            },
            _ => Action::Reply(verdict(r)),
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let started = Instant::now();
    let j = judge(&server, |c| c.timeout_s = 0.5);
    let summary = annotate_pairs(&j, &inputs(1), &out, AnnotateOptions::default(), |_| {})
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary.judged, 1, "{summary:?}");
    assert_eq!(summary.usage.requests, 5);
    assert_eq!(summary.usage.retries, 4);
    // Retry-After: 1 was honoured (the backoff alone would be ~0.05–0.4 s in total).
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_stops_the_run_and_keeps_what_was_done() {
    let server = TestServer::start(Duration::ZERO, |r| {
        if r.index >= 3 {
            Action::Raw {
                status: 401,
                body: r#"{"error":{"message":"Incorrect API key"}}"#.into(),
                headers: vec![],
            }
        } else {
            Action::Reply(verdict(r))
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let options = one_at_a_time();
    // The key comes from the environment and is sent as a bearer token.
    unsafe { std::env::set_var("XWIN_TEST_JUDGE_KEY", "sk-test-secret") };
    let j = judge(&server, |c| {
        c.api_key_env = Some("XWIN_TEST_JUDGE_KEY".into())
    });
    let err = annotate_pairs(&j, &inputs(10), &out, options, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("401") && err.contains("Incorrect API key"),
        "{err}"
    );
    assert!(
        !err.contains("sk-test-secret"),
        "the key must never appear: {err}"
    );
    assert_eq!(
        read::<XwinPair>(&out).len(),
        3,
        "the three judged items are saved"
    );
    assert_eq!(server.requests(), 4, "no request after the 401");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_orders_turns_a_position_biased_judge_into_ties() {
    // Always "[[A]]": the verdict follows the position, not the answers.
    let server = TestServer::start(Duration::ZERO, |_| {
        Action::Reply("[[A]]\nRating: [[better]]".into())
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let options = AnnotateOptions {
        both_orders: true,
        ..Default::default()
    };
    let biased = server;
    let summary = annotate_pairs(&judge(&biased, |_| {}), &inputs(6), &out, options, |_| {})
        .await
        .unwrap();
    assert_eq!((summary.judged, summary.inconsistent), (0, 6));
    let records: Vec<FailureRecord> = read(&failures_path(&out));
    assert!(
        records
            .iter()
            .all(|r| r.kind == "inconsistent" && r.raw.len() == 2)
    );
    // A consistent judge keeps every verdict.
    let server = good_server().await;
    let out2 = dir.path().join("pairs2.jsonl");
    let summary = annotate_pairs(&judge(&server, |_| {}), &inputs(6), &out2, options, |_| {})
        .await
        .unwrap();
    assert_eq!((summary.judged, summary.inconsistent), (6, 0));
    assert_eq!(server.requests(), 12);
    // Inconsistent items are final: a rerun with the same judge does not ask again.
    let asked = biased.requests();
    let again = annotate_pairs(&judge(&biased, |_| {}), &inputs(6), &out, options, |_| {})
        .await
        .unwrap();
    assert_eq!(again.already_done, 6);
    assert_eq!(biased.requests(), asked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_minute_spaces_requests() {
    let server = good_server().await;
    let dir = tempfile::tempdir().unwrap();
    let j = judge(&server, |c| c.requests_per_minute = Some(600)); // one per 100 ms
    let elapsed = time_run(&j, 6, dir.path()).await;
    assert!(elapsed >= Duration::from_millis(480), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_resumes_without_losing_or_duplicating() {
    let server = TestServer::start(Duration::from_millis(20), |r| Action::Reply(verdict(r)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pairs.jsonl");
    let items = inputs(60);
    let options = AnnotateOptions {
        concurrency: 4,
        ..Default::default()
    };
    let j = judge(&server, |_| {});
    // Interrupt mid-run: the future is dropped with requests in flight.
    // 60 items at 4 in flight and 20 ms each need ≥ 300 ms: 200 ms cuts the run in the middle.
    let cut = tokio::time::timeout(
        Duration::from_millis(200),
        annotate_pairs(&j, &items, &out, options, |_| {}),
    )
    .await;
    assert!(cut.is_err(), "the run must still be going when interrupted");
    let before = read::<XwinPair>(&out).len();
    assert!(before > 0 && before < 60, "{before}");
    // And a torn last line, as a kill in the middle of a write leaves.
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(&out)
        .unwrap()
        .write_all(b"{\"id\":\"item-99\",\"prompt\":{\"conv")
        .unwrap();
    let summary = annotate_pairs(&j, &items, &out, options, |_| {})
        .await
        .unwrap();
    assert_eq!(summary.already_done, before);
    assert_eq!(summary.judged, 60 - before);
    let pairs: Vec<XwinPair> = read(&out);
    let mut ids: Vec<_> = pairs.iter().map(|p| p.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        (pairs.len(), ids.len()),
        (60, 60),
        "every item exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grading_and_the_mt_bench_and_alpaca_eval_formats_go_through_the_same_judge() {
    use xwin_annotate::{GradeQuery, Judge, PairQuery, Shown};
    let server = TestServer::start(Duration::ZERO, |r| {
        let user = r.user();
        Action::Reply(if user.contains("[The Start of Assistant's Answer]") {
            // single-v1: the grade depends on the answer.
            if user.contains("excellent") {
                "Thorough. Rating: [[9]]"
            } else {
                "Rating: [[3]]"
            }
            .into()
        } else if user.contains("\"model\": \"model_1\"") {
            "[{'model': 'model_2', 'rank': 1}, {'model': 'model_1', 'rank': 2}]".into()
        } else {
            "It is a tie. [[C]]".into()
        })
    })
    .await
    .unwrap();
    let j = judge_with(&server, VerdictFormat::MtBench, "mt-bench-pair", |_| {});
    let grade = |answer: &'static str| GradeQuery {
        question: "Explain rust",
        answer,
        reference: None,
    };
    assert_eq!(
        j.grade(grade("an excellent answer")).await.unwrap().score,
        9.0
    );
    assert_eq!(j.grade(grade("meh")).await.unwrap().score, 3.0);
    let q = PairQuery {
        question: "q",
        first: "x",
        second: "y",
        reference: None,
    };
    let tie = j.compare(q).await.unwrap();
    assert_eq!((tie.winner, tie.rating), (Shown::Tie, None));
    let alpaca = judge_with(&server, VerdictFormat::AlpacaRanking, "alpaca-eval", |_| {});
    assert_eq!(alpaca.compare(q).await.unwrap().winner, Shown::Second);
    // Formats without the four-level rating still annotate: the winner with `rating: null`,
    // a tie as a final item.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.jsonl");
    let tie = annotate_pairs(&j, &inputs(1), &out, AnnotateOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!((tie.judged, tie.ties), (0, 1));
    let out = dir.path().join("alpaca.jsonl");
    let won = annotate_pairs(
        &alpaca,
        &inputs(1),
        &out,
        AnnotateOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(won.judged, 1);
    let pairs: Vec<XwinPair> = read(&out);
    assert_eq!(pairs[0].rating, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_spaces_requests_by_their_size() {
    let server = good_server().await;
    let dir = tempfile::tempdir().unwrap();
    // Each request books ~(prompt chars / 4 + 64 max tokens) ≈ 300 tokens; at 60,000 tokens
    // per minute that is ~0.3 s per request, so 4 requests need ≥ 0.9 s.
    let j = judge(&server, |c| {
        c.tokens_per_minute = Some(60_000);
        c.max_tokens = 64;
    });
    let elapsed = time_run(&j, 4, dir.path()).await;
    assert!(elapsed >= Duration::from_millis(700), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

/// The resume key covers what decides a verdict: editing the prompt file, or changing
/// `max_tokens`, judges again; the same configuration skips what is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_template_or_max_tokens_judges_again() {
    let server = good_server().await;
    let dir = tempfile::tempdir().unwrap();
    let template_path = dir.path().join("my-judge.txt");
    let builtin = xwin_annotate::template::builtin::XWIN_PAIRWISE;
    std::fs::write(&template_path, builtin).unwrap();
    let with_file = |max_tokens: u32| {
        let mut config = EndpointConfig::new(server.base_url(), "gpt-4-test");
        config.max_tokens = max_tokens;
        LlmJudge::new(
            ChatClient::new(config).unwrap(),
            VerdictFormat::Xwin,
            PromptTemplate::resolve(template_path.to_str().unwrap()).unwrap(),
            PromptTemplate::builtin("mt-bench-single").unwrap(),
        )
    };
    let out = dir.path().join("pairs.jsonl");
    let run = |j: LlmJudge| {
        let out = out.clone();
        async move {
            annotate_pairs(&j, &inputs(4), &out, AnnotateOptions::default(), |_| {})
                .await
                .unwrap()
        }
    };
    assert_eq!(run(with_file(1024)).await.judged, 4);
    assert_eq!(
        run(with_file(1024)).await.already_done,
        4,
        "same config: nothing to do"
    );
    std::fs::write(&template_path, builtin.replace("helpful", "useful")).unwrap();
    assert_eq!(
        run(with_file(1024)).await.judged,
        4,
        "edited template: judged again"
    );
    assert_eq!(
        run(with_file(512)).await.judged,
        4,
        "other max_tokens: judged again"
    );
    assert_eq!(server.requests(), 12);
}

/// A plain-string `prompt` is a one-turn conversation; the file is judged as it streams;
/// a second run on the same output while the first holds it is refused, naming the holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_prompts_stream_and_one_run_per_output() {
    let server = good_server().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    let lines: String = (0..5)
        .map(|i| {
            let (a, b) = if i % 2 == 0 { ("GOOD", "weak") } else { ("weak", "GOOD") };
            format!(
                "{}\n",
                serde_json::json!({"prompt": format!("question {i}"), "response_a": a, "response_b": b})
            )
        })
        .collect();
    std::fs::write(&input, lines).unwrap();
    let out = dir.path().join("out.jsonl");
    let held = xwin_data::OutputLock::acquire(xwin_data::lock_path_for(&out, false)).unwrap();
    let run = || {
        let (judge, input, out) = (judge(&server, |_| {}), input.clone(), out.clone());
        async move {
            let plain = xwin_data::ReadOptions::default();
            let options = AnnotateOptions::default();
            xwin_annotate::annotate_file(&judge, &input, plain, &out, options, |_| {}).await
        }
    };
    let err = run().await.unwrap_err().to_string();
    assert!(
        err.contains("in use by another run") && err.contains("pid"),
        "{err}"
    );
    assert_eq!(
        server.requests(),
        0,
        "nothing judged while the output is held"
    );
    drop(held);
    let (summary, report) = run().await.unwrap();
    assert_eq!((summary.inputs, summary.judged, report.records), (5, 5, 5));
    let pairs: Vec<XwinPair> = read(&out);
    assert!(pairs.iter().all(|p| p.chosen() == "GOOD"));
    let mut prompts: Vec<&str> = pairs
        .iter()
        .map(|p| p.prompt.turns[0].value.as_str())
        .collect();
    prompts.sort();
    let want: Vec<String> = (0..5).map(|i| format!("question {i}")).collect();
    assert_eq!(prompts, want);
}
