//! AlpacaEval 2's weighted judge: our preference from the first token's log-probabilities
//! equals the recorded preference of every real GPT-4-turbo annotation in `../shared` (as
//! shown or swapped, since alpaca_eval does not record its order), and a run against an
//! OpenAI-compatible server that returns log-probabilities unswitches its seeded order,
//! retries a malformed reply, resumes, and writes alpaca_eval's annotations.

use serde_json::{Value, json};
use std::time::Duration;
use xwin_annotate::{ChatClient, EndpointConfig};
use xwin_eval::{AlpacaOutput, WeightedVerdict, judge_weighted};
use xwin_testkit::shared_data;
use xwin_testkit::test_server::{Action, TestServer};

#[test]
fn recorded_preferences_follow_from_the_logprobs() {
    let Some(path) = shared_data(
        "data/alpaca_eval/annotations/weighted_alpaca_eval_gpt4_turbo__text_davinci_003.json",
    ) else {
        return;
    };
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut checked = 0;
    for row in &rows {
        let top = &row["raw_completion"]["logprobs"]["content"][0]["top_logprobs"];
        if top.is_null() {
            continue;
        }
        let p_m = xwin_annotate::parse::logprob_preference(top, "m").unwrap();
        let shown = 2.0 - p_m; // alpaca_eval's logprob_parser
        let recorded = row["preference"].as_f64().unwrap();
        assert!(
            (recorded - shown).abs() < 1e-6 || (recorded - (3.0 - shown)).abs() < 1e-6,
            "{recorded} vs {shown}"
        );
        checked += 1;
    }
    assert_eq!(checked, 801);
}

fn logprob_reply(p_m: f64) -> Action {
    let top = json!([{"token": "m", "logprob": p_m.ln()}, {"token": "M", "logprob": (1.0 - p_m).ln()},
                     {"token": "Both", "logprob": -20.0}]);
    Action::Raw {
        status: 200,
        body: json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "m"},
                     "logprobs": {"content": [{"token": "m", "logprob": p_m.ln(), "top_logprobs": top}]}}],
                     "usage": {"prompt_tokens": 100, "completion_tokens": 1}})
        .to_string(),
        headers: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_run_unswitches_and_resumes() {
    let reference: Vec<AlpacaOutput> = (0..10)
        .map(|i| AlpacaOutput {
            instruction: format!("Q{i}"),
            output: format!("reference {i}"),
            generator: "ref".into(),
            dataset: None,
        })
        .collect();
    let outputs: Vec<AlpacaOutput> = reference
        .iter()
        .map(|r| AlpacaOutput {
            output: format!("model answer to {}", r.instruction),
            generator: "mine".into(),
            ..r.clone()
        })
        .collect();
    // The judge likes the model's answer: P(first shown is better) = 0.9 when it comes
    // first, 0.1 when the reference does. The first reply is malformed (retried).
    let server = TestServer::start(Duration::ZERO, |r| {
        if r.index == 0 {
            return Action::Raw {
                status: 200,
                body: "{\"choices\": []}".into(),
                headers: vec![],
            };
        }
        assert_eq!(r.body["logprobs"], true);
        assert_eq!(r.body["max_tokens"], 1);
        let user = r.user().to_string();
        let first = user.split("\"output\": \"\"\"").nth(1).unwrap_or("");
        logprob_reply(if first.starts_with("model answer") {
            0.9
        } else {
            0.1
        })
    })
    .await
    .unwrap();
    let client = ChatClient::new(EndpointConfig {
        backoff_s: 0.01,
        ..EndpointConfig::new(server.base_url(), "gpt-4-turbo")
    })
    .unwrap();
    let template = "<|im_start|>system\nJudge.\n<|im_end|>\n<|im_start|>user\n{instruction}\n\"output\": \"\"\"{output_1}\"\"\"\n\"output\": \"\"\"{output_2}\"\"\"\nm or M?\n<|im_end|>";
    let dir = tempfile::tempdir().unwrap();
    let annotations = judge_weighted(&client, template, &outputs, &reference, dir.path(), 3, 4)
        .await
        .unwrap();
    assert_eq!(annotations.len(), 10);
    for a in &annotations {
        // Model better with probability 0.9 whichever way it was shown: preference 1.9.
        assert!((a.preference.unwrap() - 1.9).abs() < 1e-9, "{a:?}");
        assert_eq!(
            (a.generator_1.as_str(), a.generator_2.as_str()),
            ("ref", "mine")
        );
    }
    let verdicts: Vec<WeightedVerdict> =
        std::fs::read_to_string(dir.path().join("weighted-judgments.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let switched = verdicts.iter().filter(|v| v.switched).count();
    assert!(
        switched > 0 && switched < 10,
        "both orders shown: {switched}"
    );
    let requests = server.requests();
    let again = judge_weighted(&client, template, &outputs, &reference, dir.path(), 3, 4)
        .await
        .unwrap();
    assert_eq!((again, server.requests()), (annotations, requests));
}
