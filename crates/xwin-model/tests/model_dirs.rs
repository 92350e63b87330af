//! Model directories as users meet them: saving over an older (sharded) save, a folder with
//! other files, Llama-3-style stop ids in `generation_config.json`, tied checkpoints that
//! store the head anyway, and inputs longer than the context.

mod common;

use burn::tensor::Device;
use common::{fixtures, probe_logits};
use safetensors::SafeTensors;
use std::collections::HashMap;
use xwin_model::{GenerationConfig, SaveOptions, generate, load_causal_lm, save_causal_lm};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// A sharded save, then an unsharded save of other weights into the same directory: the
/// old index and shards are gone and loading gives the new weights (before, the stale
/// `model.safetensors.index.json` won and the old weights came back).
#[test]
fn saving_over_a_sharded_save_leaves_no_stale_shards() {
    let device = Device::flex();
    let old = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let new = load_causal_lm(fixtures().join("train/after_adamw"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("model");
    let small = SaveOptions {
        max_shard_bytes: 100_000,
        ..SaveOptions::default()
    };
    save_causal_lm(&old, &target, small).unwrap();
    assert!(target.join("model.safetensors.index.json").exists());
    save_causal_lm(&new, &target, SaveOptions::default()).unwrap();
    let names: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("-of-") || n.ends_with("index.json")),
        "{names:?}"
    );
    let loaded = load_causal_lm(&target, &device).unwrap();
    assert_eq!(probe_logits(&loaded, &device), probe_logits(&new, &device));
    assert_ne!(probe_logits(&loaded, &device), probe_logits(&old, &device));
    // No partial or old directory is left beside it.
    let siblings = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(siblings, 1);
}

/// A directory holding anything a save would not write is not replaced (nothing of the
/// user's is deleted); the error names the file.
#[test]
fn a_directory_with_other_files_is_not_replaced() {
    let device = Device::flex();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "mine").unwrap();
    let err = save_causal_lm(&model, dir.path(), SaveOptions::default()).unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Llama-3 lists several end ids in `generation_config.json` only; generation stops on any.
#[test]
fn generation_config_stop_ids_are_honoured() {
    let device = Device::flex();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixtures().join("tiny-llama"), dir.path());
    // The fixture's greedy continuation of its first prompt starts 262, 132, 99.
    let generation = serde_json::json!({ "bos_token_id": 1, "eos_token_id": [2, 99] });
    std::fs::write(
        dir.path().join("generation_config.json"),
        generation.to_string(),
    )
    .unwrap();
    let model = load_causal_lm(dir.path(), &device).unwrap();
    assert_eq!(model.config().eos_token_ids, [2, 99]);
    let config = GenerationConfig {
        max_new_tokens: 16,
        stop_ids: model.config().eos_token_ids.clone(),
        ..GenerationConfig::default()
    };
    let prompt = vec![1u32, 45, 300, 17, 99, 5, 250, 511, 3, 77, 128, 64];
    let out = generate(&model, &[prompt], &config, &device).unwrap();
    assert_eq!(out[0][0], [262, 132, 99]);
}

/// A tied-embedding checkpoint that also stores `lm_head.weight` loads (HF ignores it).
#[test]
fn tied_checkpoint_with_a_stored_head_loads() {
    let device = Device::flex();
    let src = fixtures().join("gen/tied-mha-theta500k");
    let reference = load_causal_lm(&src, &device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&src, dir.path());
    let bytes = std::fs::read(src.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, safetensors::tensor::TensorView<'_>)> = st.tensors();
    let embed = st.tensor("model.embed_tokens.weight").unwrap();
    tensors.push(("lm_head.weight".into(), embed));
    safetensors::serialize_to_file(
        tensors,
        None::<HashMap<String, String>>,
        &dir.path().join("model.safetensors"),
    )
    .unwrap();
    let loaded = load_causal_lm(dir.path(), &device).unwrap();
    assert_eq!(
        probe_logits(&loaded, &device),
        probe_logits(&reference, &device)
    );
}

/// Inputs past `max_position_embeddings` (256 here) are refused with the numbers, in the
/// forward pass and in generation.
#[test]
fn inputs_longer_than_the_context_are_refused() {
    let device = Device::flex();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device).unwrap();
    let err = model.ids_tensor(&[vec![5u32; 257]], &device).unwrap_err();
    assert!(
        err.to_string()
            .contains("257 tokens exceed the model's context of 256"),
        "{err}"
    );
    model.ids_tensor(&[vec![5u32; 256]], &device).unwrap();
    let config = GenerationConfig {
        max_new_tokens: 16,
        ..GenerationConfig::default()
    };
    let err = generate(&model, &[vec![5u32; 250]], &config, &device).unwrap_err();
    assert!(err.to_string().contains("266 tokens exceed"), "{err}");
}
