//! Shared pieces of the xwin benchmarks: the benchmark model and timing.

pub mod judge;
pub mod train_ops;

use std::time::Instant;
use xwin_model::LlamaConfig;

/// The benchmark model: Llama-2 layout at ~21M parameters (16M of them embeddings/head).
pub fn bench_config() -> LlamaConfig {
    LlamaConfig {
        vocab_size: 32000,
        hidden_size: 256,
        intermediate_size: 688,
        num_hidden_layers: 6,
        num_attention_heads: 8,
        num_key_value_heads: 8,
        head_dim: 32,
        max_position_embeddings: 1024,
        ..LlamaConfig::llama2_7b()
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

pub fn time<F: FnMut()>(repeats: usize, mut f: F) -> Vec<f64> {
    f(); // warm-up
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .collect()
}
