//! Interrupting a real process the hard way, for resume tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `command` (output discarded), waits until `ready()` holds, then kills it with
/// SIGKILL. Panics if it ends first or makes no progress within `within`.
pub fn kill_when(command: &mut Command, within: Duration, mut ready: impl FnMut() -> bool) {
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the program starts");
    let deadline = Instant::now() + within;
    while !ready() {
        assert!(Instant::now() < deadline, "no progress before the deadline");
        assert!(
            child.try_wait().expect("child status").is_none(),
            "ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
}

/// Lines of `path` that are complete (end with a newline), 0 if it does not exist: the
/// progress probe for [`kill_when`]. A probe that parses the file can meet the line the
/// process is writing at that moment, half there.
pub fn complete_lines(path: &std::path::Path) -> usize {
    std::fs::read(path).map_or(0, |bytes| bytes.iter().filter(|&&b| b == b'\n').count())
}
