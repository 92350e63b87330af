//! The fused CPU RMSNorm (`cpu_ops::rms_norm`) equals burn's `RmsNorm`, values and the
//! gradients of the input and γ, elementwise: rows of a 3-d activation more and fewer than one
//! γ-gradient block (32 rows), a width that is not a multiple of eight, rows of very different
//! scales. Tolerance 1e-5 relative (f32; the two sum the squares in different orders).

use burn::module::Param;
use burn::nn::{RmsNorm, RmsNormConfig};
use burn::tensor::{Device, Distribution, Tensor};
use xwin_model::Precision;
use xwin_model::cpu_ops::rms_norm;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().expect("f32")
}

fn check(batch: usize, seq: usize, d: usize) {
    let device = Device::flex().autodiff();
    let mut norm: RmsNorm = RmsNormConfig::new(d).with_epsilon(1e-5).init(&device);
    let gamma = Tensor::<1>::random([d], Distribution::Normal(1.0, 0.3), &device);
    norm.gamma = Param::from_tensor(gamma);
    // Rows of different scales: the per-row normalisation must follow each.
    let scale = Tensor::<3>::random([batch, seq, 1], Distribution::Uniform(0.01, 30.0), &device);
    let x = (Tensor::<3>::random([batch, seq, d], Distribution::Normal(0.0, 1.0), &device) * scale)
        .detach()
        .require_grad();
    let w = Tensor::<3>::random([batch, seq, d], Distribution::Normal(0.0, 1.0), &device);
    let ours = rms_norm(&norm, x.clone(), Precision::F32);
    let theirs = norm.forward(x.clone());
    let what = format!("{batch} x {seq} x {d}");
    let g_ours = (ours.clone() * w.clone()).sum().backward();
    let g_theirs = (theirs.clone() * w).sum().backward();
    let compare = |name: &str, a: Vec<f32>, b: Vec<f32>| {
        xwin_testkit::assert_close(&format!("{what}: {name}"), &a, &b, 1e-5);
    };
    compare("values", host(ours), host(theirs));
    let dx = |g| host(x.grad(g).expect("input gradient"));
    compare("d input", dx(&g_ours), dx(&g_theirs));
    let d_gamma = |g| host(norm.gamma.val().grad(g).expect("gamma gradient"));
    compare("d gamma", d_gamma(&g_ours), d_gamma(&g_theirs));
}

#[test]
fn equals_burn_rms_norm() {
    check(2, 40, 24); // 80 rows: two full γ blocks and a partial one
    check(1, 3, 13); // fewer rows than a block, a width not a multiple of eight
    check(4, 64, 256); // the benchmark model's width
}
