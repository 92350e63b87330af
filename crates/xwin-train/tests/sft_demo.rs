//! The SFT demo's logged loss is the token-weighted mean of its optimizer step: recomputed
//! here from the same micro-batches and the base model, it equals `metrics.jsonl`.

use burn::tensor::Device;
use std::path::PathBuf;
use xwin_model::load_causal_lm;
use xwin_train::sft::build_batches;
use xwin_train::{
    EpochPlan, SftConfig, StepMetrics, num_targets, read_config, run_sft, sft_loss_sum,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn demo_step_loss_is_the_token_weighted_mean() {
    let mut config: SftConfig = read_config(&root().join("configs/sft-tiny-demo.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    config.model.path = root().join(&config.model.path);
    config.data.train = root().join(&config.data.train);
    config.output = dir.path().join("run");
    config.checkpoint = None;
    config.batching.epochs = 1;
    config.train.grad_accum = 2;
    config.train.eval_every = None;
    run_sft(&config, |_| {}).unwrap();
    let logged: Vec<StepMetrics> = std::fs::read_to_string(config.output.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let device = Device::flex();
    let model = load_causal_lm(&config.model.path, &device).unwrap();
    let pad = model.config().eos_token_ids[0];
    let (batches, _, _) = build_batches(&config, pad).unwrap();
    let plan = EpochPlan::new(batches.len(), 2, 1, config.batching.seed);
    assert_eq!(logged.len(), plan.total_steps());
    let window: Vec<_> = (0..2)
        .map_while(|m| plan.locate(0, m))
        .map(|(_, i)| &batches[i])
        .collect();
    let (mut sum, mut items, mut means) = (0.0f64, 0usize, 0.0f64);
    for b in &window {
        let s = f64::from(
            sft_loss_sum(&model, b, &device)
                .unwrap()
                .into_scalar::<f32>(),
        );
        sum += s;
        items += num_targets(b);
        means += s / num_targets(b) as f64 / window.len() as f64;
    }
    let weighted = sum / items as f64;
    assert_eq!(logged[0].items, items);
    let first = f64::from(logged[0].loss);
    assert!(
        (first - weighted).abs() < 1e-5 * weighted,
        "logged {first} vs recomputed {weighted}"
    );
    assert!(
        (means - weighted).abs() > 1e-3,
        "mean of micro-batch means {means} would differ"
    );
}
