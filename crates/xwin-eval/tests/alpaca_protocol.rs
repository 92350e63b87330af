//! The AlpacaEval protocol end to end on the tiny policy: outputs generated for the first
//! reference instructions, judged against the reference (the offline oracle, and an
//! OpenAI-compatible server speaking AlpacaEval 1's ranking format), written in alpaca_eval's
//! formats and read back as its loader reads them; judging resumes; bad outputs are named.

use std::path::{Path, PathBuf};
use std::time::Duration;
use xwin_annotate::{
    AnnotateOptions, ChatClient, EndpointConfig, LlmJudge, OracleJudge, PromptTemplate,
    VerdictFormat,
};
use xwin_data::ChatTemplate;
use xwin_eval::{AlpacaOutput, align_outputs, generate_outputs, judge_outputs, read_outputs};
use xwin_testkit::shared_data;
use xwin_testkit::test_server::{Action, TestServer};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference(n: usize) -> Option<Vec<AlpacaOutput>> {
    let path = shared_data("data/alpaca_eval/reference_text_davinci_003.json")?;
    let mut all = read_outputs(&path).unwrap();
    assert_eq!(all.len(), 805);
    all.truncate(n);
    Some(all)
}

fn generate(reference: &[AlpacaOutput], dir: &Path) -> Vec<AlpacaOutput> {
    let policy = xwin_rs::LocalPolicy::load(
        &root().join("fixtures/tiny-llama"),
        "cpu",
        ChatTemplate::VicunaV11,
    )
    .unwrap();
    let sampler = policy.sampler("tiny-policy".into());
    let spec = xwin_rs::SampleSpec {
        n: 1,
        temperature: 0.7,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 12,
        seed: 0,
        pair_temperatures: None,
    };
    generate_outputs(&sampler, reference, &spec, dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_run_writes_official_formats_and_resumes() {
    let Some(reference) = reference(12) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let outputs = generate(&reference, dir.path());
    assert_eq!(outputs.len(), 12);
    assert!(outputs.iter().all(|o| o.generator == "tiny-policy"));
    let options = AnnotateOptions {
        concurrency: 4,
        seed: 7,
        both_orders: false,
    };
    let run = judge_outputs(&OracleJudge, &outputs, &reference, dir.path(), options)
        .await
        .unwrap();
    assert_eq!(
        run.judging.as_ref().unwrap().judged + run.judging.as_ref().unwrap().ties,
        12
    );
    // alpaca_eval reads a JSON list with these keys; our scorer reads the file back.
    let text = std::fs::read_to_string(&run.annotations).unwrap();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for (row, r) in rows.iter().zip(&reference) {
        assert_eq!(row["instruction"], r.instruction.as_str());
        assert_eq!(row["output_1"], r.output.as_str());
        assert_eq!(row["generator_1"], "text_davinci_003");
        assert_eq!(row["generator_2"], "tiny-policy");
        let p = row["preference"].as_f64().unwrap();
        assert!(p == 1.0 || p == 1.5 || p == 2.0);
    }
    let again = xwin_eval::score_file(&run.annotations).unwrap();
    assert_eq!(again, run.score);
    assert_eq!(read_outputs(&run.model_outputs).unwrap(), outputs);
    // The oracle prefers the long reference answers to 12-token outputs.
    assert!(run.score.win_rate < 50.0, "{:?}", run.score);
    // A rerun judges nothing again.
    let rerun = judge_outputs(&OracleJudge, &outputs, &reference, dir.path(), options)
        .await
        .unwrap();
    assert_eq!(rerun.judging.unwrap().already_done, 12);
    assert_eq!(rerun.score, run.score);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alpaca_eval_1_judge_over_http() {
    let Some(reference) = reference(6) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let outputs: Vec<AlpacaOutput> = reference
        .iter()
        .map(|r| AlpacaOutput {
            output: format!("{} Also, more.", r.output),
            generator: "longer".into(),
            ..r.clone()
        })
        .collect();
    // The judge ranks the longer output first, in AlpacaEval 1's reply format; one reply is
    // garbage (retried by the judge), the rest parse.
    let server = TestServer::start(Duration::ZERO, |r| {
        let user = r.user();
        if r.index == 0 {
            return Action::Reply("no idea".into());
        }
        let (first, second) = split_outputs(user);
        let winner = if first.len() >= second.len() {
            "model_1"
        } else {
            "model_2"
        };
        let loser = if winner == "model_1" {
            "model_2"
        } else {
            "model_1"
        };
        Action::Reply(format!(
            "[{{'model': '{winner}', 'rank': 1}}, {{'model': '{loser}', 'rank': 2}}]"
        ))
    })
    .await
    .unwrap();
    let client = ChatClient::new(EndpointConfig {
        backoff_s: 0.01,
        ..EndpointConfig::new(server.base_url(), "gpt-4")
    })
    .unwrap();
    let judge = LlmJudge::new(
        client,
        VerdictFormat::AlpacaRanking,
        PromptTemplate::builtin("alpaca-eval").unwrap(),
        PromptTemplate::builtin("mt-bench-single").unwrap(),
    );
    let options = AnnotateOptions {
        concurrency: 2,
        seed: 1,
        both_orders: false,
    };
    let run = judge_outputs(&judge, &outputs, &reference, dir.path(), options)
        .await
        .unwrap();
    assert_eq!(run.score.n_total, 6);
    assert_eq!(run.score.win_rate, 100.0, "{:?}", run.score);
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&run.annotations).unwrap()).unwrap();
    assert!(rows.iter().all(|r| r["annotator"] == "gpt-4"));
}

/// The two answers in an AlpacaEval 1 prompt, in the order shown.
fn split_outputs(user: &str) -> (String, String) {
    let answers: Vec<&str> = user
        .split("\"answer\": \"\"\"")
        .skip(1)
        .map(|rest| rest.split("\"\"\"").next().unwrap_or(""))
        .collect();
    (answers[0].to_string(), answers[1].to_string())
}

#[test]
fn outputs_are_checked_against_the_reference() {
    let reference: Vec<AlpacaOutput> = (0..3)
        .map(|i| AlpacaOutput {
            instruction: format!("Q{i}"),
            output: "ref".into(),
            generator: "r".into(),
            dataset: None,
        })
        .collect();
    let origin = Path::new("outputs.json");
    let mut missing = reference.clone();
    missing.pop();
    let err = align_outputs(&missing, &reference, origin)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("outputs.json") && err.contains("no output for the instruction \"Q2\""),
        "{err}"
    );
    let mut twice = reference.clone();
    twice.push(reference[0].clone());
    let err = align_outputs(&twice, &reference, origin)
        .unwrap_err()
        .to_string();
    assert!(err.contains("given twice: \"Q0\""), "{err}");
    let mut reversed = reference.clone();
    reversed.reverse();
    assert_eq!(
        align_outputs(&reversed, &reference, origin).unwrap(),
        reference
    );
}
