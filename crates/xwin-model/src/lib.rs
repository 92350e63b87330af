//! The Llama core of xwin: a burn model that matches Hugging Face `transformers` numerically,
//! loads and saves HF checkpoints, generates with a KV cache and scores sequences.
//!
//! ```no_run
//! use xwin_model::{load_causal_lm, parse_device, GenerationConfig, generate};
//! let device = parse_device("cpu")?;
//! let model = load_causal_lm("path/to/llama", &device)?;
//! let out = generate(&model, &[vec![1, 15043]], &GenerationConfig::default(), &device)?;
//! # Ok::<(), xwin_model::ModelError>(())
//! ```

pub mod attention;
pub mod checkpoint;
pub mod config;
pub mod cpu_attention;
pub mod cpu_ops;
pub mod device;
pub mod error;
pub mod fused_loss;
pub mod generate;
pub mod head_device;
mod head_host;
pub mod kv_cache;
pub mod layout;
pub mod lean_attention;
pub mod logprob;
mod matmul;
pub mod mlp;
pub mod model;
pub mod names;
pub mod params;
pub mod precision;
pub mod recompute;
pub mod reward;
pub mod rope;
pub mod sampling;
pub mod save;
pub mod seq_logprob;
pub mod tokenizer;
pub mod vecmath;

pub use checkpoint::Checkpoint;
pub use config::{LlamaConfig, RopeScaling};
pub use device::{is_cpu, names_cpu, parse_device};
pub use error::{ModelError, Result};
pub use fused_loss::{HeadPath, lm_head_nll, lm_head_nll_mean, lm_head_nll_sum};
pub use generate::{GenerationConfig, Generations, generate, text_seed};
pub use kv_cache::KvCache;
pub use layout::BatchLayout;
pub use logprob::{SpanLogProbs, masked_logprob_sum, next_token_logprobs, span_logprobs};
pub use model::{LlamaForCausalLM, LlamaModel};
pub use precision::Precision;
pub use recompute::{Recomputed, backward_recomputing_layers};
pub use reward::{LlamaForReward, load_reward_model, save_reward_model};
pub use sampling::SamplingConfig;
pub use save::{Architecture, SaveDtype, SaveOptions, save_hf, save_model_dir};
pub use seq_logprob::{SequenceLogProbs, sequence_logprobs, sequence_logprobs_on};
pub use tokenizer::Tokenizer;

use burn::tensor::Device;
use std::path::Path;

/// Loads a HF `LlamaForCausalLM` directory (`config.json` + safetensors) onto `device`.
/// Every tensor must be used and shaped as the config says.
pub fn load_causal_lm(dir: impl AsRef<Path>, device: &Device) -> Result<LlamaForCausalLM> {
    load_causal_lm_in(dir, device, Precision::F32)
}

/// [`load_causal_lm`] for inference in `precision`: the products run in it, and the
/// projections and an untied LM head are held on the device in its half dtype only
/// (converted on the host; Llama-2-7B's weights take 12.8 GiB instead of 25.1); embeddings
/// and norms stay f32. For training keep f32 weights (the master copy) and use
/// [`LlamaForCausalLM::with_precision`].
pub fn load_causal_lm_in(
    dir: impl AsRef<Path>,
    device: &Device,
    precision: Precision,
) -> Result<LlamaForCausalLM> {
    let dir = dir.as_ref();
    let mut config = LlamaConfig::from_file(dir)?;
    config.add_generation_stop_ids(dir)?;
    let mut checkpoint = Checkpoint::open(dir, device)?.with_linear_weights_in(precision);
    if config.tie_word_embeddings {
        // Some tied checkpoints store the head too; HF ties it to the embedding and ignores it.
        checkpoint.skip(names::LM_HEAD);
    }
    let model = LlamaForCausalLM::init(&config, &mut checkpoint)?.with_precision(precision);
    checkpoint.finish()?;
    tracing::info!(dir = %dir.display(), params = config.num_parameters(), %precision, "loaded model");
    Ok(model)
}

/// Saves `model` as a HF checkpoint directory, atomically (see [`save_model_dir`]).
pub fn save_causal_lm(
    model: &LlamaForCausalLM,
    dir: impl AsRef<Path>,
    options: SaveOptions,
) -> Result<()> {
    save_hf(model.config(), &model.hf_tensors(), dir, options)
}

/// [`save_causal_lm`] with extra files (tokenizer, tokenizer config) written in the same
/// atomic directory swap.
pub fn save_causal_lm_with(
    model: &LlamaForCausalLM,
    dir: impl AsRef<Path>,
    options: SaveOptions,
    files: &[(String, Vec<u8>)],
) -> Result<()> {
    let causal = Architecture::CausalLm;
    save_model_dir(
        model.config(),
        causal,
        &model.hf_tensors(),
        dir.as_ref(),
        options,
        files,
    )
}
