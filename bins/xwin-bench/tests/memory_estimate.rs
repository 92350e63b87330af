//! The memory estimate every training stage logs at start against the measured peak resident
//! memory of real training steps (`xwin-bench train`, one process per shape so that each
//! peak is its own), at two batch sizes so that the per-token part is checked, not only the
//! per-parameter part. Tolerance 12 %: the allocator's slack at the peak varies between 11
//! and 35 % of the live tensors over the shapes measured (`docs/benchmarks.md`).

use std::process::Command;

fn measured_and_estimated(batch: usize, seq: usize) -> (f64, f64) {
    measured_and_estimated_in("f32", batch, seq)
}

fn measured_and_estimated_in(precision: &str, batch: usize, seq: usize) -> (f64, f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_xwin-bench"))
        .args(["--precision", precision])
        .args(["train", "--repeats", "1", "--size", "21m"])
        .args(["--batch", &batch.to_string(), "--seq", &seq.to_string()])
        .output()
        .expect("run xwin-bench");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let mib = |k: &str| {
        report[k]
            .as_f64()
            .unwrap_or_else(|| panic!("{k} in {report}"))
    };
    (mib("peak_rss_mib"), mib("estimated_peak_mib"))
}

#[test]
fn estimate_is_within_twelve_percent_of_the_measured_peak() {
    for (batch, seq) in [(2, 256), (8, 512)] {
        let (measured, estimated) = measured_and_estimated(batch, seq);
        let ratio = estimated / measured;
        eprintln!("{batch} x {seq}: measured {measured:.0} MiB, estimated {estimated:.0} MiB");
        assert!(
            (ratio - 1.0).abs() <= 0.12,
            "{batch} x {seq}: estimate {estimated:.0} MiB vs peak {measured:.0} MiB"
        );
    }
}

/// The attention scores the composite keeps (it trains in half precision; bf16 on the CPU runs
/// it): at equal tokens, 2 × 1024 has twice the score elements of 4 × 512, and the measured peak
/// grows by what the estimate's score and half-probability terms say, within 30 % (measured
/// +638 to +699 MiB against +810 estimated: a difference of two noisy peaks, and the estimate's
/// allocator slack on top). The CPU's emulated bf16 adds a constant the estimate leaves out,
/// 1.4–1.5× in all, which the difference cancels (`docs/benchmarks.md`).
#[test]
fn composite_attention_scores_grow_the_peak_as_estimated() {
    let (short_measured, short_estimated) = measured_and_estimated_in("bf16", 4, 512);
    let (long_measured, long_estimated) = measured_and_estimated_in("bf16", 2, 1024);
    let (measured, estimated) = (
        long_measured - short_measured,
        long_estimated - short_estimated,
    );
    eprintln!(
        "2 x 1024 over 4 x 512 in bf16: measured +{measured:.0} MiB, estimated +{estimated:.0} MiB"
    );
    assert!(
        estimated > 100.0,
        "the score term is missing: +{estimated:.0} MiB"
    );
    assert!(
        (measured / estimated - 1.0).abs() <= 0.30,
        "measured +{measured:.0} MiB vs estimated +{estimated:.0} MiB"
    );
}
