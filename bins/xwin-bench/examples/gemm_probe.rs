//! Probe: GFLOP/s of the `gemm` crate on the LM-head shape under different threading.
use std::time::Instant;

fn run(m: usize, n: usize, k: usize, par: gemm::Parallelism, split: usize) -> f64 {
    let a = vec![0.5f32; m * k];
    let b = vec![0.25f32; k * n];
    let mut c = vec![0f32; m * n];
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        if split <= 1 {
            unsafe {
                gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), 1, k as isize,
                    b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, par);
            }
        } else {
            use rayon::prelude::*;
            let rows = m.div_ceil(split);
            c.par_chunks_mut(rows * n).enumerate().for_each(|(i, chunk)| {
                let mm = chunk.len() / n;
                unsafe {
                    gemm::gemm(mm, n, k, chunk.as_mut_ptr(), 1, n as isize, false,
                        a.as_ptr().add(i * rows * k), 1, k as isize,
                        b.as_ptr(), 1, n as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::None);
                }
            });
        }
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    2.0 * (m * n * k) as f64 / times[2] / 1e9
}

fn main() {
    for (m, n, k) in [(2048, 32000, 256), (2048, 688, 256), (2048, 256, 688), (1024, 32000, 256)] {
        println!("{m}x{n}x{k}: none {:.1}  rayon(0) {:.1}  split2 {:.1}  split8 {:.1} GFLOP/s",
            run(m, n, k, gemm::Parallelism::None, 1),
            run(m, n, k, gemm::Parallelism::Rayon(0), 1),
            run(m, n, k, gemm::Parallelism::None, 2),
            run(m, n, k, gemm::Parallelism::None, 8));
    }
}
