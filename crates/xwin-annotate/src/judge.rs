//! The judge abstraction: compare two answers (who wins, why, by how much) or grade one
//! answer 1–10. [`LlmJudge`] asks a model through an OpenAI-compatible endpoint and parses
//! its reply in one of the supported formats; [`OracleJudge`] decides by rule, offline.

use crate::client::{CallError, ChatClient, Usage};
use crate::parse::{
    ParseError, Shown, parse_alpaca_ranking, parse_mt_bench_pair, parse_single_rating,
    parse_xwin_pairwise,
};
use crate::template::PromptTemplate;
use serde::{Deserialize, Serialize};
use std::future::Future;
use xwin_data::Rating;

/// Two answers in the order they are shown to the judge.
#[derive(Debug, Clone, Copy)]
pub struct PairQuery<'a> {
    pub question: &'a str,
    pub first: &'a str,
    pub second: &'a str,
    pub reference: Option<&'a str>,
}

/// One answer to grade.
#[derive(Debug, Clone, Copy)]
pub struct GradeQuery<'a> {
    pub question: &'a str,
    pub answer: &'a str,
    pub reference: Option<&'a str>,
}

/// A parsed pairwise verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairVerdict {
    pub winner: Shown,
    /// By how much (the Xwin format; other formats have none).
    pub rating: Option<Rating>,
    pub reason: String,
    /// The judge's whole reply.
    pub raw: String,
    /// Replies asked for (more than one when a reply did not parse).
    pub attempts: u32,
}

/// A parsed 1–10 grade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grade {
    pub score: f64,
    pub raw: String,
    pub attempts: u32,
}

/// No verdict: the replies that did not parse (kept verbatim) or the call that failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeFailure {
    pub error: String,
    pub raw: Vec<String>,
    pub attempts: u32,
    /// The endpoint refused in a way every request would (bad key, unknown model): stop the run.
    #[serde(default)]
    pub fatal: bool,
}

/// What identifies a judge in records and in resume keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JudgeIdentity {
    pub model: String,
    pub template: String,
    /// Hash of the pairwise template's text: editing a prompt file changes the identity, so
    /// a rerun judges again instead of reusing verdicts given to another prompt.
    pub template_digest: String,
    pub temperature: f32,
    pub max_tokens: u32,
    /// The endpoint's base URL (another server is another judge).
    pub endpoint: String,
    pub format: VerdictFormat,
}

/// How a pairwise reply states its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VerdictFormat {
    /// `[[A]]`/`[[B]]` + `Rating: [[… better]]` (the paper's four levels).
    Xwin,
    /// `[[A]]`/`[[B]]`/`[[C]]` (MT-bench pair-v2).
    MtBench,
    /// `[{'model': 'model_1', 'rank': 1}, …]` (AlpacaEval 1).
    AlpacaRanking,
}

impl VerdictFormat {
    /// The built-in template written for this format.
    pub fn default_template(self) -> &'static str {
        match self {
            Self::Xwin => "xwin-pairwise",
            Self::MtBench => "mt-bench-pair",
            Self::AlpacaRanking => "alpaca-eval",
        }
    }
}

/// A judge. Futures are `Send` so that runs can judge many items concurrently.
pub trait Judge: Send + Sync {
    fn identity(&self) -> JudgeIdentity;
    /// Which shown answer is better.
    fn compare(
        &self,
        query: PairQuery<'_>,
    ) -> impl Future<Output = Result<PairVerdict, JudgeFailure>> + Send;
    /// A 1–10 grade.
    fn grade(
        &self,
        query: GradeQuery<'_>,
    ) -> impl Future<Output = Result<Grade, JudgeFailure>> + Send;
    /// Tokens and cost so far (zero for judges that call nothing).
    fn usage(&self) -> Usage {
        Usage::default()
    }
}

/// A model behind an OpenAI-compatible endpoint.
pub struct LlmJudge {
    client: ChatClient,
    pair_template: PromptTemplate,
    format: VerdictFormat,
    grade_template: PromptTemplate,
    /// Replies asked for before an unparseable verdict becomes a failure.
    pub parse_attempts: u32,
}

impl LlmJudge {
    pub fn new(
        client: ChatClient,
        format: VerdictFormat,
        pair_template: PromptTemplate,
        grade_template: PromptTemplate,
    ) -> Self {
        Self {
            client,
            pair_template,
            format,
            grade_template,
            parse_attempts: 3,
        }
    }

    /// A judge whose pairwise prompt is the built-in template or file `template`, graded
    /// with MT-bench's single prompt; its verdict format is `format`, else the built-in
    /// template's own, else `fallback` (a template file's).
    pub fn with_template(
        client: ChatClient,
        template: &str,
        format: Option<VerdictFormat>,
        fallback: VerdictFormat,
    ) -> crate::Result<Self> {
        let pair = PromptTemplate::resolve(template)?;
        let grade = PromptTemplate::builtin("mt-bench-single")?;
        let format = format
            .or_else(|| PromptTemplate::builtin_format(template))
            .unwrap_or(fallback);
        Ok(Self::new(client, format, pair, grade))
    }

