//! Mixed precision against `torch.autocast` on the CPU (fixtures/train/mixed*, made by
//! scripts/make_mixed_fixtures.py): the tiny-llama on a right-padded batch, logits, masked SFT
//! loss and every parameter's gradient in bf16 and f16.
//!
//! Tolerances are stated against half precision's own drift, `torch autocast − torch f32`.
//! The forward rounds where autocast rounds (each product's f32 accumulation once, SiLU's
//! output), so the logits equal autocast's (measured: bit for bit on this machine; allowed: a
//! quarter of the drift, for a gemm that sums in another order). The backward rounds in other
//! places than torch's (its SiLU and product backward run in half), so each gradient must be
//! within 0.75 × autocast's own drift of autocast (measured ≤ 0.52) and drift the same way
//! (pooled ρ ≥ 0.85; measured 0.94). A cast in the wrong place (RoPE or softmax in half, a
//! product left in f32, SiLU unrounded) fails one of these.

mod common;

use burn::tensor::{Device, Int, Tensor};
use common::fixtures;
use serde_json::Value;
use xwin_model::{BatchLayout, Precision, lm_head_nll_mean, load_causal_lm};

struct Case {
    ids: Vec<Vec<u32>>,
    attention: Vec<Vec<bool>>,
    mask: Vec<Vec<bool>>,
    expected: Value,
    torch: Vec<u8>,
}

fn case() -> Case {
    let dir = fixtures().join("train");
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mixed.json")).unwrap()).unwrap();
    Case {
        ids: serde_json::from_value(expected["input_ids"].clone()).unwrap(),
        attention: xwin_testkit::bool_grid(&expected, "attention_mask"),
        mask: xwin_testkit::bool_grid(&expected, "loss_mask"),
        torch: std::fs::read(dir.join("mixed_grads.safetensors")).unwrap(),
        expected,
    }
}

impl Case {
    /// A torch tensor of the fixture, as f32 values.
    fn torch(&self, name: &str) -> Vec<f32> {
        let st = safetensors::SafeTensors::deserialize(&self.torch).unwrap();
        st.tensor(name)
            .unwrap_or_else(|_| panic!("fixture tensor {name}"))
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    /// Flat indices of the logits at real (unpadded) positions.
    fn real_logits(&self, vocab: usize) -> Vec<usize> {
        let seq = self.ids[0].len();
        (0..self.ids.len() * seq)
            .filter(|&i| self.attention[i / seq][i % seq])
            .flat_map(|i| i * vocab..(i + 1) * vocab)
            .collect()
    }
}

/// Ours in `precision`: logits, loss, and each parameter's gradient by HF name (HF layout).
struct Run {
    logits: Vec<f32>,
    loss: f32,
    grads: Vec<(String, Vec<f32>)>,
}

fn run(c: &Case, precision: Precision) -> Run {
    let device = Device::flex().autodiff();
    let model = load_causal_lm(fixtures().join("tiny-llama"), &device)
        .unwrap()
        .with_precision(precision);
    let ids: Tensor<2, Int> = model.ids_tensor(&c.ids, &device).unwrap();
    let layout = BatchLayout::from_attention_mask(&c.attention).unwrap();
    let hidden = model.hidden_states(ids, &layout, None);
    let logits = model.lm_logits(hidden.clone()).detach();
    let loss = lm_head_nll_mean(&model, hidden, &c.ids, &c.mask).unwrap();
    let value = loss.clone().into_scalar::<f32>();
    let grads = loss.backward();
    Run {
        logits: logits.try_into_vec_as::<f32>().unwrap(),
        loss: value,
        grads: common::grads_by_name(&model, &grads),
    }
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    xwin_testkit::max_abs_diff(a, b)
}

fn norm_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(x - y).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Pearson correlation of two drifts; NaN in either gives NaN (and fails a `>=` check).
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va * vb).sqrt()
}

/// Logits and loss: nearer to autocast than autocast is to f32, drifting the same way.
fn check_forward(precision: Precision) {
    let name = precision.name();
    let c = case();
    let ours = run(&c, precision);
    let ours_f32 = run(&c, Precision::F32);
    let torch = c.torch(&format!("{name}/logits"));
    let torch_f32 = c.torch("f32/logits");
    let real = c.real_logits(512);
    let pick = |v: &[f32]| real.iter().map(|&i| v[i]).collect::<Vec<f32>>();
    let (ours_l, torch_l, ours32, torch32) = (
        pick(&ours.logits),
        pick(&torch),
        pick(&ours_f32.logits),
        pick(&torch_f32),
    );
    assert!(max_abs(&ours32, &torch32) < 1e-4, "f32 logits");
    let drift = max_abs(&torch_l, &torch32);
    let off = max_abs(&ours_l, &torch_l);
    let ours_drift: Vec<f64> = ours_l
        .iter()
        .zip(&ours32)
        .map(|(a, b)| f64::from(a - b))
        .collect();
    let torch_drift: Vec<f64> = torch_l
        .iter()
        .zip(&torch32)
        .map(|(a, b)| f64::from(a - b))
        .collect();
    let rho = correlation(&ours_drift, &torch_drift);
    eprintln!(
        "{name} logits: max |ours − autocast| {off:.3e}, autocast's drift {drift:.3e}, ρ {rho:.3}"
    );
    assert!(
        drift > 1e-4,
        "{name}: the fixture's autocast drift is too small to test against"
    );
    assert!(
        off <= 0.25 * drift,
        "{name}: logits {off} from autocast, drift {drift}"
    );
    assert!(rho >= 0.9, "{name}: drift correlation {rho}");
    let want = c.expected["precisions"][name]["loss"].as_f64().unwrap() as f32;
    assert!(
        (ours.loss - want).abs() <= 1e-4,
        "{name}: loss {} vs autocast {want}",
        ours.loss
    );
}

