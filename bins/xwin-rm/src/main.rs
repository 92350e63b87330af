//! `xwin-rm --config FILE.toml`: train the reward model (paper step 2c).
//! `xwin-rm eval --model DIR --data FILE`: its accuracy per judge rating (paper Table 3).
//! `xwin-rm score --model DIR --input SAMPLES --output XWIN_SET`: score and rank responses.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use indicatif::ProgressBar;
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_data::{ChatTemplate, ReadOptions, load_tokenizer};
use xwin_model::{LlamaForReward, load_reward_model, parse_device};
use xwin_rm::{
    LossConfig, PairFormat, RmConfig, RmError, evaluate, pair_batches, read_pairs, run_rm,
};

#[derive(Parser)]
#[command(
    name = "xwin-rm",
    version,
    about = "Train a reward model on judged pairs, or evaluate one",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// TOML config (see configs/rm-*.toml): train.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Held-out accuracy overall and per rating, reward spread: a table, or JSON with --json.
    Eval {
        #[command(flatten)]
        rm: RmArgs,
        /// Pairs to evaluate on.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value = "xwin-pair")]
        format: Format,
        #[arg(long)]
        json: bool,
    },
    /// Score and rank sampled responses: ResponseSamples in, Xwin-Set out (resumable).
    Score {
        #[command(flatten)]
        rm: RmArgs,
        /// ResponseSamples JSONL: {id, prompt, model, responses: [{text, ...}]}.
        #[arg(long)]
        input: PathBuf,
        /// Xwin-Set JSONL (appended to; prompts already there are skipped).
        #[arg(long)]
        output: PathBuf,
        /// Rows per forward.
        #[arg(long, default_value_t = 32)]
        batch: usize,
    },
}

/// The reward model a subcommand reads and how it renders text.
#[derive(clap::Args)]
struct RmArgs {
    /// A reward model directory (LlamaForSequenceClassification).
    #[arg(long)]
    model: PathBuf,
    /// tokenizer.json; defaults to the model directory's.
    #[arg(long)]
    tokenizer: Option<PathBuf>,
    #[arg(long, default_value = "vicuna-v11")]
    template: String,
    /// Longest prompt + response in tokens.
    #[arg(long, default_value_t = 4096)]
    max_len: usize,
    #[arg(long, default_value = "cpu")]
    device: String,
}

/// What [`RmArgs`] names, loaded.
struct Loaded {
    rm: LlamaForReward,
    tokenizer: tokenizers::Tokenizer,
    template: ChatTemplate,
    device: Device,
}

impl RmArgs {
    fn load(&self) -> Result<Loaded, RmError> {
        let template = ChatTemplate::parse(&self.template).ok_or_else(|| {
            RmError::Setup(format!(
                "--template `{}`: use vicuna-v11 or llama2",
                self.template
            ))
        })?;
        let device = parse_device(&self.device)?;
        let rm = load_reward_model(&self.model, &device)?;
        let path = self
            .tokenizer
            .clone()
            .unwrap_or_else(|| self.model.join("tokenizer.json"));
        let tokenizer = load_tokenizer(&path)?;
        Ok(Loaded {
            rm,
            tokenizer,
            template,
            device,
        })
    }
}

fn score(rm: RmArgs, input: PathBuf, output: PathBuf, batch: usize) -> Result<String, RmError> {
    let l = rm.load()?;
    let options = xwin_rm::ScoreOptions {
        template: l.template,
        max_len: rm.max_len,
        batch_rows: batch,
        ..xwin_rm::ScoreOptions::default()
    };
    let bar = ProgressBar::new_spinner();
    let name = rm.model.display().to_string();
    let summary = xwin_rm::score_samples(
        &l.rm,
        &l.tokenizer,
        &name,
        &input,
        &output,
        options,
        &l.device,
        |n| bar.set_message(format!("{n} prompts scored")),
    );
    bar.finish_and_clear();
    Ok(serde_json::json!({ "summary": summary?, "output": output }).to_string())
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    XwinPair,
    Preference,
}

fn train(path: &std::path::Path) -> Result<String, RmError> {
    let config: RmConfig = xwin_train::read_config(path)?;
    let bar = xwin_cli::step_bar();
    let summary = run_rm(&config, |s| {
        bar.set_length(s.total_steps as u64);
        bar.set_position(s.step as u64);
        let acc = s.metrics.get("accuracy").copied().unwrap_or(f64::NAN);
        let eval = s.eval_metrics.get("accuracy").map_or(String::new(), |a| {
            format!("  held-out acc {:.1} %", 100.0 * a)
        });
        bar.set_message(format!(
            "loss {:.4}  acc {:.1} %{eval}  lr {:.2e}  |g| {:.2}",
            s.loss,
            100.0 * acc,
            s.lr,
            s.grad_norm
        ));
    });
    bar.finish_and_clear();
    let summary = summary?;
    if let Some(report) = &summary.eval {
        eprintln!("{}", report.table());
    }
    Ok(serde_json::json!({
        "summary": summary,
        "model": config.output.join("model"),
        "metrics": config.output.join("metrics.jsonl"),
    })
    .to_string())
}

fn eval(rm: RmArgs, data: PathBuf, format: Format, json: bool) -> Result<String, RmError> {
    let l = rm.load()?;
    let format = match format {
        Format::XwinPair => PairFormat::XwinPair,
        Format::Preference => PairFormat::Preference,
    };
    let (pairs, _) = read_pairs(&data, format, ReadOptions::default())?;
    let eos = l.rm.config().eos_token_ids.first().copied().unwrap_or(2);
    let (tokens, dropped) =
        xwin_rm::tokenize_pairs(&pairs, l.template, &l.tokenizer, eos, rm.max_len, true)?;
    let pad = l.rm.config().pad_token_id.unwrap_or(0);
    let batches = pair_batches(
        &tokens,
        16,
        16_384,
        xwin_data::Padding::to_longest(pad),
        &LossConfig::default(),
        0,
    );
    let report = evaluate(&l.rm, &batches, 0.0, &l.device)?;
    Ok(if json {
        serde_json::json!({ "eval": report, "dropped": dropped }).to_string()
    } else {
        report.table()
    })
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    xwin_cli::init_logging();
    let cli = Cli::parse();
    let result = match (cli.config, cli.command) {
        (Some(config), None) => train(&config),
        (
            None,
            Some(Command::Eval {
                rm,
                data,
                format,
                json,
            }),
        ) => eval(rm, data, format, json),
        (
            None,
            Some(Command::Score {
                rm,
                input,
                output,
                batch,
            }),
        ) => score(rm, input, output, batch),
        _ => Err(RmError::Setup(
            "give --config FILE to train, `eval --model DIR --data FILE` or \
             `score --model DIR --input FILE --output FILE`"
                .into(),
        )),
    };
    xwin_cli::finish("xwin-rm", result)
}
