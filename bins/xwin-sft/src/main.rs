//! `xwin-sft --config FILE.toml`: supervised finetuning (paper step 1).

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use clap::Parser;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use xwin_train::{SftConfig, read_config, run_sft};

#[derive(Parser)]
#[command(
    name = "xwin-sft",
    version,
    about = "Supervised finetuning of a HF Llama on ShareGPT conversations"
)]
struct Cli {
    /// TOML config (see configs/sft-*.toml).
    #[arg(long)]
    config: PathBuf,
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    xwin_cli::init_logging();
    let cli = Cli::parse();
    let config: SftConfig = match read_config(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xwin-sft: {e}");
            return ExitCode::FAILURE;
        }
    };
    let bar = xwin_cli::step_bar();
    let start = Instant::now();
    let result = run_sft(&config, |s| {
        bar.set_length(s.total_steps as u64);
        bar.set_position(s.step as u64);
        let eval = s
            .eval_loss
            .map_or(String::new(), |e| format!("  eval {e:.4}"));
        bar.set_message(format!(
            "loss {:.4}{eval}  lr {:.2e}  |g| {:.2}  {:.0} tok/s",
            s.loss, s.lr, s.grad_norm, s.tokens_per_s
        ));
    });
    bar.finish_and_clear();
    match result {
        Ok(summary) => {
            println!(
                "{}",
                serde_json::json!({
                    "summary": summary,
                    "seconds": start.elapsed().as_secs_f64(),
                    "model": config.output.join("model"),
                    "metrics": config.output.join("metrics.jsonl"),
                })
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xwin-sft: error: {e}");
            ExitCode::FAILURE
        }
    }
}
