//! `xwin-pipeline --config FILE.toml`: the whole recipe, resumable and incremental;
//! `xwin-pipeline status --config FILE.toml`: each stage as done / stale / failed /
//! interrupted / to do with its headline number.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_pipeline::{Event, PipelineConfig, PipelineError, STAGES};

#[derive(Parser)]
#[command(
    name = "xwin-pipeline",
    version,
    about = "SFT → pairs → judge → RM → best-of-N → RS → DPO → evaluation from one config"
)]
struct Cli {
    /// TOML config (see configs/demo.toml).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Each stage's state and headline, without running anything.
    Status {
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    xwin_cli::init_logging();
    let cli = Cli::parse();
    let Some(path) = cli.config else {
        return xwin_cli::finish(
            "xwin-pipeline",
            Err::<String, _>("--config FILE is required"),
        );
    };
    let result = PipelineConfig::read(&path).and_then(|config| match cli.command {
        Some(Command::Status { json }) => status(&config, json),
        None => run(&config),
    });
    xwin_cli::finish("xwin-pipeline", result)
}

fn run(config: &PipelineConfig) -> Result<String, PipelineError> {
    let bar = xwin_cli::step_bar();
    let total = STAGES.len();
    let manifests = xwin_pipeline::run(config, |event| match event {
        Event::Skipped { stage, headline } => {
            bar.suspend(|| eprintln!("[done] {stage:<10} {headline}"));
        }
        Event::Started {
            stage,
            index,
            resumed,
        } => {
            let how = if resumed { "resuming" } else { "running" };
            bar.suspend(|| eprintln!("[{}/{total}] {stage:<10} {how}", index + 1));
            bar.set_length(1);
            bar.set_position(0);
        }
        Event::Step {
            done,
            total,
            message,
            ..
        } => {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
            bar.set_message(message);
        }
        Event::Finished { stage, manifest } => {
            bar.suspend(|| {
                eprintln!(
                    "[ok]   {stage:<10} {:.1} s  {}",
                    manifest.seconds, manifest.headline
                )
            });
        }
    });
    bar.finish_and_clear();
    let manifests = manifests?;
    let report = config.output.join("report.md");
    Ok(serde_json::json!({
        "report": report,
        "stages": manifests.iter().map(|m| (m.stage.clone(), m.headline.clone())).collect::<serde_json::Map<_, _>>(),
    })
    .to_string())
}

fn status(config: &PipelineConfig, json: bool) -> Result<String, PipelineError> {
    let rows = xwin_pipeline::status(config)?;
    if json {
        return Ok(serde_json::to_string(&rows).unwrap_or_default());
    }
    let mut out = String::new();
    for r in rows {
        let detail = match (&r.error, &r.headline) {
            (Some(e), _) => e.clone(),
            (None, serde_json::Value::Null) => String::new(),
            (None, h) => h.to_string(),
        };
        out.push_str(&format!("{:<10} {:<12} {detail}\n", r.stage, r.state));
    }
    Ok(out.trim_end().to_string())
}
