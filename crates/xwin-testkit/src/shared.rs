//! Where the licensed test data lives. The Llama-2 tokenizer, AlpacaEval and MT-bench files
//! stay outside the repository, in the `shared` tree beside the workspace or wherever
//! `XWIN_SHARED_DIR` points. Tests and benchmarks find them here, in one way.

use std::path::PathBuf;

/// `relative` (e.g. `data/mt_bench/question.jsonl`) under `XWIN_SHARED_DIR` when set (a
/// missing file then panics: CI sets it so that absent data fails loudly), else under the
/// workspace's sibling `shared/`, or `None` (with a warning) so a test can skip.
pub fn shared_data(relative: &str) -> Option<PathBuf> {
    match std::env::var_os("XWIN_SHARED_DIR") {
        Some(dir) => {
            let path = PathBuf::from(dir).join(relative);
            assert!(
                path.exists(),
                "XWIN_SHARED_DIR is set but {} is missing",
                path.display()
            );
            Some(path)
        }
        None => {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared")
                .join(relative);
            path.exists().then_some(path).or_else(|| {
                tracing::warn!("skipping: {relative} not found (set XWIN_SHARED_DIR)");
                None
            })
        }
    }
}
