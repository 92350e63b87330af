//! Every loss variant, implicit reward, margin and accuracy equals the shared fixture
//! (`fixtures/dpo-loss.json`: TRL's formulas in float64 torch), per row and as batch means.

use serde_json::Value;
use xwin_dpo::loss::{LossConfig, LossType, PairLogps, pair_loss};

fn fixture() -> Value {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/dpo-loss.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn every_variant_equals_the_fixture() {
    let f = fixture();
    let beta = f["beta"].as_f64().unwrap();
    let eps = f["label_smoothing"].as_f64().unwrap();
    let lc = floats(&f["chosen_completion_len"]);
    let lr = floats(&f["rejected_completion_len"]);
    let pairs: Vec<PairLogps> = f["rows"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let r = floats(r);
            PairLogps {
                policy_chosen: r[0],
                policy_rejected: r[1],
                ref_chosen: r[2],
                ref_rejected: r[3],
                chosen_tokens: lc[i] as usize,
                rejected_tokens: lr[i] as usize,
            }
        })
        .collect();
    let cases = [
        ("dpo_sigmoid", LossType::Sigmoid, 0.0),
        ("cdpo_label_smoothing_0.1", LossType::Sigmoid, eps),
        ("robust_dpo_0.1", LossType::Robust, eps),
        ("ipo_unnormalized", LossType::IpoSum, 0.0),
        ("ipo_trl_length_normalized", LossType::Ipo, 0.0),
    ];
    let mut checked = 0;
    for (key, loss_type, label_smoothing) in cases {
        let config = LossConfig {
            loss_type,
            beta,
            label_smoothing,
            sft_weight: 0.0,
        };
        let want = floats(&f["per_row"][key]);
        let got: Vec<f64> = pairs.iter().map(|p| pair_loss(&config, p).loss).collect();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{key} row {i}: {g} vs {w}"
            );
            checked += 1;
        }
        let mean = got.iter().sum::<f64>() / got.len() as f64;
        let want_mean = f["mean"][key].as_f64().unwrap();
        assert!(
            (mean - want_mean).abs() <= 1e-6 * want_mean.abs().max(1.0),
            "{key} mean"
        );
    }
    assert_eq!(checked, 20);
    let config = LossConfig {
        beta,
        ..LossConfig::default()
    };
    let losses: Vec<_> = pairs.iter().map(|p| pair_loss(&config, p)).collect();
    for (key, get) in [
        (
            "chosen_reward",
            (|l: &xwin_dpo::loss::PairLoss| l.chosen_reward) as fn(&_) -> f64,
        ),
        ("rejected_reward", |l| l.rejected_reward),
        ("reward_margin", |l| l.margin()),
        ("reward_correct", |l| f64::from(u8::from(l.correct()))),
    ] {
        let want = floats(&f["per_row"][key]);
        for (l, w) in losses.iter().zip(&want) {
            assert!((get(l) - w).abs() < 1e-9, "{key}: {} vs {w}", get(l));
        }
    }
    let accuracy = losses.iter().filter(|l| l.correct()).count() as f64 / 4.0;
    assert_eq!(accuracy, f["mean"]["reward_accuracy"].as_f64().unwrap());
    // Row 2 is a tie (δ = 0): not correct, as TRL counts it.
    assert!(!losses[2].correct());
}
