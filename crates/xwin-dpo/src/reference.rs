//! Reference log-probabilities, computed once by the frozen reference model and persisted
//! (`reference-logps.jsonl`, `data-schemas/reference-logps.schema.json`), so training holds
//! one model. Keyed by pair id and a hash of its tokens; appended per batch, so a killed run
//! keeps what it computed and a rerun computes only what is missing. The artifact's
//! `.meta.json` names the reference model (a fingerprint of its config, weights and
//! tokenizer) and the template: an artifact from another reference is refused.

use crate::DpoError;
use crate::data::TokenPair;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use xwin_data::{
    JsonlWriter, PadSide, Padding, ReadOptions, for_each_record, length_buckets, pad_batch_to,
};
use xwin_model::{BatchLayout, LlamaForCausalLM, sequence_logprobs};

/// One line of the artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceLogps {
    /// Pair id and token hash ([`TokenPair::key`]).
    pub key: String,
    pub chosen: f64,
    pub rejected: f64,
    pub chosen_tokens: usize,
    pub rejected_tokens: usize,
}

/// What the artifact was computed with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceIdentity {
    /// Fingerprint of the reference model's config, weights and tokenizer.
    pub model: String,
    pub template: String,
    /// The precision the log-probabilities were computed in (the policy's, so that policy and
    /// reference start level); absent for f32, so f32 artifacts stay valid.
    #[serde(default, skip_serializing_if = "xwin_model::Precision::is_f32")]
    pub precision: xwin_model::Precision,
}

/// Each pair's reference log-probabilities `(chosen, rejected)`, by pair key.
pub type ReferenceByKey = HashMap<String, (f64, f64)>;

fn meta_path(artifact: &Path) -> PathBuf {
    xwin_data::sidecar(artifact, ".meta.json")
}

/// The reference log-probabilities of every pair, from `artifact` where present and computed
/// (and appended) for the rest with `model`; without an artifact, all computed in memory.
/// Returns them and how many were computed. `on_progress(pairs done)`.
#[allow(clippy::too_many_arguments)]
pub fn reference_logps(
    model: &LlamaForCausalLM,
    identity: &ReferenceIdentity,
    pairs: &[&TokenPair],
    artifact: Option<&Path>,
    pairs_per_batch: usize,
    max_batch_tokens: usize,
    device: &Device,
    mut on_progress: impl FnMut(usize),
) -> Result<(ReferenceByKey, usize), DpoError> {
    let mut known = HashMap::new();
    let mut writer = match artifact {
        Some(artifact) => Some(open_artifact(artifact, identity, &mut known)?),
        None => None,
    };
    let missing: Vec<&TokenPair> = pairs
        .iter()
        .copied()
        .filter(|p| !known.contains_key(&p.key()))
        .collect();
    let computed = missing.len();
    let lengths: Vec<usize> = missing
        .iter()
        .map(|p| p.chosen.len().max(p.rejected.len()))
        .collect();
    let pad = model.config().pad_token_id.unwrap_or(0);
    let mut done = pairs.len() - missing.len();
    for members in length_buckets(&lengths, pairs_per_batch, max_batch_tokens / 2, 0) {
        let sides: Vec<_> = members
            .iter()
            .map(|&i| &missing[i].chosen)
            .chain(members.iter().map(|&i| &missing[i].rejected))
            .collect();
        let batch = pad_batch_to(&sides, Padding::to_longest(pad), PadSide::Right);
        let (ids, mask) = (&batch.ids, &batch.loss_mask);
        let layout = BatchLayout::from_attention_mask(&batch.attention)?;
        let hidden = model.hidden_states(model.ids_tensor(ids, device)?, &layout, None);
        let logps = sequence_logprobs(model, hidden, ids, mask)?;
        let p = members.len();
        for (k, &i) in members.iter().enumerate() {
            let record = ReferenceLogps {
                key: missing[i].key(),
                chosen: logps.sums[k],
                rejected: logps.sums[p + k],
                chosen_tokens: logps.counts[k],
                rejected_tokens: logps.counts[p + k],
            };
            if let Some(w) = writer.as_mut() {
                w.write(&record)?;
            }
            known.insert(record.key, (record.chosen, record.rejected));
        }
        done += p;
        on_progress(done);
    }
    Ok((known, computed))
}

/// Opens a persisted artifact: its identity checked (or written, for a new one), the
/// log-probabilities it holds read into `known`, a writer for the rest.
fn open_artifact(
    artifact: &Path,
    identity: &ReferenceIdentity,
    known: &mut ReferenceByKey,
) -> Result<JsonlWriter, DpoError> {
    let meta = meta_path(artifact);
    match std::fs::read_to_string(&meta) {
        Ok(text) => {
            let stored: ReferenceIdentity = serde_json::from_str(&text)
                .map_err(|e| DpoError::Setup(format!("{}: {e}", meta.display())))?;
            if &stored != identity {
                return Err(DpoError::Setup(format!(
                    "{} was computed with another reference model or template ({} / {}, now \
                     {} / {}): delete it and its .meta.json to recompute",
                    artifact.display(),
                    stored.model,
                    stored.template,
                    identity.model,
                    identity.template
                )));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = meta.parent() {
                std::fs::create_dir_all(dir).map_err(|e| xwin_data::DataError::io(dir, e))?;
            }
            let text = serde_json::to_string_pretty(identity).unwrap_or_default();
            std::fs::write(&meta, text).map_err(|e| xwin_data::DataError::io(&meta, e))?;
        }
        Err(e) => return Err(xwin_data::DataError::io(&meta, e).into()),
    }
    let writer = JsonlWriter::append(artifact)?;
    for_each_record(artifact, ReadOptions::default(), |r: ReferenceLogps| {
        known.insert(r.key, (r.chosen, r.rejected));
    })?;
    Ok(writer)
}
