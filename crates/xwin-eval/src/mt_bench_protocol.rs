//! The MT-bench protocol with single-answer grading, as FastChat's `gen_model_answer.py`,
//! `gen_judgment.py` and `common.py` run it: two-turn answers at FastChat's per-category
//! temperatures (the second turn sees the first answer), written as `model_answer/<model>.jsonl`;
//! each turn graded 1–10 with the judge prompts of `judge_prompts.jsonl` (`single-v1`, and
//! `single-math-v1` with the GPT-4 reference answer for math, reasoning and coding; the
//! `-multi-turn` variants for turn 2), the rating read with FastChat's patterns (`[[x]]`,
//! else `[x]`, else −1), written as `model_judgment/<judge>_single.jsonl`. Resumable: answers
//! per turn through the sampler's output, judgments keyed by (question, turn, model, prompt).

use crate::EvalError;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use xwin_annotate::ChatClient;
use xwin_data::{Conversation, JsonlWriter, Turn};

/// A line of `question.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub question_id: i64,
    pub category: String,
    pub turns: Vec<String>,
}

/// One choice of a FastChat answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: usize,
    pub turns: Vec<String>,
}

/// A line of `model_answer/<model>.jsonl` (and of `reference_answer/gpt-4.jsonl`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelAnswer {
    pub question_id: i64,
    pub answer_id: String,
    pub model_id: String,
    pub choices: Vec<Choice>,
    pub tstamp: f64,
}

/// A line of `judge_prompts.jsonl`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct JudgePrompt {
    pub name: String,
    pub system_prompt: String,
    pub prompt_template: String,
    pub output_format: String,
}

/// A line of `model_judgment/<judge>_single.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SingleRecord {
    pub question_id: i64,
    pub model: String,
    /// `[judge model, prompt name]`.
    pub judge: (String, String),
    pub user_prompt: String,
    pub judgment: String,
    pub score: f64,
    pub turn: u32,
    pub tstamp: f64,
}

/// FastChat's `judge_prompts.jsonl` by prompt name.
pub fn read_judge_prompts(path: &Path) -> Result<HashMap<String, JudgePrompt>, EvalError> {
    Ok(read_jsonl::<JudgePrompt>(path)?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect())
}

/// Each question's turns from a FastChat answer file (its first choice): reference answers,
/// or a model's answers.
pub fn read_answer_turns(path: &Path) -> Result<HashMap<i64, Vec<String>>, EvalError> {
    Ok(read_jsonl::<ModelAnswer>(path)?
        .into_iter()
        .map(|a| {
            let turns = a.choices.into_iter().next().map(|c| c.turns);
            (a.question_id, turns.unwrap_or_default())
        })
        .collect())
}

/// Reads a JSON Lines file of `T`, naming the line of a bad record.
pub fn read_jsonl<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, EvalError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return Err(xwin_data::DataError::io(path, e).into()),
    };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| EvalError::Input {
                path: format!("{}: line {}", path.display(), i + 1),
                message: e.to_string(),
            })
        })
        .collect()
}

/// FastChat's `temperature_config`.
pub fn temperature_for(category: &str) -> f32 {
    match category {
        "writing" | "roleplay" => 0.7,
        "stem" | "humanities" => 0.1,
        _ => 0.0,
    }
}

/// FastChat's `NEED_REF_CATS`: graded against a reference answer.
pub fn needs_reference(category: &str) -> bool {
    matches!(category, "math" | "reasoning" | "coding" | "arena-hard-200")
}

/// An append-only judgment file opened for a run: locked (one run per file), its torn tail
/// cut, and the records it already holds (what a rerun skips).
pub(crate) struct JudgmentFile<T> {
    pub _lock: xwin_data::OutputLock,
    pub writer: JsonlWriter,
    pub done: Vec<T>,
}

pub(crate) fn open_judgments<T: for<'de> Deserialize<'de>>(
    out: &Path,
) -> Result<JudgmentFile<T>, EvalError> {
    let lock = xwin_data::OutputLock::acquire(xwin_data::lock_path_for(out, false))?;
    let writer = JsonlWriter::append(out)?;
    Ok(JudgmentFile {
        _lock: lock,
        done: read_jsonl(out)?,
        writer,
    })
}

