//! Probe: where a batched decode step's time goes at `xwin-bench infer`'s decode shape (8 rows,
//! a 32-token prompt, the 21M config): the decoder on one new token per row against the KV
//! cache, the LM head on those rows, reading the logits, one decode-sized projection (ours and
//! burn's), and the whole `generate` call. Medians in ms. `STEPS_ONLY=1` runs nothing but
//! single-token decoder steps, for `perf record`; `NEW_TOKENS` sets the tokens per row (64).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::{Device, Distribution, Tensor};
use xwin_bench::{bench_config, median, time, token_ids};
use xwin_model::{BatchLayout, GenerationConfig, KvCache, LlamaForCausalLM, generate};

fn main() {
    xwin_alloc::keep_freed_memory();
    let device = Device::flex();
    let config = bench_config();
    // NEW_TOKENS=512 shows what a long generation's cache costs.
    let new_tokens = std::env::var("NEW_TOKENS").map_or(64, |n| n.parse().expect("NEW_TOKENS"));
    let (batch, prompt_len) = (8, 32);
    let model = LlamaForCausalLM::random(&config, &device);
    let prompts = token_ids(batch, prompt_len, config.vocab_size);
    let ms = |xs: Vec<f64>| median(xs) * 1e3;
    let generation = GenerationConfig {
        max_new_tokens: new_tokens,
        ..GenerationConfig::default()
    };
    if std::env::var("STEPS_ONLY").is_ok() {
        // Single-token steps only (a one-token prompt), for `perf record`.
        let next = token_ids(batch, 1, config.vocab_size);
        for _ in 0..20 {
            let mut layout = BatchLayout::contiguous(batch, 1, 0);
            let mut cache = KvCache::new(config.num_hidden_layers);
            for _ in 0..new_tokens {
                let ids = model.ids_tensor(&next, &device).expect("ids");
                let _ = model
                    .hidden_states(ids, &layout, Some(&mut cache))
                    .into_data();
                layout = layout.next_step();
            }
        }
        return;
    }
    let whole = ms(time(5, || {
        generate(&model, &prompts, &generation, &device).expect("generation");
    }));
    // A cache filled by the prompt, then single-token steps against it.
    let mut layout = BatchLayout::contiguous(batch, prompt_len, 0);
    let mut cache = KvCache::new(config.num_hidden_layers);
    let ids = model.ids_tensor(&prompts, &device).expect("ids");
    let _ = model.hidden_states(ids, &layout, Some(&mut cache));
    layout = layout.next_step();
    let next = token_ids(batch, 1, config.vocab_size);
    let mut steps = Vec::new();
    for _ in 0..new_tokens {
        let ids = model.ids_tensor(&next, &device).expect("ids");
        let t = std::time::Instant::now();
        let h = model.hidden_states(ids, &layout, Some(&mut cache));
        let _ = h.into_data();
        steps.push(t.elapsed().as_secs_f64());
        layout = layout.next_step();
    }
    let decoder = ms(steps);
    let last = Tensor::<3>::random(
        [batch, 1, config.hidden_size],
        Distribution::Default,
        &device,
    );
    let head = ms(time(20, || {
        let _ = model.lm_logits(last.clone()).into_data();
    }));
    let x = Tensor::<3>::random(
        [batch, 1, config.hidden_size],
        Distribution::Default,
        &device,
    );
    let w = Tensor::<2>::random(
        [config.hidden_size, config.intermediate_size],
        Distribution::Default,
        &device,
    );
    let lin = ms(time(200, || {
        let _ = xwin_model::cpu_ops::linear(x.clone(), w.clone());
    }));
    let lin_burn = ms(time(200, || {
        let _ = x.clone().matmul(w.clone().unsqueeze::<3>());
    }));
    println!("linear 8x256x688: ours {lin:.3} ms, burn {lin_burn:.3} ms");
    println!(
        "generate {whole:.1} ms ({:.2} ms per token step); one decoder step {decoder:.2} ms; \
         LM head + read {head:.2} ms",
        whole / new_tokens as f64
    );
}
