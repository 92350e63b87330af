//! Reading the torch fixtures' JSON.

use serde_json::Value;

/// The 0/1 rows under `key` (a mask the fixture scripts write as integers) as booleans.
///
/// # Panics
/// When `key` is not an array of arrays of 0/1 integers.
pub fn bool_grid(fixture: &Value, key: &str) -> Vec<Vec<bool>> {
    let rows: Vec<Vec<u8>> = serde_json::from_value(fixture[key].clone())
        .unwrap_or_else(|e| panic!("fixture `{key}`: {e}"));
    rows.iter()
        .map(|r| r.iter().map(|&m| m == 1).collect())
        .collect()
}
