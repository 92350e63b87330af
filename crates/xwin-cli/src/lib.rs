//! What xwin's binaries share and the libraries never need: logging to stderr (level from
//! `RUST_LOG`, `info` by default), one exit convention (the result on stdout, or
//! `TOOL: error: …` on stderr and a failing status) and the training progress bar.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::{self, Write};
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
    finish_to(
        &mut io::stdout().lock(),
        &mut io::stderr().lock(),
        tool,
        result,
    )
}

/// [`finish`] on given streams. Written, not `println!`ed: `println!` panics when the reader
/// has gone (`xwin-pipeline status` piped to a reader that had exited ended in a panic and a
/// backtrace); a result that cannot be written is a failure said on stderr like any other.
fn finish_to(
    out: &mut impl Write,
    err: &mut impl Write,
    tool: &str,
    result: Result<String, impl std::fmt::Display>,
) -> ExitCode {
    let failure = match result {
        Ok(text) => match writeln!(out, "{text}").and_then(|()| out.flush()) {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => format!("writing the result: {e}"),
        },
        Err(e) => e.to_string(),
    };
    // Nothing is left to tell if stderr is gone too.
    let _ = writeln!(err, "{tool}: error: {failure}");
    ExitCode::FAILURE
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that has gone: every write fails as a closed pipe's does.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn finished(out: &mut impl Write, result: Result<String, &str>) -> (ExitCode, String) {
        let mut err = Vec::new();
        let code = finish_to(out, &mut err, "xwin-tool", result);
        (code, String::from_utf8(err).expect("utf-8"))
    }

    #[test]
    fn the_result_goes_to_stdout() {
        let mut out = Vec::new();
        let (code, err) = finished(&mut out, Ok("{\"steps\":3}".into()));
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(out, b"{\"steps\":3}\n");
        assert_eq!(err, "");
    }

    #[test]
    fn an_error_goes_to_stderr_named_by_the_tool() {
        let mut out = Vec::new();
        let (code, err) = finished(&mut out, Err("data.jsonl line 3: no field `prompt`"));
        assert_eq!(code, ExitCode::FAILURE);
        assert!(out.is_empty());
        assert_eq!(
            err,
            "xwin-tool: error: data.jsonl line 3: no field `prompt`\n"
        );
    }

    #[test]
    fn a_reader_that_has_gone_is_a_failure_not_a_panic() {
        let (code, err) = finished(&mut ClosedPipe, Ok("{}".into()));
        assert_eq!(code, ExitCode::FAILURE);
        assert!(
            err.starts_with("xwin-tool: error: writing the result: ") && err.contains("pipe"),
            "{err}"
        );
    }
}