    /// Asks until `parse` accepts a reply or the attempts run out.
    async fn ask<T>(
        &self,
        template: &PromptTemplate,
        values: &[(&str, &str)],
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Result<(T, String, u32), JudgeFailure> {
        let (system, user) = template.render(values).map_err(|e| JudgeFailure {
            error: e.to_string(),
            raw: Vec::new(),
            attempts: 0,
            fatal: true,
        })?;
        let mut raw = Vec::new();
        let mut last_error = String::new();
        for attempt in 1..=self.parse_attempts.max(1) {
            match self.client.chat(&system, &user).await {
                Ok(reply) => match parse(&reply.text) {
                    Ok(v) => return Ok((v, reply.text, attempt)),
                    Err(e) => {
                        tracing::debug!(attempt, error = %e, "judge reply did not parse");
                        last_error = format!("unparseable reply: {e}");
                        raw.push(reply.text);
                    }
                },
                Err(e) => {
                    let fatal = matches!(e, CallError::Fatal { .. } | CallError::Config(_));
                    return Err(JudgeFailure {
                        error: e.to_string(),
                        raw,
                        attempts: attempt,
                        fatal,
                    });
                }
            }
        }
        Err(JudgeFailure {
            error: last_error,
            attempts: raw.len() as u32,
            raw,
            fatal: false,
        })
    }
}

/// The explanation: what the judge wrote before its first `[[…]]` tag.
fn reason_of(reply: &str) -> String {
    let head = reply.find("[[").map_or(reply, |i| &reply[..i]);
    let head = head.trim().trim_end_matches("Rating:").trim();
    if head.is_empty() { reply.trim() } else { head }.to_string()
}

impl Judge for LlmJudge {
    fn identity(&self) -> JudgeIdentity {
        let config = self.client.config();
        JudgeIdentity {
            model: config.model.clone(),
            template: self.pair_template.name.clone(),
            template_digest: self.pair_template.digest(),
            temperature: config.temperature,
            max_tokens: config.max_tokens,
            endpoint: config.base_url.clone(),
            format: self.format,
        }
    }

    async fn compare(&self, q: PairQuery<'_>) -> Result<PairVerdict, JudgeFailure> {
        let reference = q.reference.unwrap_or("");
        let values = [
            ("question", q.question),
            ("instruction", q.question),
            ("answer_a", q.first),
            ("output_1", q.first),
            ("answer_b", q.second),
            ("output_2", q.second),
            ("ref_answer_1", reference),
            ("reference", reference),
        ];
        let format = self.format;
        let (verdict, raw, attempts) = self
            .ask(&self.pair_template, &values, |reply| match format {
                VerdictFormat::Xwin => parse_xwin_pairwise(reply).map(|(w, r)| (w, Some(r))),
                VerdictFormat::MtBench => parse_mt_bench_pair(reply).map(|w| (w, None)),
                VerdictFormat::AlpacaRanking => parse_alpaca_ranking(reply).map(|w| (w, None)),
            })
            .await?;
        Ok(PairVerdict {
            winner: verdict.0,
            rating: verdict.1,
            reason: reason_of(&raw),
            raw,
            attempts,
        })
    }

    async fn grade(&self, q: GradeQuery<'_>) -> Result<Grade, JudgeFailure> {
        let reference = q.reference.unwrap_or("");
        let values = [
            ("question", q.question),
            ("instruction", q.question),
            ("answer", q.answer),
            ("ref_answer_1", reference),
            ("reference", reference),
        ];
        let (score, raw, attempts) = self
            .ask(&self.grade_template, &values, parse_single_rating)
            .await?;
        Ok(Grade {
            score,
            raw,
            attempts,
        })
    }

    fn usage(&self) -> Usage {
        self.client.usage()
    }
}

/// An offline judge for demos and tests. With a reference answer, an exact match (after
/// trimming whitespace and a final period) scores 1 and any other answer 0.9 × the mean of
/// its word overlap with the reference (unigram F1) and its character similarity (one minus
/// the edit distance over the longer length), so a correct answer always beats a near miss
/// ("3, 12, 5" for "3, 5, 12" has F1 1) and near misses are ordered ("elpap" is closer to
/// "elppa" than "apple" is, though neither shares a word with it). Without one, an answer
/// beats a refusal and then the longer one wins.
/// The margin between the two scores sets the rating. Deterministic.
#[derive(Debug, Clone, Default)]
pub struct OracleJudge;

impl OracleJudge {
    /// Score in [0, 1].
    pub fn score(answer: &str, reference: Option<&str>) -> f64 {
        match reference {
            Some(r) if xwin_data::exact_match(answer, r) => 1.0,
            Some(r) => 0.45 * (unigram_f1(answer, r) + char_similarity(answer, r)),
            None => {
                let words = answer.split_whitespace().count();
                let lower = answer.trim_start().to_lowercase();
                let refuses = ["i'm sorry", "i am sorry", "as an ai", "i cannot", "i can't"]
                    .iter()
                    .any(|p| lower.starts_with(p));
                let length = (words as f64 / 200.0).min(1.0);
                // Any real answer (≥ 0.25) outranks any refusal (< 0.2); length orders the rest.
                match (words, refuses) {
                    (0, _) => 0.0,
                    (_, true) => 0.2 * length,
                    (_, false) => 0.25 + 0.75 * length,
                }
            }
        }
    }

