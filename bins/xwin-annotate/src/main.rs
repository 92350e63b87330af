//! `xwin-annotate`: response pairs in, Xwin-Pair records out (paper step 2), through any
//! OpenAI-compatible endpoint or the offline oracle. Resumable: rerun the same command.

use clap::{Parser, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_annotate::{
    AnnotateOptions, AnnotateSummary, ChatClient, EndpointConfig, Judge, LlmJudge, OracleJudge,
    VerdictFormat, annotate_file, failures_path,
};
use xwin_data::ReadOptions;

#[derive(Clone, Copy, ValueEnum)]
enum JudgeKind {
    /// A model behind an OpenAI-compatible endpoint (`--base-url`, `--model`).
    Openai,
    /// The offline rule-based oracle (exact match with the reference, else its overlap; without one, length without refusal).
    Oracle,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// `[[A]]`/`[[B]]` and `Rating: [[… better]]` (the paper's four levels).
    Xwin,
    /// `[[A]]`/`[[B]]`/`[[C]]` (MT-bench pair-v2).
    MtBench,
    /// AlpacaEval 1's ranking list.
    AlpacaRanking,
}

impl From<Format> for VerdictFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Xwin => Self::Xwin,
            Format::MtBench => Self::MtBench,
            Format::AlpacaRanking => Self::AlpacaRanking,
        }
    }
}

#[derive(Parser)]
#[command(
    name = "xwin-annotate",
    version,
    about = "Judge response pairs into Xwin-Pair records (which is better, why, by how much)"
)]
struct Cli {
    /// Pairs: JSONL or JSON array of {prompt|conversations, response_a, response_b[, reference]}
    /// or {instruction, input, output_1, output_2}.
    #[arg(long)]
    input: PathBuf,
    /// Xwin-Pair JSONL (appended to; items already there are skipped). Failures, ties and
    /// inconsistent verdicts go to OUTPUT.failures.jsonl.
    #[arg(long)]
    output: PathBuf,
    #[arg(long, value_enum, default_value = "openai")]
    judge: JudgeKind,
    /// e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1 (vLLM, llama.cpp).
    #[arg(long, default_value = "https://api.openai.com/v1")]
    base_url: String,
    #[arg(long, default_value = "gpt-4")]
    model: String,
    /// Environment variable with the API key (never printed).
    #[arg(long, default_value = "OPENAI_API_KEY")]
    api_key_env: String,
    /// Send no API key (local servers).
    #[arg(long)]
    no_api_key: bool,
    /// Built-in template name (xwin-pairwise, mt-bench-pair, alpaca-eval) or a template file.
    #[arg(long, default_value = "xwin-pairwise")]
    template: String,
    /// How the judge states its verdict; defaults to the built-in template's own format
    /// (xwin for files). Formats without the four-level rating write `rating: null`.
    #[arg(long, value_enum)]
    format: Option<Format>,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1024)]
    max_tokens: u32,
    #[arg(long, default_value_t = 120.0)]
    timeout_s: f64,
    #[arg(long, default_value_t = 6)]
    max_retries: u32,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    #[arg(long)]
    requests_per_minute: Option<u32>,
    #[arg(long)]
    tokens_per_minute: Option<u32>,
    /// Dollars per million prompt / completion tokens, for the cost line.
    #[arg(long, default_value_t = 0.0)]
    price_prompt_per_m: f64,
    #[arg(long, default_value_t = 0.0)]
    price_completion_per_m: f64,
    /// Judge both orders; disagreeing verdicts count as ties (MT-bench's rule).
    #[arg(long)]
    both_orders: bool,
    /// Seeds the order in which each pair is shown.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Skip (and count) malformed input records instead of stopping.
    #[arg(long)]
    skip_bad: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn table(s: &AnnotateSummary, cli: &Cli) -> String {
    let mut out = String::new();
    out.push_str(&format!("{:<28}{:>8}\n", "outcome", "pairs"));
    for rating in xwin_data::Rating::ALL {
        let n = s.by_rating.get(rating.as_str()).copied().unwrap_or(0);
        let tag = xwin_annotate::parse::rating_tag(rating);
        let label = tag.trim_start_matches("[[").trim_end_matches("]]");
        out.push_str(&format!("{label:<28}{n:>8}\n"));
    }
    for (label, n) in [
        (
            "won, no rating (format)",
            s.by_rating.get("unrated").copied().unwrap_or(0),
        ),
        ("tie", s.ties),
        ("inconsistent (2 orders)", s.inconsistent),
        ("failed (retried next run)", s.failures),
        ("already done", s.already_done),
        ("duplicate inputs", s.duplicates),
    ] {
        out.push_str(&format!("{label:<28}{n:>8}\n"));
    }
    let u = &s.usage;
    out.push_str(&format!(
        "requests {} (retries {}), tokens {} prompt + {} completion, cost ${:.4}\n",
        u.requests, u.retries, u.prompt_tokens, u.completion_tokens, u.cost_usd
    ));
    out.push_str(&format!(
        "output {}\nfailures {}",
        cli.output.display(),
        failures_path(&cli.output).display()
    ));
    out
}

async fn run<J: Judge>(judge: J, cli: &Cli) -> Result<AnnotateSummary, String> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} pairs  {msg}  {per_sec}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let options = AnnotateOptions {
        concurrency: cli.concurrency,
        seed: cli.seed,
        both_orders: cli.both_orders,
    };
    let read = ReadOptions {
        skip_bad: cli.skip_bad,
    };
    let result = annotate_file(&judge, &cli.input, read, &cli.output, options, |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!("{} failed", p.failures));
    })
    .await;
    bar.finish_and_clear();
    let (summary, report) = result.map_err(|e| e.to_string())?;
    if report.skipped > 0 {
        tracing::warn!(skipped = report.skipped, "malformed input records skipped");
    }
    Ok(summary)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.judge {
        JudgeKind::Oracle => run(OracleJudge, &cli).await,
        JudgeKind::Openai => {
            let mut config = EndpointConfig::new(&cli.base_url, &cli.model);
            config.api_key_env = (!cli.no_api_key).then(|| cli.api_key_env.clone());
            config.temperature = cli.temperature;
            config.max_tokens = cli.max_tokens;
            config.timeout_s = cli.timeout_s;
            config.max_retries = cli.max_retries;
            config.requests_per_minute = cli.requests_per_minute;
            config.tokens_per_minute = cli.tokens_per_minute;
            config.price_prompt_per_m = cli.price_prompt_per_m;
            config.price_completion_per_m = cli.price_completion_per_m;
            let judge = ChatClient::new(config)
                .map_err(|e| e.to_string())
                .and_then(|client| {
                    let format = cli.format.map(VerdictFormat::from);
                    LlmJudge::with_template(client, &cli.template, format, VerdictFormat::Xwin)
                        .map_err(|e| e.to_string())
                });
            match judge {
                Ok(j) => run(j, &cli).await,
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(summary) => {
            if cli.json {
                println!("{}", serde_json::json!({ "summary": summary }));
            } else {
                println!("{}", table(&summary, &cli));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xwin-annotate: error: {e}");
            ExitCode::FAILURE
        }
    }
}