pub(crate) fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Two-turn answers of the local policy: turn 1 for every question, then turn 2 with the
/// first answer in the history, each at its category's temperature. Samples go to
/// `dir/answer-samples-<model_id>-t{1,2}-*.jsonl` (resumable; per model, so that another
/// policy answering in the same directory never reuses them); the answers to
/// `dir/model_answer/<model_id>.jsonl`.
pub fn generate_answers(
    sampler: &xwin_rs::LocalSampler,
    questions: &[Question],
    max_new_tokens: usize,
    seed: u64,
    model_id: &str,
    dir: &Path,
) -> Result<(Vec<ModelAnswer>, PathBuf), EvalError> {
    let mut answers: HashMap<i64, Vec<String>> = HashMap::new();
    for turn in 0..2 {
        // Per temperature: the prompts and the question each answers.
        let mut by_temperature: Vec<(f32, Vec<xwin_rs::Prompt>, Vec<i64>)> = Vec::new();
        for q in questions.iter().filter(|q| q.turns.len() > turn) {
            let mut turns = Vec::new();
            for t in 0..turn {
                turns.push(Turn::human(&q.turns[t]));
                turns.push(Turn::gpt(
                    answers.get(&q.question_id).map_or("", |a| a[t].as_str()),
                ));
            }
            turns.push(Turn::human(&q.turns[turn]));
            let prompt = xwin_rs::Prompt {
                id: format!("q{}-t{}", q.question_id, turn + 1),
                conversation: Conversation::new(turns),
            };
            let t = temperature_for(&q.category);
            match by_temperature.iter_mut().find(|(x, _, _)| *x == t) {
                Some((_, v, ids)) => {
                    v.push(prompt);
                    ids.push(q.question_id);
                }
                None => by_temperature.push((t, vec![prompt], vec![q.question_id])),
            }
        }
        for (temperature, prompts, question_ids) in by_temperature {
            let spec = xwin_rs::SampleSpec::single(temperature, 1.0, max_new_tokens, seed);
            let path = dir.join(format!(
                "answer-samples-{}-t{}-{temperature}.jsonl",
                crate::answers::file_safe(model_id),
                turn + 1
            ));
            let mut texts = crate::answers::first_answers(sampler, &prompts, &spec, &path)?;
            for (p, qid) in prompts.iter().zip(question_ids) {
                // A prompt too long for the context has no sample: an empty answer.
                answers
                    .entry(qid)
                    .or_default()
                    .push(texts.remove(&p.id).unwrap_or_default());
            }
        }
    }
    let out = dir.join("model_answer").join(format!("{model_id}.jsonl"));
    let mut writer = JsonlWriter::create(&out)?;
    let records: Vec<ModelAnswer> = questions
        .iter()
        .map(|q| ModelAnswer {
            question_id: q.question_id,
            answer_id: format!("{model_id}-{}", q.question_id),
            model_id: model_id.to_string(),
            choices: vec![Choice {
                index: 0,
                turns: answers.remove(&q.question_id).unwrap_or_default(),
            }],
            tstamp: now(),
        })
        .collect();
    for r in &records {
        writer.write(r)?;
    }
    Ok((records, out))
}

/// FastChat's rating patterns: the first `[[x]]`, else the first `[x]`, x a number; −1
/// without one (FastChat does not check the range).
pub fn fastchat_rating(judgment: &str) -> f64 {
    for (open, close) in [("[[", "]]"), ("[", "]")] {
        let mut rest = judgment;
        while let Some(i) = rest.find(open) {
            let after = &rest[i + open.len()..];
            if let Some(end) = after.find(close) {
                let inner = &after[..end];
                let numeric = !inner.is_empty()
                    && inner.chars().next().is_some_and(|c| c.is_ascii_digit())
                    && inner.chars().all(|c| c.is_ascii_digit() || c == '.')
                    && inner.matches('.').count() <= 1;
                if numeric && let Ok(v) = inner.parse::<f64>() {
                    return v;
                }
            }
            rest = after;
        }
    }
    -1.0
}

