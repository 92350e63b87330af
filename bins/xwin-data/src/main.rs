//! `xwin-data`: statistics and rendering of the pipeline's datasets.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_data::{
    ChatTemplate, ConversationStats, DataError, PairStats, ReadOptions, TrainOn, XwinPair,
    for_each_conversation, for_each_record, load_tokenizer, tokenize,
};

#[derive(Parser)]
#[command(name = "xwin-data", version, about = "Inspect xwin datasets")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Table 1 (conversations: ShareGPT, Alpaca, HH-RLHF) or, with --pairs, Table 2 (Xwin-Pair).
    Stats {
        file: PathBuf,
        /// tokenizer.json used to count tokens (conversations only).
        #[arg(long)]
        tokenizer: Option<PathBuf>,
        /// The file holds Xwin-Pair records.
        #[arg(long)]
        pairs: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Skip malformed records (counted) instead of stopping at the first.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Write the verifiable demo task: `n` instructions with computed answers, as ShareGPT
    /// conversations (for SFT and sampling) or, with --tasks, as records with the reference
    /// answer (for exact-match evaluation).
    DemoTask {
        #[arg(long, default_value_t = 1000)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long)]
        tasks: bool,
        /// Share of conversations (0–1) that reply with the task's plausible mistake.
        #[arg(long, default_value_t = 0.0)]
        noise: f64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Show the rendered prompt of the first conversations and how many tokens train.
    Render {
        file: PathBuf,
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long, default_value = "vicuna")]
        template: String,
        #[arg(long, default_value_t = 1)]
        count: usize,
    },
}

fn run(cli: Cli) -> Result<String, DataError> {
    match cli.command {
        Command::DemoTask {
            n,
            seed,
            tasks,
            noise,
            out,
        } => {
            let mut writer = xwin_data::JsonlWriter::create(&out)?;
            let all = xwin_data::demo_tasks(n, seed);
            if tasks {
                for t in &all {
                    writer.write(t)?;
                }
            } else {
                for c in xwin_data::noisy_conversations(&all, noise, seed) {
                    writer.write(&c)?;
                }
            }
            Ok(serde_json::json!({ "written": n, "out": out }).to_string())
        }
        Command::Stats {
            file,
            tokenizer,
            pairs,
            json,
            skip_bad,
        } => {
            let options = ReadOptions { skip_bad };
            let (body, report) = if pairs {
                let mut stats = PairStats::default();
                let report = for_each_record::<XwinPair>(&file, options, |p| stats.add(&p))?;
                let body = if json {
                    serde_json::to_string_pretty(&stats).unwrap_or_default()
                } else {
                    stats.table()
                };
                (body, report)
            } else {
                let tokenizer = tokenizer.ok_or_else(|| {
                    DataError::Invalid("--tokenizer is required to count tokens".into())
                })?;
                let tok = load_tokenizer(&tokenizer)?;
                let mut stats = ConversationStats::default();
                let mut failure = None;
                let report = for_each_conversation(&file, options, |c| {
                    if failure.is_none()
                        && let Err(e) = stats.add(&c, &tok)
                    {
                        failure = Some(e);
                    }
                })?;
                if let Some(e) = failure {
                    return Err(e);
                }
                let body = if json {
                    serde_json::to_string_pretty(&stats).unwrap_or_default()
                } else {
                    stats.table()
                };
                (body, report)
            };
            if report.skipped > 0 {
                eprintln!(
                    "xwin-data: skipped {} bad records; first: {}",
                    report.skipped,
                    report.first_errors.join("; ")
                );
            }
            Ok(body)
        }
        Command::Render {
            file,
            tokenizer,
            template,
            count,
        } => {
            let template = ChatTemplate::parse(&template).ok_or_else(|| {
                DataError::Invalid(format!("unknown template `{template}` (vicuna, llama2)"))
            })?;
            let tok = load_tokenizer(&tokenizer)?;
            let mut out = String::new();
            let mut shown = 0;
            let mut failure = None;
            for_each_conversation(&file, ReadOptions::default(), |c| {
                if shown >= count || failure.is_some() {
                    return;
                }
                shown += 1;
                match tokenize(template, &c, &tok, TrainOn::AllAssistant) {
                    Ok(t) => out.push_str(&format!(
                        "{}\n-- {} tokens, {} trained\n",
                        template.render(&c).text,
                        t.len(),
                        t.trainable()
                    )),
                    Err(e) => failure = Some(e),
                }
            })?;
            match failure {
                Some(e) => Err(e),
                None => Ok(out),
            }
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(text) => {
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xwin-data: error: {e}");
            ExitCode::FAILURE
        }
    }
}
