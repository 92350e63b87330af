//! What xwin's binaries share and the libraries never need: logging to stderr (level from
//! `RUST_LOG`, `info` by default), one exit convention (the result on stdout, or
//! `TOOL: error: …` on stderr and a failing status) and the training progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;

/// Logs to stderr at `RUST_LOG`'s level (`info` when unset), so stdout stays the result.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
}

/// Prints the result on stdout (success) or `tool: error: …` on stderr (failure).
pub fn finish(tool: &str, result: Result<String, impl std::fmt::Display>) -> ExitCode {
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{tool}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The bar a training stage shows: steps done of the total, a message, the ETA.
pub fn step_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
