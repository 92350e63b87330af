//! `xwin-infer`: the stable command-line face of `xwin-model`.
//! Prints JSON on stdout; errors go to stderr with a non-zero exit.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use clap::{Args, Parser, Subcommand};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use xwin_model::{
    Architecture, BatchLayout, GenerationConfig, ModelError, SamplingConfig, SaveDtype,
    SaveOptions, Tokenizer, generate, load_causal_lm_in, load_reward_model, parse_device,
    save_causal_lm, save_reward_model, span_logprobs,
};

#[derive(Parser)]
#[command(
    name = "xwin-infer",
    version,
    about = "Run a Hugging Face Llama checkpoint with xwin-model"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct ModelArgs {
    /// HF model directory (config.json + *.safetensors).
    #[arg(long)]
    model: PathBuf,
    /// Compute device: cpu, wgpu, cuda[:N].
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Precision of the matrix products: f32, bf16 or f16 (weights stay as loaded).
    #[arg(long, default_value = "f32")]
    precision: xwin_model::Precision,
}

#[derive(Subcommand)]
enum Command {
    /// Full logits of each sequence: {"logits": [[[f32; vocab]; seq]; batch]}.
    Logits {
        #[command(flatten)]
        model: ModelArgs,
        /// Comma-separated token ids; repeat for a batch (sequences may differ in length).
        #[arg(long = "ids", required = true)]
        ids: Vec<String>,
    },
    /// Continue token ids: {"ids": [new ids]} (one prompt) or {"ids": [[...] per prompt]}.
    Generate {
        #[command(flatten)]
        model: ModelArgs,
        /// Comma-separated prompt ids; repeat for a batch.
        #[arg(long = "ids", required = true)]
        ids: Vec<String>,
        #[arg(long, default_value_t = 32)]
        max_new_tokens: usize,
        /// 0 = greedy.
        #[arg(long, default_value_t = 0.0)]
        temperature: f32,
        #[arg(long, default_value_t = 1.0)]
        top_p: f32,
        /// 0 = off.
        #[arg(long, default_value_t = 0)]
        top_k: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Stop at the model's EOS token(s).
        #[arg(long)]
        stop_at_eos: bool,
    },
    /// Re-save a checkpoint in HF layout (optionally in another dtype): {"saved": DIR}.
    Convert {
        #[command(flatten)]
        model: ModelArgs,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// f32, f16 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: String,
    },
    /// Reward of each sequence under a reward model (LlamaForSequenceClassification, one
    /// label), read at its last token: {"rewards": [f32 per sequence]}. Sequences may differ
    /// in length (right-padded into one batch).
    Reward {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long = "ids", required = true)]
        ids: Vec<String>,
    },
    /// Log-probability of tokens FROM.. given the tokens before them (the quantity DPO uses):
    /// {"sum": [f32 per sequence], "per_token": [[f32 per scored token] per sequence]}.
    Logprobs {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long = "ids", required = true)]
        ids: Vec<String>,
        /// Index of the first scored token (≥ 1).
        #[arg(long)]
        from: usize,
    },
    /// Token ids of a text, without BOS: {"ids": [...]}.
    Tokenize {
        #[arg(long)]
        tokenizer: PathBuf,
        #[arg(long)]
        text: String,
    },
}

fn parse_ids(arg: &str) -> Result<Vec<u32>, ModelError> {
    arg.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u32>()
                .map_err(|_| ModelError::InvalidInput(format!("`{s}` in --ids is not a token id")))
        })
        .collect()
}

