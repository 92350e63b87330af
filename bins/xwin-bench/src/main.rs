//! `xwin-bench`: timings of the Llama core on a ~21M-parameter config, as JSON on stdout.
//! `scripts/bench.sh` runs it beside the PyTorch reference and prints the ratios.

/// Freed tensor buffers stay mapped for reuse (see `xwin_alloc`).
#[global_allocator]
static GLOBAL: xwin_alloc::MiMalloc = xwin_alloc::MiMalloc;

use burn::tensor::Device;
use clap::{Parser, Subcommand};
use serde_json::json;
use xwin_bench::{
    BenchSize, full_loss_batch, lm_step, median, status_mib, time, token_ids,
    train_flops_per_token, train_step_seconds, train_step_seconds_with,
};
use xwin_model::{BatchLayout, GenerationConfig, LlamaForCausalLM, generate, parse_device};
use xwin_train::{Head, MemoryEstimate};

#[derive(Parser)]
#[command(name = "xwin-bench")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[arg(long, default_value = "cpu", global = true)]
    device: String,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 5, global = true)]
    repeats: usize,
    /// Model size (train and infer; the other benchmarks use the default).
    #[arg(long, value_enum, default_value = "21m", global = true)]
    size: BenchSize,
    /// The device's peak FLOP/s in TFLOP/s, for model FLOP utilisation (train).
    #[arg(long, global = true)]
    peak_tflops: Option<f64>,
    /// Precision of the matrix products: f32, bf16 or f16 (mixed precision, f32 masters).
    #[arg(long, default_value = "f32", global = true)]
    precision: xwin_model::Precision,
}

