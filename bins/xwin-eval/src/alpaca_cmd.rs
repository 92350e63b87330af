//! `xwin-eval alpaca` and `xwin-eval best-of-n`: the AlpacaEval protocol and best-of-n curves.

use crate::judge::{JudgeArgs, setup};
use std::path::PathBuf;
use xwin_eval::EvalError;

#[derive(clap::Args)]
pub struct AlpacaArgs {
    /// The reference outputs (alpaca_eval format), e.g. reference_text_davinci_003.json.
    #[arg(long)]
    reference: PathBuf,
    /// Only the first N instructions (demos).
    #[arg(long)]
    limit: Option<usize>,
    /// The policy to generate outputs with (HF directory)...
    #[arg(long, conflicts_with = "outputs")]
    model: Option<PathBuf>,
    /// ...or its outputs (alpaca_eval's model_outputs.json).
    #[arg(long)]
    outputs: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Generation: the Xwin AlpacaEval setting is temperature 0.7, top-p 1, 4096 new tokens.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    #[arg(long, default_value_t = 4096)]
    max_new_tokens: usize,
    #[arg(long, default_value = "vicuna-v11")]
    template: String,
    #[command(flatten)]
    judge: JudgeArgs,
    /// Seeds the generation and the order the two outputs are shown in (recorded).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// AlpacaEval 2's weighted judge: --judge-template is then the classification prompt
    /// file (ChatML, answered with `m` or `M`; alpaca_eval's `alpaca_eval_clf.txt`), and the
    /// preference comes from the first token's log-probabilities.
    #[arg(long)]
    weighted: bool,
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct BestOfNArgs {
    /// Xwin-Set JSONL (`xwin-rm score` / `xwin-rs`), every prompt with N samples.
    #[arg(long)]
    xwin_set: PathBuf,
    /// The largest n (default: N of the first prompt).
    #[arg(long)]
    n: Option<usize>,
    /// Reference outputs (alpaca_eval format) whose instructions are the prompts' first
    /// human turns: judge every point of the curve against them.
    #[arg(long, requires = "out")]
    reference: Option<PathBuf>,
    #[command(flatten)]
    judge: JudgeArgs,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn best_of_n(a: BestOfNArgs) -> Result<String, EvalError> {
    let (sets, _) = xwin_data::read_records::<xwin_data::XwinSet>(
        &a.xwin_set,
        xwin_data::ReadOptions::default(),
    )?;
    let n =
        a.n.or_else(|| sets.first().map(|s| s.responses.len()))
            .ok_or_else(|| setup(format!("{}: no prompts", a.xwin_set.display())))?;
    let curve = xwin_eval::best_of_n(&sets, &xwin_eval::curve_points(n))?;
    // Judging against a reference: read it once, keep the instructions the Xwin-Set covers
    // (each prompt's first human turn), in the reference's order.
    let instructions: Vec<String> = sets
        .iter()
        .map(|set| {
            set.prompt
                .turns
                .first()
                .map(|t| t.value.clone())
                .unwrap_or_default()
        })
        .collect();
    let judging = match (&a.reference, &a.out) {
        (Some(reference), Some(out)) => {
            let covered: std::collections::HashSet<&str> =
                instructions.iter().map(String::as_str).collect();
            let reference: Vec<xwin_eval::AlpacaOutput> = xwin_eval::read_outputs(reference)?
                .into_iter()
                .filter(|r| covered.contains(r.instruction.as_str()))
                .collect();
            let runtime = tokio::runtime::Runtime::new().map_err(|e| setup(e.to_string()))?;
            Some((a.judge.build()?, runtime, reference, out))
        }
        _ => None,
    };
    let mut rows = Vec::new();
    for point in &curve {
        let mut row = serde_json::json!({ "n": point.n, "mean_rm_score": point.mean_score, "interval": point.interval });
        if let Some((judge, runtime, reference, out)) = &judging {
            let text: std::collections::HashMap<&str, &str> = instructions
                .iter()
                .zip(&point.picks)
                .map(|(instruction, (_, t, _))| (instruction.as_str(), t.as_str()))
                .collect();
            let outputs: Vec<xwin_eval::AlpacaOutput> = reference
                .iter()
                .map(|r| xwin_eval::AlpacaOutput {
                    instruction: r.instruction.clone(),
                    output: text[r.instruction.as_str()].to_string(),
                    generator: format!("best-of-{}", point.n),
                    dataset: r.dataset.clone(),
                })
                .collect();
            let dir = out.join(format!("best-of-{}", point.n));
            let run = runtime.block_on(xwin_eval::judge_outputs(
                judge,
                &outputs,
                reference,
                &dir,
                a.judge.options(a.seed),
            ))?;
            row["win_rate"] = serde_json::json!(run.score.win_rate);
            row["win_rate_interval"] = serde_json::json!(run.score.interval);
            row["judged"] = serde_json::json!(run.score.n_total);
        }
        rows.push(row);
    }
    Ok(if a.json {
        serde_json::json!({ "curve": rows }).to_string()
    } else {
        let mut table = String::from(
            "| n | mean RM score | 95 % interval | win rate | 95 % interval |\n|---:|---:|---|---:|---|\n",
        );
        for r in &rows {
            let ci = |v: &serde_json::Value| {
                v.as_object().map_or("–".into(), |o| {
                    format!(
                        "{:.3}–{:.3}",
                        o["low"].as_f64().unwrap_or(f64::NAN),
                        o["high"].as_f64().unwrap_or(f64::NAN)
                    )
                })
            };
            let wr = r["win_rate"]
                .as_f64()
                .map_or("–".into(), |w| format!("{w:.2} %"));
            table.push_str(&format!(
                "| {} | {:.4} | {} | {} | {} |\n",
                r["n"],
                r["mean_rm_score"].as_f64().unwrap_or(f64::NAN),
                ci(&r["interval"]),
                wr,
                ci(&r["win_rate_interval"])
            ));
        }
        table
    })
}

pub fn alpaca(a: AlpacaArgs) -> Result<String, EvalError> {
    let mut reference = xwin_eval::read_outputs(&a.reference)?;
    if let Some(n) = a.limit {
        reference.truncate(n);
    }
    std::fs::create_dir_all(&a.out).map_err(|e| setup(format!("{}: {e}", a.out.display())))?;
    let outputs = match (&a.model, &a.outputs) {
        (Some(model), None) => {
            let policy = crate::judge::load_policy(model, &a.device, &a.template)?;
            let sampler = policy.sampler(policy.name.clone());
            let spec = xwin_rs::SampleSpec::single(a.temperature, 1.0, a.max_new_tokens, a.seed);
            xwin_eval::generate_outputs(&sampler, &reference, &spec, &a.out)?
        }
        (None, Some(path)) => {
            let outputs = xwin_eval::read_outputs(path)?;
            let outputs: Vec<_> = if a.limit.is_some() {
                let wanted: std::collections::HashSet<&str> =
                    reference.iter().map(|r| r.instruction.as_str()).collect();
                outputs
                    .into_iter()
                    .filter(|o| wanted.contains(o.instruction.as_str()))
                    .collect()
            } else {
                outputs
            };
            xwin_eval::align_outputs(&outputs, &reference, path)?
        }
        _ => return Err(setup("give --model DIR or --outputs FILE".into())),
    };
    let runtime = tokio::runtime::Runtime::new().map_err(|e| setup(e.to_string()))?;
    let run = if a.weighted {
        let template = std::fs::read_to_string(&a.judge.judge_template)
            .map_err(|e| setup(format!("--judge-template {}: {e}", a.judge.judge_template)))?;
        let client = a.judge.client(1)?;
        let annotations = runtime.block_on(xwin_eval::judge_weighted(
            &client,
            &template,
            &outputs,
            &reference,
            &a.out,
            a.seed,
            a.judge.concurrency,
        ))?;
        xwin_eval::write_run(&a.out, &outputs, &annotations, None)?
    } else {
        let judge = a.judge.build()?;
        runtime.block_on(xwin_eval::judge_outputs(
            &judge,
            &outputs,
            &reference,
            &a.out,
            a.judge.options(a.seed),
        ))?
    };
    let s = &run.score;
    Ok(if a.json {
        serde_json::to_string(&run).unwrap_or_default()
    } else {
        format!(
            "win rate {:.2} % ± {:.2} over {} instructions ({} wins, {} losses, {} draws, {} without a verdict); {}",
            s.win_rate,
            s.standard_error,
            s.n_total,
            s.n_wins,
            s.n_wins_base,
            s.n_draws,
            s.n_dropped,
            run.annotations.display()
        )
    })
}
