//! Attention at the benchmark shape (4 × 8 heads × 512 × 32) in a loop: the fused CPU kernel
//! (what training runs), the composite and burn's inference kernel, for timing and `perf record`.
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Tensor};
use xwin_model::attention::causal_attention_tracked;
use xwin_model::cpu_ops::fused_causal_attention;

fn per_call(name: &str, n: usize, mut f: impl FnMut()) {
    f();
    let t = std::time::Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name}: {:.1} ms",
        t.elapsed().as_secs_f64() * 1000.0 / n as f64
    );
}

fn main() {
    xwin_alloc::keep_freed_memory();
    let only = std::env::args().nth(1);
    let (b, h, s, d) = (4, 8, 512, 32);
    for device in [Device::flex().autodiff(), Device::flex()] {
        let tracked = device.is_autodiff();
        let r = || {
            let t = Tensor::<4>::random([b, h, s, d], Distribution::Default, &device);
            if tracked { t.require_grad() } else { t }
        };
        let (q, k, v) = (r(), r(), r());
        let ones = Tensor::<2>::ones([b, s], &device);
        let run = |name: &str, f: &dyn Fn() -> Tensor<4>| {
            if only.as_deref().is_some_and(|o| !name.starts_with(o)) {
                return;
            }
            if tracked {
                per_call(&format!("{name} fwd+bwd"), 20, || {
                    let _ = f().sum().backward();
                });
            } else {
                per_call(&format!("{name} fwd"), 20, || {
                    let _ = f().into_data();
                });
            }
        };
        run("fused", &|| {
            fused_causal_attention(q.clone(), k.clone(), v.clone(), ones.clone())
        });
        run("composite", &|| {
            causal_attention_tracked(q.clone(), k.clone(), v.clone(), None)
        });
        if !tracked {
            let options = AttentionModuleOptions {
                scale: None,
                softcap: None,
                is_causal: true,
            };
            run("burn", &|| {
                attention(q.clone(), k.clone(), v.clone(), None, None, options)
            });
        }
    }
}
