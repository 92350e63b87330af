//! The RS stage from one config on the tiny fixtures: samples scored into Xwin-Set, the
//! response at the configured rank (among the first `n`) selected per prompt, the policy
//! finetuned on it; a rerun resumes; a reward model with another vocabulary is refused.

use burn::tensor::Device;
use std::path::{Path, PathBuf};
use xwin_data::{ChatTemplate, ReadOptions, XwinSet, load_tokenizer, read_records};
use xwin_model::load_causal_lm;
use xwin_rs::{LocalOptions, LocalSampler, RsConfig, SampleSpec, read_prompts, run_rs};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 4 samples for each prompt of the first 12 demo conversations (first reply only).
fn samples(dir: &Path) -> PathBuf {
    let conversations: String = std::fs::read_to_string(root().join("data/demo/sft.jsonl"))
        .unwrap()
        .lines()
        .take(12)
        .map(|l| format!("{l}\n"))
        .collect();
    let prompts_path = dir.join("prompts.jsonl");
    std::fs::write(&prompts_path, conversations).unwrap();
    let (prompts, _) = read_prompts(&prompts_path, Some(1), ReadOptions::default()).unwrap();
    let device = Device::flex();
    let policy = root().join("fixtures/tiny-llama");
    let model = load_causal_lm(&policy, &device).unwrap();
    let tokenizer = load_tokenizer(&policy.join("tokenizer.json")).unwrap();
    let sampler = LocalSampler {
        model: &model,
        tokenizer: &tokenizer,
        template: ChatTemplate::VicunaV11,
        name: "tiny".into(),
        device,
    };
    let spec = SampleSpec {
        n: 4,
        temperature: 1.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 16,
        seed: 3,
        pair_temperatures: None,
    };
    let out = dir.join("samples.jsonl");
    let options = LocalOptions {
        skip_long: true,
        ..LocalOptions::default()
    };
    sampler.run(&prompts, &spec, options, &out, |_| {}).unwrap();
    out
}

fn config(dir: &Path, samples: &Path, reward: &Path, select: &str) -> RsConfig {
    let text = format!(
        r#"
output = {out:?}
[model]
path = {policy:?}
[reward]
path = {reward:?}
[data]
samples = {samples:?}
max_len = 256
[select]
{select}
[batching]
epochs = 1
micro_batch_size = 4
[train]
lr = 1e-3
schedule = "constant"
warmup = {{ steps = 0 }}
grad_accum = 1
"#,
        out = dir.join("run").display().to_string(),
        policy = root().join("fixtures/tiny-llama").display().to_string(),
        reward = reward.display().to_string(),
        samples = samples.display().to_string(),
    );
    let path = dir.join("rs.toml");
    std::fs::write(&path, text).unwrap();
    xwin_train::read_config(&path).unwrap()
}

/// Mean over prompts of the score at `rank` among the first `n` samples, from the file.
fn expected_mean(set: &Path, rank: usize, n: usize) -> f64 {
    let (sets, _): (Vec<XwinSet>, _) = read_records(set, ReadOptions::default()).unwrap();
    let picks: Vec<f64> = sets
        .iter()
        .map(|s| {
            let mut scores: Vec<f32> = s
                .responses
                .iter()
                .filter(|r| r.index.unwrap() < n)
                .map(|r| r.score)
                .collect();
            scores.sort_by(|a, b| b.total_cmp(a));
            f64::from(scores[rank - 1])
        })
        .collect();
    picks.iter().sum::<f64>() / picks.len() as f64
}

#[test]
fn scores_selects_the_rank_and_finetunes_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let samples = samples(dir.path());
    let reward = root().join("fixtures/tiny-llama-rm");
    let top1 = config(dir.path(), &samples, &reward, "rank = 1");
    let summary = run_rs(&top1, |_| {}).unwrap();
    let set = dir.path().join("run/xwin-set.jsonl");
    let scored = summary.scored.unwrap();
    assert_eq!(scored.scored_responses, 4 * scored.prompts);
    assert_eq!(summary.selected + summary.eval_selected, summary.prompts);
    assert!((summary.mean_selected_score - expected_mean(&set, 1, 4)).abs() < 1e-6);
    assert!((summary.stats.mean_by_rank[0] - expected_mean(&set, 1, 4)).abs() < 1e-6);
    assert!(summary.stats.mean_by_rank.windows(2).all(|w| w[0] >= w[1]));
    assert!(summary.finetune.steps > 0 && summary.finetune.last_loss.is_finite());
    assert!(dir.path().join("run/model/model.safetensors").exists());
    assert!(dir.path().join("run/rank-stats.json").exists());

    // The same config again: nothing is scored twice, training resumes from its end.
    let again = run_rs(&top1, |_| {}).unwrap();
    let rescored = again.scored.unwrap();
    assert_eq!(
        (rescored.already_done, rescored.scored_prompts),
        (scored.prompts, 0)
    );
    assert_eq!(
        again.finetune.resumed_from, None,
        "no checkpoint policy: trains again"
    );

    // Ablations: rank 3, and the best of the first 2 samples only.
    std::fs::remove_dir_all(dir.path().join("run/model")).ok();
    let third = config(dir.path(), &samples, &reward, "rank = 3");
    let s3 = run_rs(
        &xwin_rs::RsConfig {
            output: dir.path().join("run3"),
            ..third
        },
        |_| {},
    );
    let s3 = s3.unwrap();
    let set3 = dir.path().join("run3/xwin-set.jsonl");
    assert!((s3.mean_selected_score - expected_mean(&set3, 3, 4)).abs() < 1e-6);
    let first2 = config(dir.path(), &samples, &reward, "rank = 1\nn = 2");
    let s2 = run_rs(
        &xwin_rs::RsConfig {
            output: dir.path().join("run2"),
            ..first2
        },
        |_| {},
    )
    .unwrap();
    let set2 = dir.path().join("run2/xwin-set.jsonl");
    assert!((s2.mean_selected_score - expected_mean(&set2, 1, 2)).abs() < 1e-6);
    assert!(s2.mean_selected_score <= summary.mean_selected_score + 1e-6);
    assert_eq!(s2.stats.mean_by_rank.len(), 2);
}

#[test]
fn a_reward_model_with_another_vocabulary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let reward = dir.path().join("rm");
    std::fs::create_dir_all(&reward).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(
            root().join("fixtures/tiny-llama-rm").join(f),
            reward.join(f),
        )
        .unwrap();
    }
    // The policy's tokenizer with one more (added) token.
    let text = std::fs::read_to_string(root().join("fixtures/tiny-llama/tokenizer.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let size = json["model"]["vocab"].as_object().unwrap().len();
    json["added_tokens"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": size, "content": "<extra>", "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
    std::fs::write(reward.join("tokenizer.json"), json.to_string()).unwrap();
    let samples = dir.path().join("samples.jsonl");
    std::fs::write(&samples, "").unwrap();
    let err = run_rs(&config(dir.path(), &samples, &reward, "rank = 1"), |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("differ") && text.contains("rm/tokenizer.json"),
        "{text}"
    );
}
