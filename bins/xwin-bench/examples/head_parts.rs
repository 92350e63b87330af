//! Probe: the fused LM-head loss (what SFT trains through) at `xwin-bench train`'s shape
//! (4 × 512 tokens, the 21M config), forward + backward, timed whole and run `REPEATS` times
//! for `perf record`. Then the same products through burn alone, to separate gemm from the rest.
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::{Device, Distribution, Tensor};
use xwin_bench::{bench_config, median, time, token_ids};

fn main() {
    xwin_alloc::keep_freed_memory();
    let repeats: usize = std::env::var("REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let device = Device::flex().autodiff();
    let config = bench_config();
    let (batch, seq, h, vocab) = (4, 512, config.hidden_size, config.vocab_size);
    let model = xwin_model::LlamaForCausalLM::random(&config, &device);
    let ids = token_ids(batch, seq, vocab);
    let mask = vec![vec![true; seq]; batch];
    let hidden =
        Tensor::<3>::random([batch, seq, h], Distribution::Default, &device).require_grad();
    let ms = |xs: Vec<f64>| median(xs) * 1e3;
    let fused = ms(time(repeats, || {
        let l = xwin_model::lm_head_nll_mean(&model, hidden.clone(), &ids, &mask).expect("loss");
        let _ = l.backward();
    }));
    let fused_fwd = ms(time(repeats, || {
        let _ = xwin_model::lm_head_nll_mean(&model, hidden.clone().detach(), &ids, &mask);
    }));
    let inner = Device::flex();
    let x = Tensor::<2>::random([batch * seq, h], Distribution::Default, &inner);
    let w = Tensor::<2>::random([h, vocab], Distribution::Default, &inner);
    let g = Tensor::<2>::random([batch * seq, vocab], Distribution::Default, &inner);
    let hw = ms(time(repeats, || {
        let _ = x.clone().matmul(w.clone());
    }));
    let gwt = ms(time(repeats, || {
        let _ = g.clone().matmul(w.clone().transpose());
    }));
    let htg = ms(time(repeats, || {
        let _ = x.clone().transpose().matmul(g.clone());
    }));
    let read = ms(time(repeats, || {
        let _ = g.clone().into_data();
    }));
    println!(
        "fused fwd+bwd {fused:.1} ms, fused fwd (untracked) {fused_fwd:.1} ms; \
         burn H·W {hw:.1}, G·Wᵀ {gwt:.1}, Hᵀ·G {htg:.1} ms; logits into_data {read:.1} ms"
    );
}
