//! Probe: live heap bytes through the phases of a training step (model built, forward done,
//! backward done, optimizer step done, second step), counted by a wrapper around the
//! allocator, with the peak of each phase; beside `MemoryEstimate`'s parts. For calibrating
//! the estimate. `SIZE=21m|143m|7b-2l BATCH=4 SEQ=512`, `LORA=rank` for LoRA on all seven
//! projections.
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to mimalloc unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        unsafe { xwin_alloc::MiMalloc.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        unsafe { xwin_alloc::MiMalloc.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Relaxed) + layout.size();
        PEAK.fetch_max(now, Relaxed);
        unsafe { xwin_alloc::MiMalloc.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        if new >= layout.size() {
            let now = LIVE.fetch_add(new - layout.size(), Relaxed) + new - layout.size();
            PEAK.fetch_max(now, Relaxed);
        } else {
            LIVE.fetch_sub(layout.size() - new, Relaxed);
        }
        unsafe { xwin_alloc::MiMalloc.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn mib(b: usize) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn phase(name: &str) {
    eprintln!(
        "{name:<22} live {:>9.1} MiB  peak {:>9.1} MiB",
        mib(LIVE.load(Relaxed)),
        mib(PEAK.load(Relaxed))
    );
    PEAK.store(LIVE.load(Relaxed), Relaxed);
}

fn main() {
    use clap::ValueEnum;
    xwin_alloc::keep_freed_memory();
    let size = std::env::var("SIZE").unwrap_or_else(|_| "21m".into());
    let size = xwin_bench::BenchSize::from_str(&size, true).expect("SIZE");
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let (batch, seq) = (env("BATCH", 4), env("SEQ", 512));
    let config = size.config();
    let device = burn::tensor::Device::flex().autodiff();
    let lora = std::env::var("LORA")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
        .map(|rank| xwin_train::LoraConfig::on_all_projections(rank, 2.0 * rank as f64));
    let mut shape = xwin_bench::lm_step(batch, seq, 1);
    shape.adapters = lora
        .as_ref()
        .map(|l| (l.parameters(&config), l.adapted_weights(&config)));
    let est = xwin_train::MemoryEstimate::new(&config, &shape);
    eprint!("{est}");
    phase("start");
    let model = xwin_model::LlamaForCausalLM::random(&config, &device);
    let model = match &lora {
        Some(l) => l.apply(model),
        None => model,
    };
    phase("model");
    let data = xwin_bench::full_loss_batch(batch, seq, config.vocab_size);
    let mut optim = xwin_train::AdamWSettings::default().build();
    let mut model = Some(model);
    for step in 0..2 {
        let m = model.take().expect("model");
        let loss = xwin_train::sft_loss(&m, &data, &device).expect("loss");
        phase(&format!("{step}: forward"));
        let grads = loss.backward();
        phase(&format!("{step}: backward"));
        let grads = burn::optim::GradientsParams::from_grads(grads, &m);
        model = Some(optim.step(1e-4, m, grads));
        phase(&format!("{step}: optimizer"));
    }
}
