//! One AdamW step on a 32000 × 256 parameter: burn's AdamW against `xwin_train::FusedAdamW`.
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::optim::{AdamWConfig, Optimizer};
use burn::tensor::{Device, Distribution, Tensor};
use xwin_bench::{median, time};

fn main() {
    xwin_alloc::keep_freed_memory();
    let device = Device::flex();
    let p = Tensor::<2>::random([32000, 256], Distribution::Default, &device);
    let g = Tensor::<2>::random([32000, 256], Distribution::Default, &device);
    let burn = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .build();
    let fused = xwin_train::FusedAdamW::new(0.9, 0.999, 1e-8, 0.0);
    let (_, s) = burn.step(1e-3, p.clone(), g.clone(), None);
    let mut state = s;
    let b = median(time(10, || {
        let (_, s) = burn.step(1e-3, p.clone(), g.clone(), state.take());
        state = s;
    }));
    let (_, s) = fused.step(1e-3, p.clone(), g.clone(), None);
    let mut state = s;
    let f = median(time(10, || {
        let (_, s) = fused.step(1e-3, p.clone(), g.clone(), state.take());
        state = s;
    }));
    println!("burn {:.1} ms, fused {:.1} ms", b * 1e3, f * 1e3);
}
