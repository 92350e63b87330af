//! The `xwin-infer` command line, run as a user runs it.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures")
        .join(name)
}

fn run(args: &[&str]) -> (bool, Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xwin-infer"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let value = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (
        out.status.success(),
        value,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("tiny-llama/expected.json")).unwrap())
        .unwrap()
}

fn ids_arg(ids: &Value) -> String {
    ids.as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn logits_of_a_ragged_batch_match_transformers() {
    let exp = expected();
    let model = fixture("tiny-llama");
    let first = ids_arg(&exp["input_ids"][0]);
    // The second sequence cut to 5 tokens: its logits are the first 5 rows of the fixture's.
    let second: Vec<String> = exp["input_ids"][1].as_array().unwrap()[..5]
        .iter()
        .map(|v| v.to_string())
        .collect();
    let (ok, out, err) = run(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        &first,
        "--ids",
        &second.join(","),
    ]);
    assert!(ok, "{err}");
    let logits = out["logits"].as_array().unwrap();
    assert_eq!(logits.len(), 2);
    assert_eq!(logits[1].as_array().unwrap().len(), 5);
    for (seq, positions) in [(0usize, 12usize), (1, 5)] {
        for pos in 0..positions {
            let got = logits[seq][pos].as_array().unwrap();
            let want = exp["logits"][seq][pos].as_array().unwrap();
            assert_eq!(got.len(), 512);
            for (g, w) in got.iter().zip(want) {
                assert!((g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4);
            }
        }
    }
}

#[test]
fn greedy_generation_matches_transformers() {
    let exp = expected();
    let model = fixture("tiny-llama");
    let prompt = ids_arg(&exp["input_ids"][0]);
    let (ok, out, err) = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        &prompt,
        "--max-new-tokens",
        "16",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out["ids"], exp["greedy"]["new_tokens"][0]);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let model = fixture("tiny-llama");
    let args = [
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1,2,3",
        "--max-new-tokens",
        "10",
        "--temperature",
        "0.8",
        "--top-p",
        "0.9",
        "--top-k",
        "40",
        "--seed",
        "5",
    ];
    let (ok, a, err) = run(&args);
    assert!(ok, "{err}");
    assert_eq!(a["ids"].as_array().unwrap().len(), 10);
    assert_eq!(run(&args).1, a);
}

#[test]
fn tokenize_prints_ids_without_bos() {
    let exp = expected();
    let example = &exp["tokenizer"]["examples"][0];
    let tok = fixture("tiny-llama/tokenizer.json");
    let (ok, out, err) = run(&[
        "tokenize",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--text",
        example["text"].as_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(out["ids"], example["ids"]);
}

#[test]
fn errors_go_to_stderr_with_a_failing_exit() {
    let model = fixture("tiny-llama");
    let (ok, out, err) = run(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1,2,x",
    ]);
    assert!(!ok);
    assert_eq!(out, Value::Null);
    assert!(err.contains("`x` in --ids is not a token id"), "{err}");
    let (ok, _, err) = run(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1,9999",
    ]);
    assert!(!ok);
    assert!(err.contains("token id 9999"), "{err}");
    let (ok, _, err) = run(&["logits", "--model", "/nonexistent", "--ids", "1"]);
    assert!(!ok);
    assert!(err.contains("/nonexistent"), "{err}");
    let (ok, _, err) = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1",
        "--device",
        "tpu",
    ]);
    assert!(!ok);
    assert!(
        err.contains("unknown or not compiled-in device `tpu`"),
        "{err}"
    );
}

#[test]
fn convert_writes_a_loadable_checkpoint() {
    let out_dir = tempfile::tempdir().unwrap();
    let model = fixture("tiny-llama");
    let (ok, _, err) = run(&[
        "convert",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out_dir.path().to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    let (ok, a, _) = run(&[
        "generate",
        "--model",
        out_dir.path().to_str().unwrap(),
        "--ids",
        "1,45,300",
        "--max-new-tokens",
        "8",
    ]);
    let (_, b, _) = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--ids",
        "1,45,300",
        "--max-new-tokens",
        "8",
    ]);
    assert!(ok);
    assert_eq!(a, b);
}