#[derive(Subcommand)]
enum Command {
    /// Prefill (batch x seq forward) and batched greedy decode throughput.
    Infer {
        #[arg(long, default_value_t = 4)]
        prefill_batch: usize,
        #[arg(long, default_value_t = 256)]
        prefill_seq: usize,
        #[arg(long, default_value_t = 8)]
        decode_batch: usize,
        #[arg(long, default_value_t = 32)]
        prompt_len: usize,
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
    },
    /// Full training step (forward, backward, AdamW) tokens/s and peak memory.
    Train {
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long, default_value_t = 512)]
        seq: usize,
        /// Activation checkpointing (each decoder layer recomputed in the backward).
        #[arg(long)]
        gradient_checkpointing: bool,
    },
    /// The memory estimate every training stage logs at start, for the model of `--size`
    /// (`7b` for Llama-2-7B) on steps of `batch` rows of `seq` tokens: nothing is allocated.
    Memory {
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long, default_value_t = 512)]
        seq: usize,
        #[arg(long, default_value_t = 1)]
        grad_accum: usize,
        /// The reward model's score head instead of the LM head.
        #[arg(long)]
        reward: bool,
        /// LoRA of this rank on all seven projections (the weights frozen).
        #[arg(long)]
        lora_rank: Option<usize>,
        /// Activation checkpointing (each layer's input kept, one layer recomputed at a time).
        #[arg(long)]
        gradient_checkpointing: bool,
    },
    /// Reward-model training step (chosen and rejected in one forward, Bradley–Terry loss,
    /// backward, AdamW): tokens/s and pairs/s.
    Rm {
        /// Pairs per step (2 × pairs rows).
        #[arg(long, default_value_t = 4)]
        pairs: usize,
        #[arg(long, default_value_t = 256)]
        seq: usize,
    },
    /// DPO training step (policy log-probs of chosen and rejected in one forward, fixed
    /// reference log-probs, sigmoid loss, backward, AdamW): tokens/s, pairs/s, peak memory.
    /// With --sft, an SFT step on the same rows and response tokens (the memory baseline).
    Dpo {
        #[arg(long, default_value_t = 4)]
        pairs: usize,
        #[arg(long, default_value_t = 256)]
        seq: usize,
        #[arg(long)]
        sft: bool,
    },
    /// The training step split (forward, backward, AdamW) and its kernels timed alone.
    TrainOps {
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long, default_value_t = 512)]
        seq: usize,
    },
    /// Best-of-N sampling: tokens/s of N samples per prompt with the shared prompt prefill,
    /// and the same work with every sample prefilling its own copy of the prompt.
    Sample {
        #[arg(long, default_value_t = 4)]
        prompts: usize,
        #[arg(long, default_value_t = 128)]
        prompt_len: usize,
        #[arg(long, default_value_t = 8)]
        n: usize,
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
    },
    /// Judge throughput against the local OpenAI-compatible server (fixed latency).
    Judge {
        #[arg(long, default_value_t = 2000)]
        items: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        #[arg(long, default_value_t = 200)]
        latency_ms: u64,
    },
    /// Template + tokenize + loss mask throughput (conversations/s) on a ShareGPT file.
    Data {
        #[arg(
            long,
            default_value = "../shared/data/sft/fastchat_dummy_conversation.json"
        )]
        file: std::path::PathBuf,
        #[arg(
            long,
            default_value = "../shared/data/tokenizers/llama2/tokenizer.json"
        )]
        tokenizer: std::path::PathBuf,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    xwin_alloc::keep_freed_memory();
    let cli = Cli::parse();
    if let Command::Memory {
        batch,
        seq,
        grad_accum,
        reward,
        lora_rank,
        gradient_checkpointing,
    } = cli.command
    {
        // Nothing is allocated: the device's kind is enough, compiled in or not.
        let config = cli.size.config();
        let mut shape = lm_step(batch, seq, grad_accum).trained_as(
            !xwin_model::names_cpu(&cli.device),
            cli.precision,
            gradient_checkpointing,
        );
        if reward {
            shape.head = Head::Score;
        }
        if let Some(rank) = lora_rank {
            let lora = xwin_train::LoraConfig::on_all_projections(rank, 2.0 * rank as f64);
            shape.adapters = Some((lora.parameters(&config), lora.adapted_weights(&config)));
        }
        print!("{}", MemoryEstimate::new(&config, &shape));
        return Ok(());
    }
    let device: Device = parse_device(&cli.device)?;
    // Which burn backend ran, for the labels: a wgpu run must not say "flex".
    let backend = if xwin_model::is_cpu(&device) {
        "burn flex".to_string()
    } else {
        format!("burn {}", cli.device.split(':').next().unwrap_or_default())
    };
    let backend = match cli.precision {
        xwin_model::Precision::F32 => backend,
        p => format!("{backend}, {p} autocast"),
    };
    let config = cli.size.config();
    match cli.command {
        Command::Train {
            batch,
            seq,
            gradient_checkpointing,
        } => {
            let device = device.autodiff();
            let model = LlamaForCausalLM::random(&config, &device).with_precision(cli.precision);
            let data = full_loss_batch(batch, seq, config.vocab_size);
            let step_s =
                train_step_seconds_with(model, &data, &device, cli.repeats, gradient_checkpointing);
            let off_cpu = !xwin_model::is_cpu(&device);
            let shape =
                lm_step(batch, seq, 1).trained_as(off_cpu, cli.precision, gradient_checkpointing);
            let estimate = MemoryEstimate::new(&config, &shape);
            let tokens_per_s = (batch * seq) as f64 / step_s;
            let model_tflops = train_flops_per_token(&config, seq) * tokens_per_s / 1e12;
            println!(
                "{}",
                json!({
                    "impl": format!("xwin ({backend}, autodiff)"),
                    "params": config.num_parameters(),
                    "batch": batch, "seq": seq,
                    "train_step": { "median_s": step_s, "tokens_per_s": tokens_per_s },
                    "model_tflops_per_s": model_tflops,
                    "mfu": cli.peak_tflops.map(|peak| model_tflops / peak),
                    "peak_rss_mib": status_mib("VmHWM:"),
                    "estimated_peak_mib": estimate.peak() as f64 / MIB,
                })
            );
        }
        Command::Memory { .. } => unreachable!("handled before the device is opened"),
        Command::Rm { pairs, seq } => {
            let device = device.autodiff();
            let s = xwin_bench::rm_step_seconds(&config, pairs, seq, &device, cli.repeats);
            let tokens = (2 * pairs * seq) as f64;
            println!(
                "{}",
                json!({
                    "impl": format!("xwin ({backend}, autodiff)"),
                    // The policy's, less its LM head, plus the one-output score head.
                    "params": config.num_parameters() - config.vocab_size * config.hidden_size + config.hidden_size,
                    "pairs": pairs, "seq": seq,
                    "rm_step": { "median_s": s, "tokens_per_s": tokens / s, "pairs_per_s": pairs as f64 / s },
                    "peak_rss_mib": status_mib("VmHWM:"),
                })
            );
        }
        Command::Dpo { pairs, seq, sft } => {
            let device = device.autodiff();
            let model = LlamaForCausalLM::random(&config, &device).with_precision(cli.precision);
            let data = xwin_bench::dpo_batch(pairs, seq, config.vocab_size);
            let (name, s) = if sft {
                (
                    "sft_step",
                    train_step_seconds(model, &data, &device, cli.repeats),
                )
            } else {
                (
                    "dpo_step",
                    xwin_bench::dpo_step_seconds(model, &data, &device, cli.repeats),
                )
            };
            let tokens = (2 * pairs * seq) as f64;
            println!(
                "{}",
                json!({
                    "impl": format!("xwin ({backend}, autodiff)"),
                    "params": config.num_parameters(),
                    "pairs": pairs, "seq": seq,
                    name: { "median_s": s, "tokens_per_s": tokens / s, "pairs_per_s": pairs as f64 / s },
                    "peak_rss_mib": status_mib("VmHWM:"),
                })
            );
        }
        Command::Judge {
            items,
            concurrency,
            latency_ms,
        } => {
            let r =
                xwin_bench::judge::judge_throughput(items, concurrency, latency_ms, cli.repeats);
            println!("{r}");
        }
        Command::TrainOps { batch, seq } => {
            let mut ops = xwin_bench::train_ops::train_ops(batch, seq, cli.repeats, &device);
            ops["impl"] = json!(format!("xwin ({backend}, autodiff)"));
            ops["batch"] = json!(batch);
            ops["seq"] = json!(seq);
            println!("{ops}");
        }
        Command::Data { file, tokenizer } => {
            let tok = xwin_data::load_tokenizer(&tokenizer)?;
            let (convs, _) =
                xwin_data::read_conversations(&file, xwin_data::ReadOptions::default())?;
            let mut tokens = 0;
            let seconds = median(time(cli.repeats, || {
                tokens = 0;
                for c in &convs {
                    let t = xwin_data::tokenize(
                        xwin_data::ChatTemplate::VicunaV11,
                        c,
                        &tok,
                        xwin_data::TrainOn::AllAssistant,
                    )
                    .expect("tokenize");
                    tokens += t.len();
                }
            }));
            println!(
                "{}",
                json!({
                    "impl": "xwin-data (tokenizers crate)",
                    "conversations": convs.len(),
                    "tokens": tokens,
                    "median_s": seconds,
                    "template_tokenize": { "tokens_per_s": tokens as f64 / seconds,
                                           "conversations_per_s": convs.len() as f64 / seconds },
                })
            );
        }
        Command::Sample {
            prompts,
            prompt_len,
            n,
            new_tokens,
        } => {
            let model = LlamaForCausalLM::random(&config, &device).with_precision(cli.precision);
            let ids = token_ids(prompts, prompt_len, config.vocab_size);
            // Temperature 1, no top-k/top-p (transformers' defaults switched off the same way);
            // no stop ids, so every row generates exactly `new_tokens`.
            let generation = GenerationConfig {
                sampling: xwin_model::SamplingConfig {
                    temperature: 1.0,
                    top_p: 1.0,
                    top_k: 0,
                },
                max_new_tokens: new_tokens,
                num_samples: n,
                seed: 1,
                ..GenerationConfig::default()
            };
            let shared = median(time(cli.repeats, || {
                generate(&model, &ids, &generation, &device).expect("generation");
            }));
            // The same rows, each prompt repeated N times and prefilled N times.
            let repeated: Vec<Vec<u32>> = ids
                .iter()
                .flat_map(|p| std::iter::repeat_n(p.clone(), n))
                .collect();
            let one_each = GenerationConfig {
                num_samples: 1,
                ..generation.clone()
            };
            let separate = median(time(cli.repeats, || {
                generate(&model, &repeated, &one_each, &device).expect("generation");
            }));
            let generated = (prompts * n * new_tokens) as f64;
            println!(
                "{}",
                json!({
                    "impl": format!("xwin ({backend})"),
                    "device": cli.device,
                    "params": config.num_parameters(),
                    "shape": { "prompts": prompts, "prompt_len": prompt_len, "n": n,
                               "new_tokens": new_tokens },
                    "best_of_n": { "median_s": shared, "tokens_per_s": generated / shared },
                    "separate_prefills": { "median_s": separate,
                                           "tokens_per_s": generated / separate },
                })
            );
        }
        Command::Infer {
            prefill_batch,
            prefill_seq,
            decode_batch,
            prompt_len,
            new_tokens,
        } => {
            let model = LlamaForCausalLM::random(&config, &device).with_precision(cli.precision);
            let ids = token_ids(prefill_batch, prefill_seq, config.vocab_size);
            let layout = BatchLayout::contiguous(prefill_batch, prefill_seq, 0);
            let prefill = time(cli.repeats, || {
                let t = model.ids_tensor(&ids, &device).expect("valid ids");
                // Wait for the result without copying the logits to the host (PyTorch doesn't).
                let _logits = model.forward(t, &layout, None);
                device.sync().expect("device sync");
            });
            let decode_prompts = token_ids(decode_batch, prompt_len, config.vocab_size);
            let generation = GenerationConfig {
                max_new_tokens: new_tokens,
                ..GenerationConfig::default()
            };
            let decode = time(cli.repeats, || {
                generate(&model, &decode_prompts, &generation, &device).expect("generation");
            });
            let prefill_s = median(prefill);
            let decode_s = median(decode);
            println!(
                "{}",
                json!({
                    "impl": format!("xwin ({backend})"),
                    "device": cli.device,
                    "params": config.num_parameters(),
                    "prefill": { "batch": prefill_batch, "seq": prefill_seq, "median_s": prefill_s,
                                 "tokens_per_s": (prefill_batch * prefill_seq) as f64 / prefill_s },
                    "decode": { "batch": decode_batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
                                "median_s": decode_s,
                                "tokens_per_s": (decode_batch * new_tokens) as f64 / decode_s },
                })
            );
        }
    }
    Ok(())
}

const MIB: f64 = (1u64 << 20) as f64;
