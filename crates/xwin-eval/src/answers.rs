//! One answer per prompt from the local policy: what every protocol here (AlpacaEval,
//! MT-bench, exact match) asks of the policy before judging.

use crate::EvalError;
use std::collections::HashMap;
use std::path::Path;

/// Samples `spec` for `prompts` into `path` (resumable; a prompt too long for the context
/// is recorded in the failures file and gets no answer) and returns each prompt's first
/// response: id → text.
pub(crate) fn first_answers(
    sampler: &xwin_rs::LocalSampler,
    prompts: &[xwin_rs::Prompt],
    spec: &xwin_rs::SampleSpec,
    path: &Path,
) -> Result<HashMap<String, String>, EvalError> {
    let options = xwin_rs::LocalOptions {
        skip_long: true,
        ..xwin_rs::LocalOptions::default()
    };
    sampler
        .run(prompts, spec, options, path, |_| {})
        .map_err(|e| EvalError::Input {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
    let mut texts = HashMap::new();
    xwin_data::for_each_record(
        path,
        xwin_data::ReadOptions::default(),
        |r: xwin_data::ResponseSamples| {
            if let Some(first) = r.responses.into_iter().next() {
                texts.insert(r.id, first.text);
            }
        },
    )?;
    Ok(texts)
}

/// A name usable in a file name (separators and the like replaced by `_`).
pub(crate) fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
