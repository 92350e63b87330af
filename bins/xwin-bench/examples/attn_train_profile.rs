//! Tracked attention fwd+bwd at the benchmark shape in a loop, for `perf record`.
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::{Device, Distribution, Tensor};
fn main() {
    xwin_alloc::keep_freed_memory();
    let device = Device::flex().autodiff();
    let r = || Tensor::<4>::random([4, 8, 512, 32], Distribution::Default, &device).require_grad();
    let (q, k, v) = (r(), r(), r());
    let t = std::time::Instant::now();
    for _ in 0..20 {
        let out =
            xwin_model::attention::causal_attention_tracked(q.clone(), k.clone(), v.clone(), None);
        let _ = out.sum().backward();
    }
    println!(
        "{:.1} ms per fwd+bwd",
        t.elapsed().as_secs_f64() * 1000.0 / 20.0
    );
}
