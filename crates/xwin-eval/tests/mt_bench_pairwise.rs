//! MT-bench pairwise grading against a baseline: both orders asked, verdicts mapped back to
//! model_1 / model_2, FastChat's pair file written and aggregated as `show_result` does,
//! resumable.

use std::time::Duration;
use xwin_annotate::{ChatClient, EndpointConfig};
use xwin_eval::mt_bench_pairwise::{grade_pairwise, pair_verdict};
use xwin_eval::mt_bench_protocol::{
    Grader, ModelAnswer, Question, read_answer_turns, read_jsonl, read_judge_prompts,
};
use xwin_eval::{PairwiseJudgment, pairwise_scores, read_judgments};
use xwin_testkit::shared_data;
use xwin_testkit::test_server::{Action, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_orders_against_the_baseline() {
    let Some(qpath) = shared_data("data/mt_bench/question.jsonl") else {
        return;
    };
    let ids = [81i64, 82, 111, 131];
    let questions: Vec<Question> = read_jsonl::<Question>(&qpath)
        .unwrap()
        .into_iter()
        .filter(|q| ids.contains(&q.question_id))
        .collect();
    let baseline: Vec<ModelAnswer> = read_jsonl::<ModelAnswer>(
        &shared_data("data/mt_bench/model_answer/gpt-3.5-turbo.jsonl").unwrap(),
    )
    .unwrap()
    .into_iter()
    .filter(|a| ids.contains(&a.question_id))
    .collect();
    // Our "model": the baseline's answers cut to their first sentence (shorter).
    let answers: Vec<ModelAnswer> = baseline
        .iter()
        .map(|a| {
            let mut m = a.clone();
            m.model_id = "short".into();
            for t in &mut m.choices[0].turns {
                *t = t.split('.').next().unwrap_or("").to_string();
            }
            m
        })
        .collect();
    let refs =
        read_answer_turns(&shared_data("data/mt_bench/reference_answer_gpt-4.jsonl").unwrap())
            .unwrap();
    let prompts =
        read_judge_prompts(&shared_data("data/mt_bench/judge_prompts.jsonl").unwrap()).unwrap();
    // The judge prefers the longer of the two answers shown (ties: [[C]]).
    let server = TestServer::start(Duration::ZERO, |r| {
        let user = r.user();
        let section = |who: &str| {
            let start = user
                .find(&format!("Start of Assistant {who}'s"))
                .unwrap_or(0);
            let end = user
                .find(&format!("End of Assistant {who}'s"))
                .unwrap_or(start);
            end.saturating_sub(start)
        };
        let (a, b) = (section("A"), section("B"));
        Action::Reply(match a.cmp(&b) {
            std::cmp::Ordering::Greater => "A is longer. [[A]]".into(),
            std::cmp::Ordering::Less => "B is longer. [[B]]".into(),
            std::cmp::Ordering::Equal => "Same. [[C]]".into(),
        })
    })
    .await
    .unwrap();
    let grader = Grader::Llm {
        client: Box::new(ChatClient::new(EndpointConfig::new(server.base_url(), "gpt-4")).unwrap()),
        prompts,
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model_judgment/gpt-4_pair.jsonl");
    let records = grade_pairwise(&grader, &questions, &answers, &baseline, &refs, &out, 4)
        .await
        .unwrap();
    assert_eq!(records.len(), 8);
    assert_eq!(server.requests(), 16, "both orders of every turn");
    assert!(
        records
            .iter()
            .all(|r| r.model_1 == "short" && r.model_2 == "gpt-3.5-turbo")
    );
    // Where the cut changed the answer, the baseline wins in both orders; where it did not
    // (one-sentence answers), both orders say tie.
    for r in &records {
        let same = r.g1_judgment.contains("[[C]]");
        let want = if same {
            ("tie", "tie")
        } else {
            ("model_2", "model_2")
        };
        assert_eq!(
            (r.g1_winner.as_str(), r.g2_winner.as_str()),
            want,
            "question {} turn {}",
            r.question_id,
            r.turn
        );
    }
    let ties = records.iter().filter(|r| r.g1_winner == "tie").count();
    assert!(
        records
            .iter()
            .any(|r| r.judge.1 == "pair-math-v1-multi-turn")
    );
    let judgments: Vec<PairwiseJudgment> = read_judgments(&out, None).unwrap();
    let scores = pairwise_scores(&judgments, Some("gpt-3.5-turbo"));
    assert_eq!(
        (
            scores["short"].win,
            scores["short"].loss,
            scores["short"].tie
        ),
        (0, 8 - ties, ties)
    );
    // Resumable: nothing asked again.
    grade_pairwise(&grader, &questions, &answers, &baseline, &refs, &out, 4)
        .await
        .unwrap();
    assert_eq!(server.requests(), 16);
    assert_eq!(pair_verdict("tie [[C]]"), "tie");
    assert_eq!(pair_verdict("no idea"), "error");
}