/// Every gradient: within 0.75 × autocast's own drift of autocast (plus 1e-4 of its norm),
/// pooled drift correlated, and moved from our f32 gradient.
fn check_gradients(precision: Precision) {
    let name = precision.name();
    let c = case();
    let ours = run(&c, precision);
    let ours_f32 = run(&c, Precision::F32);
    let (mut pooled_ours, mut pooled_torch) = (Vec::new(), Vec::new());
    for ((n, g), (_, g32)) in ours.grads.iter().zip(&ours_f32.grads) {
        let torch = c.torch(&format!("{name}/{n}"));
        let torch32 = c.torch(&format!("f32/{n}"));
        assert!(
            max_abs(g32, &torch32) < 1e-4 * (1.0 + max_abs(&torch32, &vec![0.0; torch32.len()])),
            "f32 {n}"
        );
        let drift = norm_diff(&torch, &torch32);
        let off = norm_diff(g, &torch);
        let scale = norm_diff(&torch, &vec![0.0; torch.len()]);
        eprintln!(
            "{name} {n}: ‖ours − autocast‖ {off:.3e}, autocast's drift {drift:.3e} ({:.2})",
            off / drift
        );
        assert!(
            off <= 0.75 * drift + 1e-4 * scale,
            "{name} {n}: {off} vs drift {drift}"
        );
        assert!(
            norm_diff(g, g32) > 0.0,
            "{name} {n}: the half path did not move the gradient"
        );
        pooled_ours.extend(g.iter().zip(g32).map(|(a, b)| f64::from(a - b)));
        pooled_torch.extend(torch.iter().zip(&torch32).map(|(a, b)| f64::from(a - b)));
    }
    let rho = correlation(&pooled_ours, &pooled_torch);
    eprintln!("{name} gradients: pooled drift correlation {rho:.3}");
    assert!(rho >= 0.85, "{name}: gradient drift correlation {rho}");
}

#[test]
fn bf16_logits_and_loss_follow_autocast() {
    check_forward(Precision::Bf16);
}

#[test]
fn f16_logits_and_loss_follow_autocast() {
    check_forward(Precision::F16);
}

#[test]
fn bf16_gradients_follow_autocast() {
    check_gradients(Precision::Bf16);
}

#[test]
fn f16_gradients_follow_autocast() {
    check_gradients(Precision::F16);
}

/// Half-precision weights for inference (`load_causal_lm_in`): projections and the LM head
/// held in bf16/f16 only, embedding and norms in f32; the logits and greedy tokens equal bit
/// for bit those of f32 weights cast at use (the same half values reach the same products).
#[test]
fn half_weights_equal_f32_weights_cast_at_use() {
    use xwin_model::params::HfTensor;
    use xwin_model::{GenerationConfig, generate, load_causal_lm_in};
    let device = Device::flex();
    let dir = fixtures().join("tiny-llama");
    let c = case();
    let layout = BatchLayout::from_attention_mask(&c.attention).unwrap();
    for precision in [Precision::Bf16, Precision::F16] {
        let cast = load_causal_lm(&dir, &device)
            .unwrap()
            .with_precision(precision);
        let half = load_causal_lm_in(&dir, &device, precision).unwrap();
        let want = precision.half().map(burn::tensor::DType::from).unwrap();
        for (name, t) in half.hf_tensors() {
            let dtype = match t {
                HfTensor::Linear(w) => w.dtype(),
                HfTensor::Matrix(m) => m.dtype(),
                HfTensor::Vector(v) => v.dtype(),
            };
            let expected = if name.ends_with("proj.weight") || name == "lm_head.weight" {
                want
            } else {
                burn::tensor::DType::F32
            };
            assert_eq!(dtype, expected, "{precision}: {name}");
        }
        let logits = |m: &xwin_model::LlamaForCausalLM| -> Vec<f32> {
            let ids = m.ids_tensor(&c.ids, &device).unwrap();
            m.forward(ids, &layout, None)
                .try_into_vec_as::<f32>()
                .unwrap()
        };
        assert_eq!(logits(&half), logits(&cast), "{precision}: logits");
        let config = GenerationConfig {
            max_new_tokens: 12,
            ..GenerationConfig::default()
        };
        let prompt = vec![c.ids[0][..6].to_vec()];
        let a = generate(&half, &prompt, &config, &device).unwrap();
        let b = generate(&cast, &prompt, &config, &device).unwrap();
        assert!(!a[0][0].is_empty());
        assert_eq!(a, b, "{precision}: greedy tokens");
    }
}