fn run(cli: Cli) -> Result<serde_json::Value, ModelError> {
    match cli.command {
        Command::Logits { model, ids } => {
            let device = parse_device(&model.device)?;
            let llm = load_causal_lm_in(&model.model, &device, model.precision)?;
            let mut out = Vec::new();
            // One forward per sequence keeps ragged batches exact and the output unpadded.
            for arg in &ids {
                let seq = parse_ids(arg)?;
                let ids = llm.ids_tensor(std::slice::from_ref(&seq), &device)?;
                let logits = llm.forward(ids, &BatchLayout::contiguous(1, seq.len(), 0), None);
                let vocab = llm.config().vocab_size;
                let values = logits.try_into_vec_as::<f32>()?;
                out.push(
                    values
                        .chunks(vocab)
                        .map(<[f32]>::to_vec)
                        .collect::<Vec<_>>(),
                );
            }
            Ok(json!({ "logits": out }))
        }
        Command::Generate {
            model,
            ids,
            max_new_tokens,
            temperature,
            top_p,
            top_k,
            seed,
            stop_at_eos,
        } => {
            let device = parse_device(&model.device)?;
            let llm = load_causal_lm_in(&model.model, &device, model.precision)?;
            let prompts = ids
                .iter()
                .map(|a| parse_ids(a))
                .collect::<Result<Vec<_>, _>>()?;
            if !(0.0..=1.0).contains(&top_p) || top_p == 0.0 {
                return Err(ModelError::InvalidInput(format!(
                    "--top-p {top_p} must be in (0, 1]"
                )));
            }
            let config = GenerationConfig {
                sampling: SamplingConfig {
                    temperature,
                    top_p,
                    top_k,
                },
                max_new_tokens,
                num_samples: 1,
                stop_ids: if stop_at_eos {
                    llm.config().eos_token_ids.clone()
                } else {
                    Vec::new()
                },
                seed,
                ..GenerationConfig::default()
            };
            let generations = generate(&llm, &prompts, &config, &device)?;
            let mut new_ids: Vec<Vec<u32>> =
                generations.into_iter().map(|mut g| g.remove(0)).collect();
            Ok(if new_ids.len() == 1 {
                json!({ "ids": new_ids.remove(0) })
            } else {
                json!({ "ids": new_ids })
            })
        }
        Command::Convert { model, out, dtype } => {
            let dtype = match dtype.as_str() {
                "f32" | "float32" => SaveDtype::F32,
                "f16" | "float16" => SaveDtype::F16,
                "bf16" | "bfloat16" => SaveDtype::BF16,
                other => {
                    return Err(ModelError::InvalidInput(format!(
                        "--dtype `{other}`: use f32, f16 or bf16"
                    )));
                }
            };
            let device = parse_device(&model.device)?;
            let options = SaveOptions {
                dtype,
                ..SaveOptions::default()
            };
            if Architecture::of_dir(&model.model) == Architecture::Reward {
                let rm = load_reward_model(&model.model, &device)?.with_precision(model.precision);
                save_reward_model(&rm, &out, options, &[])?;
            } else {
                let llm = load_causal_lm_in(&model.model, &device, model.precision)?;
                save_causal_lm(&llm, &out, options)?;
            }
            Ok(json!({ "saved": out }))
        }
        Command::Reward { model, ids } => {
            let device = parse_device(&model.device)?;
            let rm = load_reward_model(&model.model, &device)?.with_precision(model.precision);
            let rows = ids
                .iter()
                .map(|a| parse_ids(a))
                .collect::<Result<Vec<_>, _>>()?;
            let pad = rm.config().pad_token_id.unwrap_or(0);
            let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
            let (padded, mask) = xwin_data::pad_rows(&refs, pad);
            let rewards = rm
                .rewards(&padded, &mask, &device)?
                .try_into_vec_as::<f32>()?;
            Ok(json!({ "rewards": rewards }))
        }
        Command::Logprobs { model, ids, from } => {
            let device = parse_device(&model.device)?;
            let llm = load_causal_lm_in(&model.model, &device, model.precision)?;
            let requests = ids
                .iter()
                .map(|a| parse_ids(a).map(|r| (r, from)))
                .collect::<Result<Vec<_>, _>>()?;
            let spans = span_logprobs(&llm, &requests, &device)?;
            Ok(json!({
                "sum": spans.iter().map(|s| s.sum).collect::<Vec<_>>(),
                "per_token": spans.iter().map(|s| s.per_token.clone()).collect::<Vec<_>>(),
            }))
        }
        Command::Tokenize { tokenizer, text } => {
            let tok = Tokenizer::from_file(&tokenizer)?;
            Ok(json!({ "ids": tok.encode(&text, false)? }))
        }
    }
}

fn main() -> ExitCode {
    xwin_alloc::keep_freed_memory();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(value) => {
            println!("{value}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xwin-infer: error: {e}");
            ExitCode::FAILURE
        }
    }
}
