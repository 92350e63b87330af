//! Shared helpers for xwin-model's integration tests.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;

/// `fixtures/` at the workspace root (HF reference models copied into the repo).
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// Every causal-LM fixture directory: the shared tiny-llama and the generated variants.
pub fn causal_fixtures() -> Vec<PathBuf> {
    let mut dirs = vec![fixtures().join("tiny-llama")];
    let mut generated: Vec<PathBuf> = std::fs::read_dir(fixtures().join("gen"))
        .expect("fixtures/gen exists")
        .map(|e| e.expect("dir entry").path())
        .collect();
    generated.sort();
    dirs.extend(generated);
    dirs
}

pub fn expected(dir: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(dir.join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json parses")
}

pub fn ids(value: &Value) -> Vec<Vec<u32>> {
    serde_json::from_value(value.clone()).expect("token id lists")
}

pub fn floats3(value: &Value) -> Vec<Vec<Vec<f32>>> {
    serde_json::from_value(value.clone()).expect("3-d float array")
}

/// Data shared with the CEO's `shared/` folder (licensed files that stay out of the repo).
/// `XWIN_SHARED_DIR` (set by `.ci/run`) makes a missing file a failure; without it the
/// sibling `../shared` of the workspace is used if present, else the caller skips.
pub fn shared_file(relative: &str) -> Option<PathBuf> {
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
            if path.exists() {
                Some(path)
            } else {
                eprintln!("skipping: {relative} not found (set XWIN_SHARED_DIR)");
                None
            }
        }
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}
