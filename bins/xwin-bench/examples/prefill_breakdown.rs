//! Where prefill time goes on the benchmark model: decoder stack, LM head, and the bare
//! matmul of the LM head's shape. `cargo run -p xwin-bench --example prefill_breakdown`
//! Prints one JSON line of medians in seconds.

#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::{Device, Distribution, Tensor};
use xwin_bench::{bench_config, median, time};
use xwin_model::{BatchLayout, LlamaForCausalLM};

fn main() {
    // As the binaries run: freed memory stays mapped (no page faults per large tensor).
    xwin_alloc::keep_freed_memory();
    let device = Device::flex();
    let config = bench_config();
    let model = LlamaForCausalLM::random(&config, &device);
    let ids: Vec<Vec<u32>> = (0..4)
        .map(|b| {
            (0..256)
                .map(|t| ((b * 7 + t * 13) % 31000 + 3) as u32)
                .collect()
        })
        .collect();
    let layout = BatchLayout::contiguous(4, 256, 0);
    let sync = || device.sync().expect("sync");
    let stack = median(time(20, || {
        let _h = model.hidden_states(model.ids_tensor(&ids, &device).expect("ids"), &layout, None);
        sync();
    }));
    let hidden = model.hidden_states(model.ids_tensor(&ids, &device).expect("ids"), &layout, None);
    let head = median(time(20, || {
        let _l = model.lm_logits(hidden.clone());
        sync();
    }));
    let a = Tensor::<2>::random([1024, 256], Distribution::Default, &device);
    let w = Tensor::<2>::random([256, 32000], Distribution::Default, &device);
    let matmul = median(time(20, || {
        let _c = a.clone().matmul(w.clone());
        sync();
    }));
    println!(
        "{{\"decoder_stack_s\":{stack},\"lm_head_s\":{head},\"matmul_1024x256x32000_s\":{matmul},\"matmul_gflops\":{}}}",
        2.0 * 1024.0 * 256.0 * 32000.0 / matmul / 1e9
    );
}
