//! MT-bench pairwise grading against a baseline's answers, as FastChat's `gen_judgment.py
//! --mode pairwise-baseline` runs it: each turn judged twice with the answers in both orders
//! (`pair-v2`, `pair-math-v1` with the reference for math, reasoning and coding, and their
//! multi-turn variants for turn 2), the verdict read as `[[A]]` / `[[B]]` / `[[C]]` (tie) or
//! `error`, mapped back to `model_1` / `model_2`, written as `model_judgment/<judge>_pair.jsonl`
//! (the aggregates then follow `show_result`: disagreeing orders are a tie).

use crate::EvalError;
use crate::mt_bench_protocol::{
    Grader, JudgePrompt, JudgmentFile, ModelAnswer, Question, append_all, fill, get,
    judge_prompt_name, now, open_judgments, question_and_reference,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// A line of `model_judgment/<judge>_pair.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRecord {
    pub question_id: i64,
    pub model_1: String,
    pub model_2: String,
    pub g1_winner: String,
    pub g2_winner: String,
    pub judge: (String, String),
    pub g1_user_prompt: String,
    pub g1_judgment: String,
    pub g2_user_prompt: String,
    pub g2_judgment: String,
    pub turn: u32,
    pub tstamp: f64,
}

/// The user prompt FastChat's `run_judge_pair` sends with `a` shown as assistant A.
pub fn pair_user_prompt(
    prompt: &JudgePrompt,
    q: &Question,
    a: &[String],
    b: &[String],
    reference: Option<&[String]>,
    turn: u32,
) -> String {
    let r = |i| reference.map_or("", |r| get(r, i));
    let values: Vec<(&str, &str)> = if turn == 1 {
        vec![
            ("question", get(&q.turns, 0)),
            ("answer_a", get(a, 0)),
            ("answer_b", get(b, 0)),
            ("ref_answer_1", r(0)),
        ]
    } else {
        vec![
            ("question_1", get(&q.turns, 0)),
            ("question_2", get(&q.turns, 1)),
            ("answer_a_1", get(a, 0)),
            ("answer_b_1", get(b, 0)),
            ("answer_a_2", get(a, 1)),
            ("answer_b_2", get(b, 1)),
            ("ref_answer_1", r(0)),
            ("ref_answer_2", r(1)),
        ]
    };
    fill(&prompt.prompt_template, &values)
}

/// FastChat's pairwise verdict: `A`, `B`, `tie` (`[[C]]`) or `error`, checked in that order.
pub fn pair_verdict(judgment: &str) -> &'static str {
    if judgment.contains("[[A]]") {
        "A"
    } else if judgment.contains("[[B]]") {
        "B"
    } else if judgment.contains("[[C]]") {
        "tie"
    } else {
        "error"
    }
}

/// Asks for one order's verdict: (user prompt, judgment, A/B/tie/error).
async fn judge_once(
    grader: &Grader,
    name: &str,
    q: &Question,
    a: &[String],
    b: &[String],
    reference: Option<&[String]>,
    turn: u32,
) -> Result<(String, String, &'static str), EvalError> {
    match grader {
        Grader::Oracle => {
            let t = (turn - 1) as usize;
            let r = reference.map(|r| get(r, t));
            let (sa, sb) = (
                xwin_annotate::OracleJudge::score(get(a, t), r),
                xwin_annotate::OracleJudge::score(get(b, t), r),
            );
            let tag = if sa > sb {
                "[[A]]"
            } else if sb > sa {
                "[[B]]"
            } else {
                "[[C]]"
            };
            Ok((String::new(), tag.to_string(), pair_verdict(tag)))
        }
        Grader::Llm { client, prompts } => {
            let (user, judgment) = Grader::ask(client, prompts, name, q.question_id, turn, |p| {
                pair_user_prompt(p, q, a, b, reference, turn)
            })
            .await?;
            let verdict = pair_verdict(&judgment);
            Ok((user, judgment, verdict))
        }
    }
}

/// Grades every turn of `answers` against `baseline` in both orders, skipping what `out`
/// already holds (one run per file).
pub async fn grade_pairwise(
    grader: &Grader,
    questions: &[Question],
    answers: &[ModelAnswer],
    baseline: &[ModelAnswer],
    references: &HashMap<i64, Vec<String>>,
    out: &Path,
    concurrency: usize,
) -> Result<Vec<PairRecord>, EvalError> {
    let JudgmentFile {
        _lock,
        mut writer,
        done,
    } = open_judgments::<PairRecord>(out)?;
    let key = |q: i64, t: u32, m1: &str, m2: &str| format!("{q}/{t}/{m1}/{m2}");
    let seen: HashSet<String> = done
        .iter()
        .map(|r| key(r.question_id, r.turn, &r.model_1, &r.model_2))
        .collect();
    let base: HashMap<i64, &ModelAnswer> = baseline.iter().map(|a| (a.question_id, a)).collect();
    let by_id: HashMap<i64, &Question> = questions.iter().map(|q| (q.question_id, q)).collect();
    let mut jobs = Vec::new();
    for a in answers {
        let (q, reference) = question_and_reference(a, &by_id, references)?;
        let b = *base.get(&a.question_id).ok_or_else(|| EvalError::Input {
            path: format!("answers of {}", a.model_id),
            message: format!("question_id {}: the baseline has no answer", a.question_id),
        })?;
        let turns = q.turns.len().min(2) as u32;
        for turn in 1..=turns {
            if !seen.contains(&key(q.question_id, turn, &a.model_id, &b.model_id)) {
                jobs.push((q, a, b, reference, turn));
            }
        }
    }
    let judge_model = grader.judge_model();
    let results = futures::stream::iter(jobs)
        .map(|(q, a, b, reference, turn)| {
            let judge_model = judge_model.clone();
            async move {
                let name = judge_prompt_name(true, reference.is_some(), turn);
                let (ta, tb) = (&a.choices[0].turns, &b.choices[0].turns);
                let r = reference.map(Vec::as_slice);
                let (u1, j1, v1) = judge_once(grader, name, q, ta, tb, r, turn).await?;
                let (u2, j2, v2) = judge_once(grader, name, q, tb, ta, r, turn).await?;
                // Game 1 shows model_1 as A, game 2 shows it as B.
                let map = |v: &'static str, model_1_is_a: bool| -> &'static str {
                    match (v, model_1_is_a) {
                        ("A", true) | ("B", false) => "model_1",
                        ("A", false) | ("B", true) => "model_2",
                        (other, _) => other,
                    }
                };
                Ok::<PairRecord, EvalError>(PairRecord {
                    question_id: q.question_id,
                    model_1: a.model_id.clone(),
                    model_2: b.model_id.clone(),
                    g1_winner: map(v1, true).to_string(),
                    g2_winner: map(v2, false).to_string(),
                    judge: (judge_model, name.to_string()),
                    g1_user_prompt: u1,
                    g1_judgment: j1,
                    g2_user_prompt: u2,
                    g2_judgment: j2,
                    turn,
                    tstamp: now(),
                })
            }
        })
        .buffer_unordered(concurrency.max(1));
    append_all(&mut writer, done, results).await
}
