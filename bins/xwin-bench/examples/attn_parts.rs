//! Attention's pieces at the benchmark shape ([4, 8, 512, 512] scores), untracked, one line
//! each in ms: `cargo run -p xwin-bench --example attn_parts`.

#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::{Device, Distribution, Tensor};
use xwin_bench::{median, time};
fn main() {
    xwin_alloc::keep_freed_memory();
    let device = Device::flex();
    let s = Tensor::<4>::random([4, 8, 512, 512], Distribution::Default, &device);
    let q = Tensor::<4>::random([4, 8, 512, 32], Distribution::Default, &device);
    let row = s.clone().max_dim(3);
    let sync = || device.sync().unwrap();
    let t = |name: &str, f: &mut dyn FnMut()| {
        let m = median(time(5, || {
            f();
            sync();
        }));
        println!("{name:28} {:7.2} ms", m * 1e3);
    };
    t("matmul q.kT", &mut || {
        let _ = q.clone().matmul(q.clone().swap_dims(2, 3));
    });
    t("matmul p.v", &mut || {
        let _ = s.clone().matmul(q.clone());
    });
    t("exp", &mut || {
        let _ = s.clone().exp();
    });
    t("add same shape", &mut || {
        let _ = s.clone() + s.clone();
    });
    t("sub row-broadcast", &mut || {
        let _ = s.clone() - row.clone();
    });
    t("div row-broadcast", &mut || {
        let _ = s.clone() / row.clone();
    });
    t("max_dim", &mut || {
        let _ = s.clone().max_dim(3);
    });
    t("sum_dim", &mut || {
        let _ = s.clone().sum_dim(3);
    });
    t("mul same shape", &mut || {
        let _ = s.clone() * s.clone();
    });
    let (qq, kk, vv) = (q.clone(), q.clone(), q.clone());
    let causal = burn::tensor::ops::AttentionModuleOptions {
        is_causal: true,
        ..Default::default()
    };
    t("flex fused attention (fwd)", &mut || {
        let _ =
            burn::tensor::module::attention(qq.clone(), kk.clone(), vv.clone(), None, None, causal);
    });
    t("clone+into_data", &mut || {
        let _ = s.clone().into_data();
    });
}
