//! Probe: GFLOP/s of the `gemm` crate under different threading (one call with its own
//! Rayon split, row or column blocks on Rayon) on the LM head's shapes, or with `SHAPES=layer`
//! a decoder layer's; then burn's matmul on the LM head's products. `KEEP=1` keeps freed
//! memory mapped, as the binaries do.
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;
use std::time::Instant;

/// `c[m × n] = a[m × k] · b[k × n]` for the block starting at row `r0`, column `c0` (all
/// row-major, `c` with row stride `n`).
///
/// # Safety
/// The block must lie inside the three buffers, and no other thread write it meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn block(
    (n, k): (usize, usize),
    (r0, c0): (usize, usize),
    c: *mut f32,
    a: &[f32],
    b: &[f32],
    (rows, cols): (usize, usize),
    par: gemm::Parallelism,
) {
    unsafe {
        gemm::gemm(
            rows,
            cols,
            k,
            c.add(r0 * n + c0),
            1,
            n as isize,
            false,
            a.as_ptr().add(r0 * k),
            1,
            k as isize,
            b.as_ptr().add(c0),
            1,
            n as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// GFLOP/s of `m × n × k` (median of 5): `split` 1 = one call with `par`; 2..99 = that many
/// row blocks on Rayon; 100 + p = p column blocks on Rayon.
fn run(m: usize, n: usize, k: usize, par: gemm::Parallelism, split: usize) -> f64 {
    use rayon::prelude::*;
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        if std::env::var("FRESH").is_ok() {
            c = vec![0f32; m * n];
        }
        let ptr = c.as_mut_ptr() as usize;
        let dims = (n, k);
        // SAFETY: every block lies inside the buffers and blocks run at once are disjoint.
        let go = |at, size, par| unsafe { block(dims, at, ptr as *mut f32, &a, &b, size, par) };
        if split >= 100 {
            let cols = n.div_ceil(split - 100);
            (0..split - 100).into_par_iter().for_each(|i| {
                let c0 = i * cols;
                go((0, c0), (m, cols.min(n - c0)), gemm::Parallelism::None)
            });
        } else if split <= 1 {
            go((0, 0), (m, n), par);
        } else {
            let rows = m.div_ceil(split);
            (0..split).into_par_iter().for_each(|i| {
                let r0 = i * rows;
                go((r0, 0), (rows.min(m - r0), n), gemm::Parallelism::None)
            });
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    2.0 * (m * n * k) as f64 / times[2] / 1e9
}

fn main() {
    if std::env::var("KEEP").is_ok() {
        xwin_alloc::keep_freed_memory();
    }
    if std::env::var("SHAPES").is_err() {
        burn_probe();
    }
    let shapes: Vec<(usize, usize, usize)> = match std::env::var("SHAPES").as_deref() {
        // A decoder layer's products at 2048 tokens: q/k/v/o, q+k+v fused, gate/up, gate+up
        // fused, down; and the weight gradients (m = n small, k = tokens).
        Ok("layer") => vec![
            (2048, 256, 256),
            (2048, 768, 256),
            (2048, 688, 256),
            (2048, 1376, 256),
            (2048, 256, 688),
            (256, 256, 2048),
            (256, 768, 2048),
            (256, 688, 2048),
            (688, 256, 2048),
        ],
        _ => vec![
            (2048, 32000, 256),
            (2048, 688, 256),
            (2048, 256, 688),
            (1024, 32000, 256),
        ],
    };
    for (m, n, k) in shapes {
        println!(
            "{m}x{n}x{k}: none {:.1}  rayon(0) {:.1}  split2 {:.1}  split8 {:.1}  cols2 {:.1} GFLOP/s",
            run(m, n, k, gemm::Parallelism::None, 1),
            run(m, n, k, gemm::Parallelism::Rayon(0), 1),
            run(m, n, k, gemm::Parallelism::None, 2),
            run(m, n, k, gemm::Parallelism::None, 8),
            run(m, n, k, gemm::Parallelism::None, 102)
        );
    }
}

fn burn_probe() {
    use burn::tensor::{Device, Distribution, Tensor};
    let device = Device::flex();
    let t = |s: [usize; 2]| Tensor::<2>::random(s, Distribution::Default, &device);
    let time = |name: &str, flops: f64, f: &dyn Fn() -> Tensor<2>| {
        let _ = f().into_data();
        let mut ts = Vec::new();
        for _ in 0..5 {
            let s = Instant::now();
            let _ = f().into_data();
            ts.push(s.elapsed().as_secs_f64());
        }
        ts.sort_by(f64::total_cmp);
        println!(
            "burn {name}: {:.1} GFLOP/s ({:.1} ms)",
            flops / ts[2] / 1e9,
            ts[2] * 1e3
        );
    };
    let (h, w, g, wt) = (
        t([2048, 256]),
        t([256, 32000]),
        t([2048, 32000]),
        t([32000, 256]),
    );
    let fl = 2.0 * 2048.0 * 256.0 * 32000.0;
    time("H·W", fl, &|| h.clone().matmul(w.clone()));
    time("H·Wt^T", fl, &|| h.clone().matmul(wt.clone().transpose()));
    time("G·W^T", fl, &|| g.clone().matmul(w.clone().transpose()));
    time("H^T·G", fl, &|| h.clone().transpose().matmul(g.clone()));
}
