//! Judge throughput: the real client, parser and resumable writer against the local
//! OpenAI-compatible server with a fixed reply latency. The ideal is concurrency / latency.

use crate::median;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use xwin_annotate::{
    AnnotateOptions, ChatClient, EndpointConfig, LlmJudge, PairInput, PromptTemplate,
    VerdictFormat, annotate_pairs,
};
use xwin_data::{Conversation, Turn};
use xwin_testkit::test_server::{Action, TestServer};

/// Judges `items` pairs `repeats` times; JSON with the median judgments/s and the ideal.
pub fn judge_throughput(
    items: usize,
    concurrency: usize,
    latency_ms: u64,
    repeats: usize,
) -> Value {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(async {
        let server = TestServer::start(Duration::from_millis(latency_ms), |_| {
            Action::Reply(
                "Both are fine; B is more specific.\n[[B]]\nRating: [[slightly better]]".into(),
            )
        })
        .await
        .expect("server");
        let inputs: Vec<PairInput> = (0..items)
            .map(|i| PairInput {
                id: Some(format!("bench-{i}")),
                prompt: Conversation::new(vec![Turn::human(format!("Question number {i}?"))]),
                response_a: format!("A short answer to question {i}."),
                response_b: format!(
                    "A longer and more specific answer to question {i}, with detail."
                ),
                reference: None,
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("xwin-bench-judge-{}", std::process::id()));
        let mut rates = Vec::new();
        for r in 0..repeats {
            let out = dir.join(format!("run-{r}.jsonl"));
            let judge = LlmJudge::new(
                ChatClient::new(EndpointConfig::new(server.base_url(), "bench-judge"))
                    .expect("client"),
                VerdictFormat::Xwin,
                PromptTemplate::builtin("xwin-pairwise").expect("template"),
                PromptTemplate::builtin("mt-bench-single").expect("template"),
            );
            let options = AnnotateOptions {
                concurrency,
                seed: r as u64,
                both_orders: false,
            };
            let started = Instant::now();
            let summary = annotate_pairs(&judge, &inputs, &out, options, |_| {})
                .await
                .expect("annotate");
            let seconds = started.elapsed().as_secs_f64();
            assert_eq!(summary.judged, items, "every item judged");
            rates.push(items as f64 / seconds);
        }
        let _ = std::fs::remove_dir_all(&dir);
        let ideal = concurrency as f64 / (latency_ms as f64 / 1000.0);
        let rate = median(rates);
        json!({
            "items": items, "concurrency": concurrency, "latency_ms": latency_ms,
            "judgments_per_s": rate, "ideal_per_s": ideal, "fraction_of_ideal": rate / ideal,
        })
    })
}
