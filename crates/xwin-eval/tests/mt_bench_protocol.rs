//! The MT-bench protocol against FastChat's own records: our rendering of the judge prompts
//! reproduces every `user_prompt` of the real GPT-4 judgments in `../shared` and our rating
//! parser every `score`; end to end, the tiny policy answers two turns at FastChat's
//! temperatures, a judge behind an OpenAI-compatible server grades them, and the judgments in
//! FastChat's format aggregate like `show_result`; a rerun judges nothing again.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;
use xwin_annotate::{ChatClient, EndpointConfig};
use xwin_data::ChatTemplate;
use xwin_eval::mt_bench_protocol::*;
use xwin_eval::{SingleJudgment, read_judgments, single_scores};
use xwin_testkit::shared_data;
use xwin_testkit::test_server::{Action, TestServer};

fn references(path: &std::path::Path) -> HashMap<i64, Vec<String>> {
    read_answer_turns(path).unwrap()
}

fn tiny_policy() -> xwin_rs::LocalPolicy {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama");
    xwin_rs::LocalPolicy::load(&dir, "cpu", ChatTemplate::VicunaV11).unwrap()
}

#[test]
fn prompts_and_ratings_equal_fastchats_records() {
    let Some(judgments) = shared_data("data/mt_bench/model_judgment/gpt-4_single.jsonl") else {
        return;
    };
    let questions: Vec<Question> =
        read_jsonl(&shared_data("data/mt_bench/question.jsonl").unwrap()).unwrap();
    let prompts =
        read_judge_prompts(&shared_data("data/mt_bench/judge_prompts.jsonl").unwrap()).unwrap();
    let refs = references(&shared_data("data/mt_bench/reference_answer_gpt-4.jsonl").unwrap());
    let answers: HashMap<i64, Vec<String>> =
        references(&shared_data("data/mt_bench/model_answer/phi-3-dpo.jsonl").unwrap());
    let records: Vec<SingleRecord> = read_jsonl(&judgments).unwrap();
    assert_eq!(records.len(), 160);
    for r in &records {
        let q = questions
            .iter()
            .find(|q| q.question_id == r.question_id)
            .unwrap();
        let reference = needs_reference(&q.category).then(|| refs[&q.question_id].as_slice());
        let prompt = &prompts[&r.judge.1];
        let ours = single_user_prompt(prompt, q, &answers[&q.question_id], reference, r.turn);
        assert_eq!(
            ours, r.user_prompt,
            "question {} turn {}",
            r.question_id, r.turn
        );
        assert_eq!(
            fastchat_rating(&r.judgment),
            r.score,
            "question {} turn {}",
            r.question_id,
            r.turn
        );
        let expected = match (reference.is_some(), r.turn) {
            (false, 1) => "single-v1",
            (false, _) => "single-v1-multi-turn",
            (true, 1) => "single-math-v1",
            (true, _) => "single-math-v1-multi-turn",
        };
        assert_eq!(r.judge.1, expected);
    }
    assert_eq!(fastchat_rating("no rating here"), -1.0);
    assert_eq!(fastchat_rating("Rating: [7.5] and [[8]]"), 8.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiny_policy_end_to_end_with_a_judge_over_http() {
    let Some(question_path) = shared_data("data/mt_bench/question.jsonl") else {
        return;
    };
    let all: Vec<Question> = read_jsonl(&question_path).unwrap();
    // Two writing (0.7), one stem (0.1), one math (0.0, graded against the reference).
    let pick = [81, 82, 131, 111];
    let questions: Vec<Question> = pick
        .iter()
        .map(|id| all.iter().find(|q| q.question_id == *id).unwrap().clone())
        .collect();
    assert_eq!(temperature_for(&questions[0].category), 0.7);
    let dir = tempfile::tempdir().unwrap();
    let policy = tiny_policy();
    let sampler = policy.sampler("tiny".into());
    let (answers, path) = generate_answers(&sampler, &questions, 8, 0, "tiny", dir.path()).unwrap();
    assert!(path.ends_with("model_answer/tiny.jsonl"));
    let back: Vec<ModelAnswer> = read_jsonl(&path).unwrap();
    // Timestamps are compared apart: a float read back may differ in its last bit.
    let strip = |v: &[ModelAnswer]| -> Vec<ModelAnswer> {
        v.iter()
            .map(|a| ModelAnswer {
                tstamp: 0.0,
                ..a.clone()
            })
            .collect()
    };
    assert_eq!(strip(&back), strip(&answers));
    assert!(
        back.iter()
            .zip(&answers)
            .all(|(b, a)| (b.tstamp - a.tstamp).abs() < 1e-3)
    );
    assert!(answers.iter().all(|a| a.choices[0].turns.len() == 2));

    let prompts =
        read_judge_prompts(&shared_data("data/mt_bench/judge_prompts.jsonl").unwrap()).unwrap();
    let refs = references(&shared_data("data/mt_bench/reference_answer_gpt-4.jsonl").unwrap());
    // The judge rates 7, except that one reply has no rating (recorded as −1, excluded).
    let server = TestServer::start(Duration::ZERO, |r| {
        if r.index == 3 {
            Action::Reply("I cannot decide.".into())
        } else {
            Action::Reply("Fine answer. Rating: [[7]]".into())
        }
    })
    .await
    .unwrap();
    let client = ChatClient::new(EndpointConfig::new(server.base_url(), "gpt-4")).unwrap();
    let grader = Grader::Llm {
        client: Box::new(client),
        prompts,
    };
    let out = dir.path().join("model_judgment/gpt-4_single.jsonl");
    let records = grade_single(&grader, &questions, &answers, &refs, &out, 3)
        .await
        .unwrap();
    assert_eq!(records.len(), 8);
    assert_eq!(server.requests(), 8);
    assert_eq!(records.iter().filter(|r| r.score == -1.0).count(), 1);
    assert!(
        records
            .iter()
            .any(|r| r.judge.1 == "single-math-v1-multi-turn"
                && r.user_prompt.contains("Reference Answer"))
    );
    // FastChat's aggregation of what we wrote.
    let read: Vec<SingleJudgment> = read_judgments(&out, None).unwrap();
    let scores = single_scores(&read);
    assert_eq!(
        (
            scores["tiny"].overall,
            scores["tiny"].n_ratings,
            scores["tiny"].n_unrated
        ),
        (7.0, 7, 1)
    );
    // A rerun judges nothing again.
    let again = grade_single(&grader, &questions, &answers, &refs, &out, 3)
        .await
        .unwrap();
    assert_eq!((again.len(), server.requests()), (8, 8));
}

/// Two policies answering into the same directory each get their own answers.
#[test]
fn two_policies_in_one_directory_keep_their_own_answers() {
    let Some(question_path) = shared_data("data/mt_bench/question.jsonl") else {
        return;
    };
    let questions: Vec<Question> = read_jsonl::<Question>(&question_path)
        .unwrap()
        .into_iter()
        .take(2)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let policy = tiny_policy();
    let sampler = |name: &str| policy.sampler(name.into());
    let (a, _) = generate_answers(&sampler("a"), &questions, 8, 1, "a", dir.path()).unwrap();
    let (b, _) = generate_answers(&sampler("b"), &questions, 8, 2, "b", dir.path()).unwrap();
    assert_ne!(
        a.iter().map(|x| &x.choices[0].turns).collect::<Vec<_>>(),
        b.iter().map(|x| &x.choices[0].turns).collect::<Vec<_>>(),
        "the second policy (another seed) must not reuse the first one's samples"
    );
}
