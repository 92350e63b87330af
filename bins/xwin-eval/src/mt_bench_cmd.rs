//! `xwin-eval mt-bench`: FastChat's MT-bench protocol with single grading.

use crate::judge::{JudgeArgs, JudgeKind, setup};
use std::path::PathBuf;
use xwin_eval::EvalError;

#[derive(clap::Args)]
pub struct MtBenchArgs {
    /// FastChat's `question.jsonl`.
    #[arg(long)]
    questions: PathBuf,
    /// FastChat's `judge_prompts.jsonl`.
    #[arg(long)]
    judge_prompts: PathBuf,
    /// FastChat's `reference_answer/gpt-4.jsonl` (math, reasoning and coding are graded
    /// against it).
    #[arg(long)]
    reference_answers: PathBuf,
    #[arg(long, conflicts_with = "answers")]
    model: Option<PathBuf>,
    /// Answers in FastChat's `model_answer` format.
    #[arg(long)]
    answers: Option<PathBuf>,
    /// The name answers and judgments carry (default: the model directory's name).
    #[arg(long)]
    model_id: Option<String>,
    /// Only the first N questions (demos).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, default_value = "cpu")]
    device: String,
    #[arg(long, default_value_t = 1024)]
    max_new_tokens: usize,
    #[arg(long, default_value = "vicuna-v11")]
    template: String,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Independent grading runs (the paper reports the median of 3).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Also grade pairwise against these answers (FastChat's `model_answer` format, e.g.
    /// gpt-3.5-turbo.jsonl), both orders, into `model_judgment/<judge>_pair.jsonl`.
    #[arg(long)]
    baseline_answers: Option<PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn mt_bench(a: MtBenchArgs) -> Result<String, EvalError> {
    use xwin_eval::mt_bench_protocol as mt;
    let mut questions: Vec<mt::Question> = mt::read_jsonl(&a.questions)?;
    if let Some(n) = a.limit {
        questions.truncate(n);
    }
    let references = mt::read_answer_turns(&a.reference_answers)?;
    let answers = match (&a.model, &a.answers) {
        (Some(model), None) => {
            let policy = crate::judge::load_policy(model, &a.device, &a.template)?;
            let id = a.model_id.clone().unwrap_or_else(|| policy.name.clone());
            let sampler = policy.sampler(id.clone());
            mt::generate_answers(&sampler, &questions, a.max_new_tokens, a.seed, &id, &a.out)?.0
        }
        (None, Some(path)) => {
            let wanted: std::collections::HashSet<i64> =
                questions.iter().map(|q| q.question_id).collect();
            mt::read_jsonl::<mt::ModelAnswer>(path)?
                .into_iter()
                .filter(|x| wanted.contains(&x.question_id))
                .collect()
        }
        _ => return Err(setup("give --model DIR or --answers FILE".into())),
    };
    let grader = match a.judge.judge {
        JudgeKind::Oracle => mt::Grader::Oracle,
        JudgeKind::Openai => {
            let client = a.judge.client(2048)?;
            let prompts = mt::read_judge_prompts(&a.judge_prompts)?;
            mt::Grader::Llm {
                client: Box::new(client),
                prompts,
            }
        }
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| setup(e.to_string()))?;
    let judge_name = match &grader {
        mt::Grader::Oracle => "oracle".to_string(),
        mt::Grader::Llm { .. } => a.judge.judge_model.clone(),
    };
    let mut runs = Vec::new();
    for run in 1..=a.runs.max(1) {
        let suffix = if a.runs > 1 {
            format!("-run{run}")
        } else {
            String::new()
        };
        let out = a
            .out
            .join("model_judgment")
            .join(format!("{judge_name}_single{suffix}.jsonl"));
        runtime.block_on(mt::grade_single(
            &grader,
            &questions,
            &answers,
            &references,
            &out,
            a.judge.concurrency,
        ))?;
        runs.push(xwin_eval::single_scores(&xwin_eval::read_judgments(
            &out, None,
        )?));
    }
    // Per model: the median run by overall score, and the spread of the runs.
    let mut models = serde_json::Map::new();
    let mut table = String::from(
        "| model | turn 1 | turn 2 | overall | runs (min–max) |\n|---|---:|---:|---:|---|\n",
    );
    for model in runs[0].keys() {
        let mut per: Vec<&xwin_eval::SingleScore> =
            runs.iter().filter_map(|r| r.get(model)).collect();
        per.sort_by(|x, y| x.overall.total_cmp(&y.overall));
        let median = per[per.len() / 2];
        let (lo, hi) = (per[0].overall, per[per.len() - 1].overall);
        let f = |x: Option<f64>| x.map_or("–".into(), |v| format!("{v:.4}"));
        table.push_str(&format!(
            "| {model} | {} | {} | {:.4} | {} ({lo:.4}–{hi:.4}) |\n",
            f(median.turn1),
            f(median.turn2),
            median.overall,
            per.len()
        ));
        models.insert(model.clone(), serde_json::json!({
            "turn1": median.turn1, "turn2": median.turn2, "overall": median.overall,
            "runs": per.iter().map(|s| s.overall).collect::<Vec<_>>(), "n_ratings": median.n_ratings, "n_unrated": median.n_unrated,
        }));
    }
    let mut pairwise = serde_json::Value::Null;
    if let Some(path) = &a.baseline_answers {
        let baseline: Vec<mt::ModelAnswer> = mt::read_jsonl(path)?;
        let name = baseline
            .first()
            .map(|b| b.model_id.clone())
            .unwrap_or_default();
        let out = a
            .out
            .join("model_judgment")
            .join(format!("{judge_name}_pair.jsonl"));
        runtime.block_on(xwin_eval::mt_bench_pairwise::grade_pairwise(
            &grader,
            &questions,
            &answers,
            &baseline,
            &references,
            &out,
            a.judge.concurrency,
        ))?;
        let scores =
            xwin_eval::pairwise_scores(&xwin_eval::read_judgments(&out, None)?, Some(&name));
        table.push_str(&format!("\nAgainst {name} (both orders; disagreeing orders are ties):\n\n| model | win | loss | tie | win rate | adjusted |\n|---|---:|---:|---:|---:|---:|\n"));
        for (m, s) in &scores {
            table.push_str(&format!(
                "| {m} | {} | {} | {} | {:.4} | {:.4} |\n",
                s.win, s.loss, s.tie, s.win_rate, s.win_rate_adjusted
            ));
        }
        pairwise = serde_json::json!({ "baseline": name, "models": scores });
    }
    Ok(if a.json {
        serde_json::json!({ "models": models, "pairwise": pairwise }).to_string()
    } else {
        table
    })
}
