//! The reward model against `transformers`' `LlamaForSequenceClassification`
//! (`fixtures/tiny-llama-rm`, from ../shared/fixtures): rewards of a right-padded batch,
//! the same rows left-padded, a save → load round trip, and a causal LM refused by name.

mod common;

use burn::tensor::Device;
use common::{expected, fixtures, ids};
use xwin_model::{LlamaForReward, SaveOptions, load_reward_model, save_reward_model};
use xwin_testkit::max_abs_diff;

fn bits(v: &serde_json::Value) -> Vec<Vec<bool>> {
    ids(v)
        .into_iter()
        .map(|r| r.into_iter().map(|x| x == 1).collect())
        .collect()
}

#[test]
fn rewards_equal_transformers() {
    let device = Device::flex();
    let dir = fixtures().join("tiny-llama-rm");
    let exp = expected(&dir);
    let model = load_reward_model(&dir, &device).unwrap();
    let of_fixture = |m: &LlamaForReward| -> Vec<f32> {
        let (ids, mask) = (ids(&exp["input_ids"]), bits(&exp["attention_mask"]));
        m.rewards(&ids, &mask, &device)
            .unwrap()
            .try_into_vec_as::<f32>()
            .unwrap()
    };
    let got = of_fixture(&model);
    let want: Vec<f32> = serde_json::from_value(exp["rewards"].clone()).unwrap();
    let diff = max_abs_diff(&got, &want);
    eprintln!("tiny-llama-rm: max |Δreward| = {diff:.2e}");
    assert!(diff < 1e-4, "{got:?} vs {want:?}");

    // Left padding: the same real tokens, pads in front, the same rewards.
    let (rows, masks): (Vec<Vec<u32>>, Vec<Vec<bool>>) = ids(&exp["input_ids"])
        .into_iter()
        .zip(bits(&exp["attention_mask"]))
        .map(|(r, m)| {
            let real: Vec<u32> = r
                .iter()
                .zip(&m)
                .filter(|(_, m)| **m)
                .map(|(t, _)| *t)
                .collect();
            let pad = r.len() - real.len();
            let ids = std::iter::repeat_n(0, pad).chain(real).collect();
            let mask = std::iter::repeat_n(false, pad)
                .chain(std::iter::repeat_n(true, r.len() - pad))
                .collect();
            (ids, mask)
        })
        .unzip();
    let left = model
        .rewards(&rows, &masks, &device)
        .unwrap()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert!(max_abs_diff(&left, &want) < 1e-4, "{left:?}");

    // Save and load back: the same rewards, HF class and label count in config.json.
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("rm");
    save_reward_model(&model, &target, SaveOptions::default(), &[]).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(target.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["id2label"].as_object().unwrap().len(), 1);
    let back = load_reward_model(&target, &device).unwrap();
    assert_eq!(of_fixture(&back), got);
}

#[test]
fn a_causal_lm_is_not_a_reward_model() {
    let err = load_reward_model(fixtures().join("tiny-llama"), &Device::flex()).unwrap_err();
    assert!(err.to_string().contains("score.weight"), "{err}");
}
