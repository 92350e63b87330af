//! Loading and saving HF checkpoints, and the errors for broken ones.

mod common;

use burn::tensor::Device;
use common::*;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;
use xwin_model::{ModelError, SaveDtype, SaveOptions, load_causal_lm, save_causal_lm};

/// Copies a fixture's single-file checkpoint, rewriting its tensors with `edit`.
fn edited_copy(
    edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>),
) -> tempfile::TempDir {
    let src = fixtures().join("tiny-llama");
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(
        views,
        None::<HashMap<String, String>>,
        &dir.path().join("model.safetensors"),
    )
    .unwrap();
    dir
}

fn load_err(dir: &Path) -> ModelError {
    match load_causal_lm(dir, &Device::flex()) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e) => e,
    }
}

#[test]
fn load_save_load_gives_identical_logits() {
    let device = Device::flex();
    for dir in causal_fixtures() {
        let model = load_causal_lm(&dir, &device).unwrap();
        let before = probe_logits(&model, &device);
        let out = tempfile::tempdir().unwrap();
        save_causal_lm(&model, out.path(), SaveOptions::default()).unwrap();
        let reloaded = load_causal_lm(out.path(), &device).unwrap();
        assert_eq!(reloaded.config(), model.config(), "{}", dir.display());
        assert_eq!(
            probe_logits(&reloaded, &device),
            before,
            "{}",
            dir.display()
        );
    }
}

#[test]
fn saved_checkpoint_uses_hf_names_and_layout() {
    let device = Device::flex();
    let src = fixtures().join("tiny-llama");
    let model = load_causal_lm(&src, &device).unwrap();
    let out = tempfile::tempdir().unwrap();
    save_causal_lm(&model, out.path(), SaveOptions::default()).unwrap();
    let ours = std::fs::read(out.path().join("model.safetensors")).unwrap();
    let theirs = std::fs::read(src.join("model.safetensors")).unwrap();
    let (ours, theirs) = (
        SafeTensors::deserialize(&ours).unwrap(),
        SafeTensors::deserialize(&theirs).unwrap(),
    );
    let mut names: Vec<&str> = ours.names();
    let mut want: Vec<&str> = theirs.names();
    names.sort();
    want.sort();
    assert_eq!(names, want);
    for name in names {
        let (a, b) = (ours.tensor(name).unwrap(), theirs.tensor(name).unwrap());
        assert_eq!(a.shape(), b.shape(), "{name}");
        assert_eq!(a.data(), b.data(), "{name}: bytes differ");
    }
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["rope_theta"], 10000.0);
    assert_eq!(config["rope_parameters"]["rope_type"], "default");
    assert_eq!(config["num_key_value_heads"], 2);
}

#[test]
fn sharded_half_precision_save_round_trips() {
    let device = Device::flex();
    let dir = fixtures().join("gen/llama3-rope-gqa-bf16-sharded");
    let model = load_causal_lm(&dir, &device).unwrap();
    let out = tempfile::tempdir().unwrap();
    let options = SaveOptions {
        dtype: SaveDtype::BF16,
        max_shard_bytes: 40_000,
    };
    save_causal_lm(&model, out.path(), options).unwrap();
    assert!(out.path().join("model.safetensors.index.json").exists());
    // The weights were bf16 to begin with, so bf16 storage loses nothing.
    let reloaded = load_causal_lm(out.path(), &device).unwrap();
    assert_eq!(
        probe_logits(&reloaded, &device),
        probe_logits(&model, &device)
    );
}

#[test]
fn missing_tensor_is_named_with_its_shape() {
    let dir = edited_copy(|t| t.retain(|(n, ..)| n != "model.layers.1.mlp.up_proj.weight"));
    let msg = load_err(dir.path()).to_string();
    assert!(
        msg.contains("missing tensor `model.layers.1.mlp.up_proj.weight`"),
        "{msg}"
    );
    assert!(msg.contains("[176, 64]"), "{msg}");
}

#[test]
fn wrong_shape_names_both_shapes() {
    let dir = edited_copy(|t| {
        let entry = t
            .iter_mut()
            .find(|(n, ..)| n == "model.norm.weight")
            .unwrap();
        entry.2 = vec![32];
        entry.3.truncate(32 * 4);
    });
    let msg = load_err(dir.path()).to_string();
    assert!(
        msg.contains("`model.norm.weight` has shape [32], config expects [64]"),
        "{msg}"
    );
}

#[test]
fn extra_tensor_is_reported() {
    let dir =
        edited_copy(|t| t.push(("score.weight".into(), Dtype::F32, vec![1, 64], vec![0; 256])));
    let msg = load_err(dir.path()).to_string();
    assert!(
        msg.contains("unexpected tensors [\"score.weight\"]"),
        "{msg}"
    );
}

#[test]
fn unsupported_dtype_is_reported() {
    let dir = edited_copy(|t| {
        let entry = t
            .iter_mut()
            .find(|(n, ..)| n == "model.norm.weight")
            .unwrap();
        entry.1 = Dtype::I32;
    });
    let msg = load_err(dir.path()).to_string();
    assert!(
        msg.contains("`model.norm.weight` has unsupported dtype I32"),
        "{msg}"
    );
}

#[test]
fn corrupt_safetensors_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("tiny-llama/config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("model.safetensors"),
        b"not a safetensors file",
    )
    .unwrap();
    let msg = load_err(dir.path()).to_string();
    assert!(
        msg.contains("model.safetensors: invalid safetensors"),
        "{msg}"
    );
}

#[test]
fn empty_directory_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let msg = load_err(dir.path()).to_string();
    assert!(msg.contains("config.json"), "{msg}");
}
