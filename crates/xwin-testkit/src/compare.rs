//! Elementwise comparisons that report NaN instead of dropping it (`f32::max` returns the
//! other operand when one is NaN, so a NaN anywhere would pass a `max`-based check).

/// The larger of two values, NaN if either is NaN.
pub fn nan_max(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

/// Largest `|a - b|` over the elements; NaN when any element of either side is NaN.
/// Panics when the lengths differ.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "compared slices differ in length");
    a.iter()
        .zip(b)
        .fold(0.0f32, |worst, (x, y)| nan_max(worst, (x - y).abs()))
}

/// Asserts `|ours − theirs| ≤ tol · max(1, |theirs|)` for every element (absolute for small
/// values, relative for large ones), naming `what` and the worst element; NaN fails.
pub fn assert_close(what: &str, ours: &[f32], theirs: &[f32], tol: f32) {
    assert_eq!(
        ours.len(),
        theirs.len(),
        "{what}: {} values vs {}",
        ours.len(),
        theirs.len()
    );
    let mut worst: Option<(usize, f32)> = None;
    for (i, (x, y)) in ours.iter().zip(theirs).enumerate() {
        let err = (x - y).abs() / y.abs().max(1.0);
        let bad = err.is_nan() || err > tol;
        if bad && worst.is_none_or(|(_, w)| err.is_nan() || err > w) {
            worst = Some((i, err));
        }
    }
    if let Some((i, err)) = worst {
        panic!(
            "{what}: element {i} is {} vs reference {} (scaled error {err} > {tol})",
            ours[i], theirs[i]
        );
    }
}

/// A parameter as HF stores it, on the host (a linear weight transposed back to `[out, in]`).
pub fn hf_host(t: &xwin_model::params::HfTensor) -> Vec<f32> {
    use xwin_model::params::HfTensor;
    match t {
        HfTensor::Linear(w) => w.clone().transpose().try_to_vec_as::<f32>().expect("f32"),
        HfTensor::Matrix(m) => m.try_to_vec_as::<f32>().expect("f32"),
        HfTensor::Vector(v) => v.try_to_vec_as::<f32>().expect("f32"),
    }
}

/// Asserts every parameter of `ours` within `tol` of `theirs` (same names, same order) with
/// [`assert_close`]; returns the largest absolute difference.
pub fn assert_params_close(
    what: &str,
    ours: &xwin_model::params::HfTensors,
    theirs: &xwin_model::params::HfTensors,
    tol: f32,
) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "{what}: parameter counts differ");
    let mut worst = 0.0f32;
    for ((n, x), (m, y)) in ours.iter().zip(theirs) {
        assert_eq!(n, m, "{what}: parameter order");
        let (x, y) = (hf_host(x), hf_host(y));
        assert_close(&format!("{what}: {n}"), &x, &y, tol);
        worst = nan_max(worst, max_abs_diff(&x, &y));
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nan_is_never_dropped() {
        assert!(max_abs_diff(&[1.0, f32::NAN], &[1.0, 2.0]).is_nan());
        assert!(max_abs_diff(&[f32::NAN, 1.0], &[1.0, 1.0]).is_nan());
        assert_eq!(max_abs_diff(&[1.0, 2.0], &[1.5, 2.0]), 0.5);
        assert!(std::panic::catch_unwind(|| assert_close("x", &[f32::NAN], &[0.0], 1.0)).is_err());
        assert!(std::panic::catch_unwind(|| assert_close("x", &[1e6 + 1.0], &[1e6], 1e-5)).is_ok());
        assert!(std::panic::catch_unwind(|| assert_close("x", &[1.1], &[1.0], 1e-5)).is_err());
    }
}
