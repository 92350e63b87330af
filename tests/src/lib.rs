//! Support for the cross-stage tests: the demo pipeline shortened to seconds.

use std::path::{Path, PathBuf};
use xwin_pipeline::PipelineConfig;
use xwin_pipeline::config::wire;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `configs/demo.toml` with every stage cut down (a few hundred tasks, one epoch, few samples),
/// writing to `output`; paths made absolute so the tests may run anywhere.
pub fn short_config(output: &Path) -> PipelineConfig {
    let mut c = PipelineConfig::read(&root().join("configs/demo.toml")).expect("demo config");
    c.output = output.to_path_buf();
    c.model.path = root().join("fixtures/tiny-llama");
    let demo = c.data.demo_task.as_mut().expect("demo task");
    (demo.sft, demo.pair_prompts, demo.rs_prompts, demo.heldout) = (256, 400, 48, 20);
    for (key, value) in [("batching.epochs", 1), ("checkpoint.every", 2)] {
        for table in [&mut c.sft, &mut c.rm, &mut c.rs, &mut c.dpo] {
            wire(table, key, value.into());
        }
    }
    wire(&mut c.dpo, "calibrate.probe_prompts", 8.into());
    c.rs_samples.n = 4;
    c.eval.n = 4;
    c
}
