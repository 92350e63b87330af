//! Where a reward-model step's time goes at `xwin-bench rm`'s shape (8 rows × 256 tokens,
//! the 21M config): forward+backward of the whole model, the optimizer, and one decoder layer's
//! pieces each forward+backward. Medians of 10 in ms. For finding the next thing to fix.
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::module::Module;
use burn::tensor::{Device, Distribution, Tensor, activation::silu};
use xwin_bench::{bench_config, median, time};

fn main() {
    xwin_alloc::keep_freed_memory();
    let device = Device::flex().autodiff();
    let config = bench_config();
    let (rows, seq) = (8, 256);
    let ms = |f: &mut dyn FnMut()| median(time(10, f)) * 1e3;
    let policy = xwin_model::LlamaForCausalLM::random(&config, &device);
    let rm = xwin_model::LlamaForReward::from_policy(policy, 0.02, 0).expect("rm");
    let ids: Vec<Vec<u32>> = (0..rows)
        .map(|r| {
            (0..seq)
                .map(|t| ((r * 7 + t * 13) % 31000 + 3) as u32)
                .collect()
        })
        .collect();
    let attention = vec![vec![true; seq]; rows];
    let fwd_bwd = ms(&mut || {
        let _ = rm
            .rewards(&ids, &attention, &device)
            .unwrap()
            .sum()
            .backward();
    });
    let plain = rm.valid();
    let fwd = ms(&mut || {
        let _ = plain
            .rewards(&ids, &attention, &device.clone().inner())
            .unwrap()
            .into_data();
    });
    let mut optim = xwin_train::AdamWSettings::default().build();
    let mut model = Some(rm.clone());
    // The optimizer alone: a step's time minus its forward+backward.
    let step = ms(&mut || {
        let m = model.take().unwrap();
        let grads = m
            .rewards(&ids, &attention, &device)
            .unwrap()
            .sum()
            .backward();
        let grads = burn::optim::GradientsParams::from_grads(grads, &m);
        model = Some(optim.step(1e-4, m, grads));
    });
    let opt = step - fwd_bwd;
    println!("model fwd+bwd {fwd_bwd:.1}  fwd untracked {fwd:.1}  adamw {opt:.1}");

    let (h, inter) = (config.hidden_size, config.intermediate_size);
    let r = |s: [usize; 3]| {
        Tensor::<3>::random(s, Distribution::Normal(0.0, 0.5), &device).require_grad()
    };
    let x = r([rows, seq, h]);
    let mut one = config.clone();
    one.num_hidden_layers = 1;
    let rm1 = xwin_model::LlamaForReward::from_policy(
        xwin_model::LlamaForCausalLM::random(&one, &device),
        0.02,
        0,
    )
    .expect("rm");
    let t1 = ms(&mut || {
        let _ = rm1
            .rewards(&ids, &attention, &device)
            .unwrap()
            .sum()
            .backward();
    });
    let layers = config.num_hidden_layers as f64;
    let per_layer = (fwd_bwd - t1) / (layers - 1.0);
    println!(
        "per layer fwd+bwd {per_layer:.1}  embedding+score+rest {:.1}",
        t1 - per_layer
    );
    let g = r([rows, seq, inter]);
    let u = r([rows, seq, inter]);
    let sw = ms(&mut || {
        let _ = (silu(g.clone()) * u.clone()).sum().backward();
    });
    let w = Tensor::<2>::random([h, inter], Distribution::Default, &device).require_grad();
    let mm = ms(&mut || {
        let _ = x
            .clone()
            .matmul(w.clone().unsqueeze::<3>())
            .sum()
            .backward();
    });
    let norm = ms(&mut || {
        let var = x.clone().square().mean_dim(2);
        let _ = (x.clone() * (var + 1e-5).sqrt().recip()).sum().backward();
    });
    let q4 = Tensor::<4>::random([rows, 8, seq, 32], Distribution::Default, &device).require_grad();
    let cos = Tensor::<4>::random([rows, 1, seq, 32], Distribution::Default, &device);
    let rope = ms(&mut || {
        let [b, h, s, d] = q4.dims();
        let sw = Tensor::cat(
            vec![
                q4.clone().slice([0..b, 0..h, 0..s, 16..d]),
                q4.clone().slice([0..b, 0..h, 0..s, 0..16]),
            ],
            3,
        );
        let _ = (q4.clone() * cos.clone() + sw * cos.clone())
            .sum()
            .backward();
    });
    let split = ms(&mut || {
        let _ = x
            .clone()
            .reshape([rows, seq, 8, 32])
            .swap_dims(1, 2)
            .exp()
            .sum()
            .backward();
    });
    println!("rope {rope:.1}  split heads (+exp) {split:.1}");
    let fused = ms(&mut || {
        let _ = xwin_model::cpu_ops::silu_mul(g.clone(), u.clone())
            .sum()
            .backward();
    });
    println!("silu*up fused {fused:.1}");
    println!("silu*up {sw:.1}  matmul h->inter {mm:.1}  rmsnorm {norm:.1}");
}