pub(crate) fn get(v: &[String], i: usize) -> &str {
    v.get(i).map_or("", String::as_str)
}

/// The user prompt FastChat's `run_judge_single` sends for `turn` (1 or 2) of `answer`.
pub fn single_user_prompt(
    prompt: &JudgePrompt,
    q: &Question,
    answer: &[String],
    reference: Option<&[String]>,
    turn: u32,
) -> String {
    let r1 = reference.map_or("", |r| get(r, 0));
    let r2 = reference.map_or("", |r| get(r, 1));
    let values: Vec<(&str, &str)> = if turn == 1 {
        vec![
            ("question", get(&q.turns, 0)),
            ("answer", get(answer, 0)),
            ("ref_answer_1", r1),
        ]
    } else {
        vec![
            ("question_1", get(&q.turns, 0)),
            ("question_2", get(&q.turns, 1)),
            ("answer_1", get(answer, 0)),
            ("answer_2", get(answer, 1)),
            ("ref_answer_1", r1),
            ("ref_answer_2", r2),
        ]
    };
    fill(&prompt.prompt_template, &values)
}

/// Fills FastChat's `{name}` placeholders.
pub(crate) fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = template.to_string();
    for (k, v) in values {
        out = out.replace(&format!("{{{k}}}"), v);
    }
    out
}

/// Who grades: the offline oracle (exact match with the reference, else its overlap; else length) or a model through the
/// judge client with FastChat's prompts.
pub enum Grader {
    Oracle,
    Llm {
        /// Boxed: the client is ten times the size of the oracle variant.
        client: Box<ChatClient>,
        prompts: HashMap<String, JudgePrompt>,
    },
}

impl Grader {
    pub(crate) fn judge_model(&self) -> String {
        match self {
            Self::Oracle => "oracle".into(),
            Self::Llm { client, .. } => client.config().model.clone(),
        }
    }

    /// Asks the judge model with FastChat's prompt `name`, the user message rendered by
    /// `render`: (user prompt, judgment). A failed call is recorded as FastChat records it,
    /// the judgment `$ERROR$` (no verdict).
    pub(crate) async fn ask(
        client: &ChatClient,
        prompts: &HashMap<String, JudgePrompt>,
        name: &str,
        question_id: i64,
        turn: u32,
        render: impl FnOnce(&JudgePrompt) -> String,
    ) -> Result<(String, String), EvalError> {
        let prompt = prompts.get(name).ok_or_else(|| EvalError::Input {
            path: "judge prompts".into(),
            message: format!("no prompt named {name}"),
        })?;
        let user = render(prompt);
        let judgment = match client.chat(&prompt.system_prompt, &user).await {
            Ok(r) => r.text,
            Err(e) => {
                tracing::warn!(question = question_id, turn, error = %e, "judge call failed");
                "$ERROR$".to_string()
            }
        };
        Ok((user, judgment))
    }
}

/// FastChat's judge prompt for a turn: `single-v1` / `pair-v2`, the `-math-v1` variants when
/// graded against a reference, `-multi-turn` for turn 2.
pub(crate) fn judge_prompt_name(pairwise: bool, reference: bool, turn: u32) -> &'static str {
    match (pairwise, reference, turn) {
        (false, false, 1) => "single-v1",
        (false, false, _) => "single-v1-multi-turn",
        (false, true, 1) => "single-math-v1",
        (false, true, _) => "single-math-v1-multi-turn",
        (true, false, 1) => "pair-v2",
        (true, false, _) => "pair-v2-multi-turn",
        (true, true, 1) => "pair-math-v1",
        (true, true, _) => "pair-math-v1-multi-turn",
    }
}

