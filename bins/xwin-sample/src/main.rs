//! `xwin-sample`: N responses per prompt (best-of-N, paper step 3) or a pair at temperatures
//! 0.7 and 0.3 (`--pairs`, step 2a, the input of `xwin-annotate`), from the local policy
//! (`--model`) or an OpenAI-compatible server (`--endpoint`). Resumable: rerun the same
//! command after an interruption and only the missing prompts are sampled.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_annotate::{ChatClient, EndpointConfig};
use xwin_data::{ChatTemplate, ReadOptions};
use xwin_rs::{Api, LocalOptions, LocalPolicy, Progress, RsError, SampleSpec, read_prompts};

#[derive(Parser)]
#[command(name = "xwin-sample", version, about = "Sample responses for prompts")]
struct Cli {
    /// Conversations (ShareGPT, Alpaca, HH-RLHF, OpenAI messages): each is unfolded into one
    /// prompt per reply, the reply dropped; one ending with a human turn is a prompt as is.
    #[arg(long)]
    prompts: PathBuf,
    /// JSONL output: ResponseSamples, or pairs for xwin-annotate with --pairs.
    #[arg(long)]
    output: PathBuf,
    /// Unfold only the first K replies of each conversation (the paper's RS uses 3).
    #[arg(long)]
    first_replies: Option<usize>,
    /// Samples per prompt.
    #[arg(long, default_value_t = 1)]
    n: usize,
    /// Step 2a: two samples per prompt at --pair-temperatures, written for xwin-annotate.
    #[arg(long)]
    pairs: bool,
    #[arg(long, value_delimiter = ',', default_value = "0.7,0.3")]
    pair_temperatures: Vec<f32>,
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value = "vicuna-v11")]
    template: String,
    #[arg(long)]
    skip_bad: bool,
    /// Local: record prompts too long for the context in <output>.failures.jsonl and go on.
    #[arg(long)]
    skip_long: bool,
    /// The local policy (HF directory).
    #[arg(long, conflicts_with = "endpoint")]
    model: Option<PathBuf>,
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Local: most sequences decoded together (prompts × samples).
    #[arg(long, default_value_t = 64)]
    batch_rows: usize,
    /// An OpenAI-compatible server's base URL (…/v1) instead of a local model.
    #[arg(long)]
    endpoint: Option<String>,
    /// The model name the server serves.
    #[arg(long, requires = "endpoint")]
    served_model: Option<String>,
    #[arg(long, value_enum, default_value = "completions")]
    api: ApiArg,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Environment variable holding the server's API key.
    #[arg(long)]
    api_key_env: Option<String>,
    #[arg(long, default_value_t = 6)]
    max_retries: u32,
    #[arg(long, default_value_t = 600.0)]
    timeout_s: f64,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ApiArg {
    Completions,
    Chat,
}

fn spec(cli: &Cli) -> Result<SampleSpec, RsError> {
    let pair_temperatures = if cli.pairs {
        match cli.pair_temperatures.as_slice() {
            [a, b] => Some([*a, *b]),
            other => {
                return Err(RsError::Setup(format!(
                    "--pair-temperatures needs two values, got {other:?}"
                )));
            }
        }
    } else {
        None
    };
    Ok(SampleSpec {
        n: if cli.pairs { 2 } else { cli.n },
        temperature: cli.temperature,
        top_p: cli.top_p,
        top_k: cli.top_k,
        max_new_tokens: cli.max_new_tokens,
        seed: cli.seed,
        pair_temperatures,
    })
}

fn progress_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} prompts  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

fn show(bar: &ProgressBar, p: Progress) {
    bar.set_length(p.total as u64);
    bar.set_position(p.done as u64);
    let secs = p.elapsed_s.max(1e-9);
    bar.set_message(format!(
        "{:.2} prompts/s  {:.0} tokens/s  {} failed",
        p.done as f64 / secs,
        p.tokens as f64 / secs,
        p.failures
    ));
}

fn run(cli: Cli) -> Result<String, RsError> {
    let spec = spec(&cli)?;
    spec.check()?;
    let template = ChatTemplate::parse(&cli.template).ok_or_else(|| {
        RsError::Setup(format!(
            "--template `{}`: use vicuna-v11 or llama2",
            cli.template
        ))
    })?;
    let read = ReadOptions {
        skip_bad: cli.skip_bad,
    };
    let (prompts, report) = read_prompts(&cli.prompts, cli.first_replies, read)?;
    tracing::info!(?report, "prompts read");
    let bar = progress_bar();
    let summary = match (&cli.model, &cli.endpoint) {
        (Some(model), None) => {
            let policy = LocalPolicy::load(model, &cli.device, template)?;
            let sampler = policy.sampler(model.display().to_string());
            let options = LocalOptions {
                batch_rows: cli.batch_rows,
                skip_long: cli.skip_long,
                ..LocalOptions::default()
            };
            sampler.run(&prompts, &spec, options, &cli.output, |p| show(&bar, p))
        }
        (None, Some(endpoint)) => {
            let served = cli.served_model.clone().ok_or_else(|| {
                RsError::Setup("--endpoint needs --served-model (the server's model name)".into())
            })?;
            let config = EndpointConfig {
                api_key_env: cli.api_key_env.clone(),
                max_retries: cli.max_retries,
                timeout_s: cli.timeout_s,
                ..EndpointConfig::new(endpoint.clone(), served)
            };
            let client = ChatClient::new(config).map_err(|e| RsError::Setup(e.to_string()))?;
            let api = match cli.api {
                ApiArg::Completions => Api::Completions,
                ApiArg::Chat => Api::Chat,
            };
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| RsError::Setup(format!("async runtime: {e}")))?;
            runtime.block_on(xwin_rs::sample_external(
                &client,
                api,
                template,
                &prompts,
                &spec,
                cli.concurrency,
                &cli.output,
                |p| show(&bar, p),
            ))
        }
        _ => Err(RsError::Setup(
            "give --model DIR (local policy) or --endpoint URL --served-model NAME".into(),
        )),
    };
    bar.finish_and_clear();
    let summary = summary?;
    Ok(
        serde_json::json!({ "prompts": report, "summary": summary, "output": cli.output })
            .to_string(),
    )
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    xwin_cli::init_logging();
    xwin_cli::finish("xwin-sample", run(Cli::parse()))
}
