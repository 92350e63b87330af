//! `xwin-rs --config FILE.toml`: rejection sampling (paper step 3) — score the policy's
//! samples with the reward model into Xwin-Set, report the score by rank, and finetune the
//! policy on the response at the configured rank. Rerun after an interruption to resume.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use clap::Parser;

use std::path::PathBuf;
use std::process::ExitCode;
use xwin_rs::{RsConfig, RsError, run_rs};

#[derive(Parser)]
#[command(
    name = "xwin-rs",
    version,
    about = "Rejection-sampling finetune from one config",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// TOML config (see configs/rs-*.toml): score, select and finetune.
    #[arg(long)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Mean RM score by rank across prompts and the spread per prompt (paper Fig. 5/7) of
    /// an Xwin-Set file: a table, or JSON with --json. With one sample per prompt, rank 1's
    /// mean is the policy's best-of-1 score.
    Stats {
        #[arg(long)]
        xwin_set: PathBuf,
        /// Only the first N samples of each prompt.
        #[arg(long)]
        n: Option<usize>,
        #[arg(long)]
        json: bool,
    },
}

fn stats(path: &std::path::Path, n: Option<usize>, json: bool) -> Result<String, RsError> {
    let stats = xwin_rs::rank_stats(path, n)?;
    Ok(if json {
        serde_json::to_string(&stats).unwrap_or_default()
    } else {
        stats.table()
    })
}

fn run(path: &std::path::Path) -> Result<String, RsError> {
    let config: RsConfig =
        xwin_train::read_config(path).map_err(xwin_train::sft::SftError::from)?;
    let bar = xwin_cli::step_bar();
    let summary = run_rs(&config, |s| {
        bar.set_length(s.total_steps as u64);
        bar.set_position(s.step as u64);
        let eval = s
            .eval_loss
            .map_or(String::new(), |l| format!("  held-out {l:.4}"));
        bar.set_message(format!(
            "loss {:.4}{eval}  lr {:.2e}  {:.0} tok/s",
            s.loss, s.lr, s.tokens_per_s
        ));
    });
    bar.finish_and_clear();
    let summary = summary?;
    eprintln!("RM score by rank:\n{}", summary.stats.table());
    Ok(serde_json::json!({
        "summary": summary,
        "model": config.output.join("model"),
        "xwin_set": config.data.xwin_set.clone().unwrap_or_else(|| config.output.join("xwin-set.jsonl")),
    })
    .to_string())
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    xwin_cli::init_logging();
    let cli = Cli::parse();
    let result = match (cli.config, cli.command) {
        (Some(config), None) => run(&config),
        (None, Some(Command::Stats { xwin_set, n, json })) => stats(&xwin_set, n, json),
        _ => Err(RsError::Setup(
            "give --config FILE, or `stats --xwin-set FILE`".into(),
        )),
    };
    xwin_cli::finish("xwin-rs", result)
}