/// `reward` on the reward-model fixture and `logprobs` on the causal one print what
/// `transformers` computed (fixtures' expected.json), ragged rows padded by the tool.
#[test]
fn reward_and_logprobs_equal_transformers() {
    let rm = fixture("tiny-llama-rm");
    let exp: Value =
        serde_json::from_str(&std::fs::read_to_string(rm.join("expected.json")).unwrap()).unwrap();
    let rm = rm.display().to_string();
    let lengths: Vec<usize> = serde_json::from_value(exp["lengths"].clone()).unwrap();
    let rows: Vec<String> = (0..lengths.len())
        .map(|r| {
            ids_arg(&Value::from(
                exp["input_ids"][r].as_array().unwrap()[..lengths[r]].to_vec(),
            ))
        })
        .collect();
    let mut args = vec!["reward", "--model", &rm];
    for row in &rows {
        args.extend(["--ids", row]);
    }
    let (ok, got, err) = run(&args);
    assert!(ok, "{err}");
    let got: Vec<f32> = serde_json::from_value(got["rewards"].clone()).unwrap();
    let want: Vec<f32> = serde_json::from_value(exp["rewards"].clone()).unwrap();
    assert!(
        xwin_testkit::max_abs_diff(&got, &want) < 1e-4,
        "{got:?} vs {want:?}"
    );

    let exp = expected();
    let lm = fixture("tiny-llama").display().to_string();
    let (a, b) = (ids_arg(&exp["input_ids"][0]), ids_arg(&exp["input_ids"][1]));
    let (ok, got, err) = run(&[
        "logprobs", "--model", &lm, "--ids", &a, "--ids", &b, "--from", "6",
    ]);
    assert!(ok, "{err}");
    let sums: Vec<f32> = serde_json::from_value(got["sum"].clone()).unwrap();
    let want: Vec<f32> = serde_json::from_value(exp["completion_logps"]["sum"].clone()).unwrap();
    assert!(
        xwin_testkit::max_abs_diff(&sums, &want) < 1e-3,
        "{sums:?} vs {want:?}"
    );
    let per: Vec<Vec<f32>> = serde_json::from_value(got["per_token"].clone()).unwrap();
    let want: Vec<Vec<f32>> =
        serde_json::from_value(exp["completion_logps"]["per_token"].clone()).unwrap();
    for (p, w) in per.iter().zip(&want) {
        assert!(xwin_testkit::max_abs_diff(p, w) < 1e-4, "{p:?} vs {w:?}");
    }
}

/// `--precision bf16`: logits within bf16's drift of f32's (tiny-llama: 3.8e-2 for torch's
/// autocast) and not equal to them (the products did run in bf16); generation through the KV
/// cache runs in it too; an unknown precision is refused with the names it accepts.
#[test]
fn precision_flag_runs_the_products_in_half() {
    let model = fixture("tiny-llama");
    let ids = ids_arg(&expected()["input_ids"][0]);
    let logits = |precision: &str| -> Vec<f64> {
        let (ok, out, err) = run(&[
            "logits",
            "--model",
            model.to_str().unwrap(),
            "--precision",
            precision,
            "--ids",
            &ids,
        ]);
        assert!(ok, "{err}");
        out["logits"][0]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|row| row.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
            .collect()
    };
    let (full, half) = (logits("f32"), logits("bf16"));
    assert_eq!(full.len(), half.len());
    let diff = full
        .iter()
        .zip(&half)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f64, |m, d| if d.is_nan() { f64::NAN } else { m.max(d) });
    assert!(
        diff > 0.0 && diff < 0.1,
        "bf16 vs f32 logits: max |Δ| {diff}"
    );

    let (ok, out, err) = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--precision",
        "f16",
        "--ids",
        "1,2,3",
        "--max-new-tokens",
        "8",
    ]);
    assert!(ok, "{err}");
    let n = out["ids"].as_array().map_or(0, Vec::len);
    assert!((1..=8).contains(&n), "{out}");

    let (ok, _, err) = run(&[
        "logits",
        "--model",
        model.to_str().unwrap(),
        "--precision",
        "fp8",
        "--ids",
        "1,2",
    ]);
    assert!(!ok);
    assert!(err.contains("fp8") && err.contains("bf16"), "{err}");
}
