//! Probe: the memory a stack of training attentions keeps for the backward pass, the lean op
//! (what trains off the CPU) against the composite it replaced, at the 21M benchmark's shape
//! (4 × 512 tokens, 8 heads of 32) over `LAYERS` (6) layers. Run once per variant, since peak
//! resident memory only grows: `VARIANT=lean`, `composite` or `composite-bf16` (its products
//! in bf16, as half-precision training runs it).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::{Device, Distribution, Tensor};
use xwin_model::Precision;
use xwin_model::attention::{attention_bias, attention_with_bias, attention_with_bias_in};
use xwin_model::lean_attention::lean_attention;

fn rss_mib(key: &str) -> f64 {
    xwin_bench::status_mib(key).expect("/proc/self/status")
}

fn main() {
    xwin_alloc::keep_freed_memory();
    let variant = std::env::var("VARIANT").unwrap_or_else(|_| "lean".into());
    let layers: usize = std::env::var("LAYERS")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(6);
    let device = Device::flex().autodiff();
    let (b, h, s, d) = (4, 8, 512, 32);
    let x =
        Tensor::<4>::random([b, h, s, d], Distribution::Normal(0.0, 1.0), &device).require_grad();
    let bias = attention_bias(s, s, None, &device);
    let before = rss_mib("VmRSS:");
    let mut y = x.clone();
    for _ in 0..layers {
        let (q, k, v, bias) = (y.clone(), y.clone(), y.clone(), bias.clone());
        y = match variant.as_str() {
            "lean" => lean_attention(q, k, v, bias),
            "composite" => attention_with_bias(q, k, v, bias),
            "composite-bf16" => attention_with_bias_in(q, k, v, bias, Precision::Bf16),
            other => panic!("VARIANT={other}: lean, composite or composite-bf16"),
        };
    }
    let kept = rss_mib("VmRSS:") - before;
    let _ = y.sum().backward();
    let peak = rss_mib("VmHWM:") - before;
    let scores = (b * h * s * s * 4) as f64 / (1 << 20) as f64;
    println!(
        "{}: {layers} layers kept {kept:.0} MiB after the forward, peak {peak:.0} MiB over the \
         start (one [b, h, s, s] f32 score matrix: {scores:.0} MiB)",
        variant
    );
}
