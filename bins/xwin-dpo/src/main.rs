//! `xwin-dpo --config FILE.toml`: DPO (paper step 4) on Xwin-Set pairs (top-1 against the
//! calibrated or configured rank) or preference pairs. Rerun after an interruption to resume;
//! the reference log-probabilities are computed once and reused.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use clap::Parser;

use std::path::PathBuf;
use std::process::ExitCode;
use xwin_dpo::{DpoConfig, DpoError, run_dpo};

#[derive(Parser)]
#[command(
    name = "xwin-dpo",
    version,
    about = "Direct preference optimisation from one config"
)]
struct Cli {
    /// TOML config (see configs/dpo-*.toml).
    #[arg(long)]
    config: PathBuf,
}

fn run(path: &std::path::Path) -> Result<String, DpoError> {
    let config: DpoConfig = xwin_train::read_config(path)?;
    let bar = xwin_cli::step_bar();
    let summary = run_dpo(&config, |s| {
        bar.set_length(s.total_steps as u64);
        bar.set_position(s.step as u64);
        let get = |k: &str| s.metrics.get(k).copied().unwrap_or(f64::NAN);
        let eval = s
            .eval_metrics
            .get("rewards/accuracy")
            .map_or(String::new(), |a| {
                format!("  held-out acc {:.1} %", 100.0 * a)
            });
        bar.set_message(format!(
            "loss {:.4}  acc {:.1} %  margin {:.3}{eval}  lr {:.2e}",
            s.loss,
            100.0 * get("rewards/accuracy"),
            get("rewards/margins"),
            s.lr
        ));
    });
    bar.finish_and_clear();
    let summary = summary?;
    if let (Some(before), Some(after)) = (&summary.eval_before, &summary.eval_after) {
        eprintln!("| held-out | before | after |\n|---|---:|---:|");
        for (k, v) in before {
            eprintln!(
                "| {k} | {v:.4} | {:.4} |",
                after.get(k).copied().unwrap_or(f64::NAN)
            );
        }
    }
    Ok(serde_json::json!({
        "summary": summary,
        "model": config.output.join("model"),
        "metrics": config.output.join("metrics.jsonl"),
    })
    .to_string())
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    xwin_cli::init_logging();
    xwin_cli::finish("xwin-dpo", run(&Cli::parse().config))
}