    fn rating(margin: f64) -> Rating {
        match margin {
            m if m > 0.5 => Rating::Significantly,
            m if m > 0.25 => Rating::Better,
            m if m > 0.1 => Rating::Slightly,
            _ => Rating::Negligibly,
        }
    }
}

/// 1 − Levenshtein distance / the longer length, over characters of the trimmed texts.
fn char_similarity(answer: &str, reference: &str) -> f64 {
    let (a, r): (Vec<char>, Vec<char>) = (
        answer.trim().chars().collect(),
        reference.trim().chars().collect(),
    );
    let longer = a.len().max(r.len());
    if longer == 0 {
        return 1.0;
    }
    // One row of the edit-distance table at a time.
    let mut row: Vec<usize> = (0..=r.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cr) in r.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cr);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    1.0 - row[r.len()] as f64 / longer as f64
}

fn unigram_f1(answer: &str, reference: &str) -> f64 {
    use std::collections::HashMap;
    let bag = |t: &str| {
        let mut m: HashMap<String, usize> = HashMap::new();
        for w in t
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
        {
            *m.entry(w.to_lowercase()).or_default() += 1;
        }
        m
    };
    let (a, r) = (bag(answer), bag(reference));
    let common: usize = a
        .iter()
        .map(|(w, n)| (*n).min(*r.get(w).unwrap_or(&0)))
        .sum();
    let (na, nr) = (a.values().sum::<usize>(), r.values().sum::<usize>());
    if common == 0 || na == 0 || nr == 0 {
        return 0.0;
    }
    let (p, rec) = (common as f64 / na as f64, common as f64 / nr as f64);
    2.0 * p * rec / (p + rec)
}

impl Judge for OracleJudge {
    fn identity(&self) -> JudgeIdentity {
        JudgeIdentity {
            model: "oracle".into(),
            template: "rule: reference exact match, else F1 and character similarity; without one, length without refusal".into(),
            template_digest: String::new(),
            temperature: 0.0,
            max_tokens: 0,
            endpoint: String::new(),
            format: VerdictFormat::Xwin,
        }
    }

    async fn compare(&self, q: PairQuery<'_>) -> Result<PairVerdict, JudgeFailure> {
        let (s1, s2) = (
            Self::score(q.first, q.reference),
            Self::score(q.second, q.reference),
        );
        let winner = if s1 > s2 {
            Shown::First
        } else if s2 > s1 {
            Shown::Second
        } else {
            Shown::Tie
        };
        let margin = (s1 - s2).abs() / s1.max(s2).max(1e-9);
        let rating = Self::rating(margin);
        let basis = if q.reference.is_some() {
            "word overlap with the reference"
        } else {
            "length without refusal"
        };
        Ok(PairVerdict {
            winner,
            rating: (winner != Shown::Tie).then_some(rating),
            reason: format!("scores by {basis}: first {s1:.3}, second {s2:.3}"),
            raw: String::new(),
            attempts: 1,
        })
    }

    async fn grade(&self, q: GradeQuery<'_>) -> Result<Grade, JudgeFailure> {
        let s = Self::score(q.answer, q.reference);
        Ok(Grade {
            score: (1.0 + 9.0 * s).round(),
            raw: String::new(),
            attempts: 1,
        })
    }
}

/// The offline oracle or a model behind an endpoint, behind one type (chosen at run time).
pub enum AnyJudge {
    Oracle(OracleJudge),
    Llm(Box<LlmJudge>),
}

impl Judge for AnyJudge {
    fn identity(&self) -> JudgeIdentity {
        match self {
            Self::Oracle(j) => j.identity(),
            Self::Llm(j) => j.identity(),
        }
    }

    async fn compare(&self, q: PairQuery<'_>) -> Result<PairVerdict, JudgeFailure> {
        match self {
            Self::Oracle(j) => j.compare(q).await,
            Self::Llm(j) => j.compare(q).await,
        }
    }

    async fn grade(&self, q: GradeQuery<'_>) -> Result<Grade, JudgeFailure> {
        match self {
            Self::Oracle(j) => j.grade(q).await,
            Self::Llm(j) => j.grade(q).await,
        }
    }

    fn usage(&self) -> Usage {
        match self {
            Self::Oracle(j) => j.usage(),
            Self::Llm(j) => j.usage(),
        }
    }
}