/// The question of an answer and, for the categories graded against one, its reference
/// answer; an unknown question or a missing reference is an error naming it.
pub(crate) fn question_and_reference<'a>(
    answer: &ModelAnswer,
    by_id: &HashMap<i64, &'a Question>,
    references: &'a HashMap<i64, Vec<String>>,
) -> Result<(&'a Question, Option<&'a Vec<String>>), EvalError> {
    let q = *by_id
        .get(&answer.question_id)
        .ok_or_else(|| EvalError::Input {
            path: format!("answers of {}", answer.model_id),
            message: format!(
                "question_id {} is not among the questions",
                answer.question_id
            ),
        })?;
    if !needs_reference(&q.category) {
        return Ok((q, None));
    }
    let reference = references
        .get(&q.question_id)
        .ok_or_else(|| EvalError::Input {
            path: "reference answers".into(),
            message: format!(
                "no reference answer for question {} ({})",
                q.question_id, q.category
            ),
        })?;
    Ok((q, Some(reference)))
}

/// Appends each finished record to the judgment file, after those it already held.
pub(crate) async fn append_all<T: Serialize>(
    writer: &mut JsonlWriter,
    mut done: Vec<T>,
    results: impl futures::Stream<Item = Result<T, EvalError>>,
) -> Result<Vec<T>, EvalError> {
    let mut results = std::pin::pin!(results);
    while let Some(record) = results.next().await {
        let record = record?;
        writer.write(&record)?;
        done.push(record);
    }
    Ok(done)
}

/// Grades every turn of every answer not yet in `out` (appended; one run per file).
pub async fn grade_single(
    grader: &Grader,
    questions: &[Question],
    answers: &[ModelAnswer],
    references: &HashMap<i64, Vec<String>>,
    out: &Path,
    concurrency: usize,
) -> Result<Vec<SingleRecord>, EvalError> {
    let JudgmentFile {
        _lock,
        mut writer,
        done,
    } = open_judgments::<SingleRecord>(out)?;
    let key = |q: i64, t: u32, m: &str, p: &str| format!("{q}/{t}/{m}/{p}");
    let seen: HashSet<String> = done
        .iter()
        .map(|r| key(r.question_id, r.turn, &r.model, &r.judge.1))
        .collect();
    let by_id: HashMap<i64, &Question> = questions.iter().map(|q| (q.question_id, q)).collect();
    let mut jobs = Vec::new();
    for a in answers {
        let (q, reference) = question_and_reference(a, &by_id, references)?;
        let turns: &[String] = a.choices.first().map_or(&[], |c| &c.turns);
        for turn in 1..=turns.len().min(q.turns.len()) as u32 {
            let name = judge_prompt_name(false, reference.is_some(), turn);
            if !seen.contains(&key(q.question_id, turn, &a.model_id, name)) {
                jobs.push((q, &a.model_id, turns, reference, turn, name));
            }
        }
    }
    let judge_model = grader.judge_model();
    let results = futures::stream::iter(jobs)
        .map(|(q, model, answer, reference, turn, name)| {
            let judge_model = judge_model.clone();
            async move {
                let t = (turn - 1) as usize;
                let (user_prompt, judgment, score) = match grader {
                    Grader::Oracle => {
                        let reference = reference.map(|r| r[t.min(r.len() - 1)].as_str());
                        let s = xwin_annotate::OracleJudge::score(&answer[t], reference);
                        let score = (1.0 + 9.0 * s).round();
                        (String::new(), format!("Rating: [[{score}]]"), score)
                    }
                    Grader::Llm { client, prompts } => {
                        let (user, judgment) =
                            Grader::ask(client, prompts, name, q.question_id, turn, |p| {
                                single_user_prompt(p, q, answer, reference.map(Vec::as_slice), turn)
                            })
                            .await?;
                        let score = fastchat_rating(&judgment);
                        (user, judgment, score)
                    }
                };
                Ok::<SingleRecord, EvalError>(SingleRecord {
                    question_id: q.question_id,
                    model: model.clone(),
                    judge: (judge_model, name.to_string()),
                    user_prompt,
                    judgment,
                    score,
                    turn,
                    tstamp: now(),
                })
            }
        })
        .buffer_unordered(concurrency.max(1));
    append_all(&mut writer, done, results).await
}
