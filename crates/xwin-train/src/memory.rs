//! How much memory a training run needs, estimated before it starts from the model's shape and
//! the largest micro-batch, so that a user learns whether a run fits before loading 7B
//! parameters. Every stage logs it at start; `xwin-bench memory` prints it for any size.
//!
//! The model follows what this code keeps, in f32: weights, AdamW's two moments, the gradients,
//! the accumulated gradients when a step has several micro-batches, and what the autodiff
//! graph saves per token and layer for the backward pass (see [`MemoryEstimate::new`]). It was
//! checked against the peak resident memory of CPU training steps (`xwin-bench train
//! --size ...`, which prints both; `docs/benchmarks.md`).

use crate::lora::LoraConfig;
use crate::trainer::LoopConfig;
use burn::tensor::Device;
use std::fmt;
use xwin_model::{LlamaConfig, Precision};

const F32: u64 = 4;
const GIB: f64 = (1u64 << 30) as f64;

/// Besides tensors: the binary, burn's and Rayon's runtime (measured on the CPU; a GPU adds
/// its driver context, which this does not count).
const RUNTIME_BYTES: u64 = 150 << 20;

/// Memory the allocator holds beyond the live tensors at the peak, as a share of them: freed
/// blocks kept for reuse that the next sizes do not fit (11–35 % measured with mimalloc on
/// the CPU at 21M–7B shapes; live tensors from `cargo run -p xwin-bench --example
/// memory_probe`, resident memory from `xwin-bench train`).
const SLACK: f64 = 0.15;

/// The head a step trains through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Head {
    /// The LM head over the vocabulary (SFT, RS, DPO), scoring this many positions of the
    /// largest micro-batch.
    Lm { scored: usize },
    /// A reward model's one-output score head (no LM head at all).
    Score,
}

/// The shape of a step as far as memory goes.
#[derive(Debug, Clone, Copy)]
pub struct StepShape {
    /// Token positions (rows × padded length) of the largest micro-batch.
    pub tokens: usize,
    pub head: Head,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// With LoRA (the weights then frozen): the trainable adapter parameters and the
    /// elements of the adapted weights (whose merged copies each forward keeps).
    pub adapters: Option<(usize, usize)>,
    /// Activation checkpointing: each layer's input kept, one layer's activations at a time.
    pub checkpointing: bool,
    /// The largest micro-batch's `Σ rows padded_length²`: one head's attention scores.
    pub score_elements: usize,
    /// Training off the CPU (a GPU): attention is [`xwin_model::lean_attention`] (one chunk
    /// of scores at a time, none kept) and the LM head's loss runs in row chunks on the
    /// device. [`StepShape::log_estimate`] sets it.
    pub off_cpu: bool,
    /// Products in bf16/f16 (`[train] precision`): the graph also keeps their half operands,
    /// and attention is the lean op on every device.
    pub half_precision: bool,
}

impl StepShape {
    /// The largest micro-batch of rows `ids` trained through the LM head, scoring the
    /// positions `mask` marks (the first position of a row predicts nothing).
    pub fn lm<'a>(
        batches: impl IntoIterator<Item = (&'a [Vec<u32>], &'a [Vec<bool>])>,
        grad_accum: usize,
    ) -> Self {
        let (mut tokens, mut scored, mut score_elements) = (0, 0, 0);
        for (ids, mask) in batches {
            tokens = tokens.max(ids.iter().map(Vec::len).sum());
            score_elements = score_elements.max(square_lengths(ids));
            scored = scored.max(
                mask.iter()
                    .map(|r| r.iter().skip(1).filter(|m| **m).count())
                    .sum(),
            );
        }
        Self::new(tokens, Head::Lm { scored }, grad_accum, score_elements)
    }

    /// The largest micro-batch of rows `ids` trained through a reward model's score head.
    pub fn score<'a>(batches: impl IntoIterator<Item = &'a [Vec<u32>]>, grad_accum: usize) -> Self {
        let (mut tokens, mut score_elements) = (0, 0);
        for ids in batches {
            tokens = tokens.max(ids.iter().map(Vec::len).sum());
            score_elements = score_elements.max(square_lengths(ids));
        }
        Self::new(tokens, Head::Score, grad_accum, score_elements)
    }

    /// A micro-batch of `tokens` (`score_elements` = `Σ rows padded_length²`) trained in f32
    /// on the CPU, every weight trained, without checkpointing: [`StepShape::trained_as`] and
    /// `adapters` say otherwise.
    pub fn new(tokens: usize, head: Head, grad_accum: usize, score_elements: usize) -> Self {
        Self {
            tokens,
            head,
            grad_accum,
            adapters: None,
            checkpointing: false,
            score_elements,
            off_cpu: false,
            half_precision: false,
        }
    }

    /// This shape trained off the CPU or on it (`off_cpu`), with the products in `precision`,
    /// with or without activation checkpointing.
    pub fn trained_as(self, off_cpu: bool, precision: Precision, checkpointing: bool) -> Self {
        Self {
            off_cpu,
            half_precision: !precision.is_f32(),
            checkpointing,
            ..self
        }
    }

    /// Whether the step runs our f32 CPU kernels (`xwin_model::cpu_ops::fused_ops_apply`):
    /// the fused attention (no score chunk kept) and the LM head's products on host copies.
    fn fused_cpu_ops(&self) -> bool {
        !self.off_cpu && !self.half_precision
    }

    /// Logs the estimate for training `config` on steps of this shape with `train`'s
    /// settings (LoRA's adapters, activation checkpointing, the precision) on `device`,
    /// checked against the host's available memory when `device` is the CPU.
    pub fn log_estimate(&self, config: &LlamaConfig, train: &LoopConfig, device: &Device) {
        let on_cpu = xwin_model::is_cpu(device);
        let available = on_cpu.then(available_host_memory).flatten();
        let lora = train.lora.as_ref();
        let shape = Self {
            adapters: lora.map(|l: &LoraConfig| (l.parameters(config), l.adapted_weights(config))),
            ..self.trained_as(!on_cpu, train.precision, train.gradient_checkpointing)
        };
        MemoryEstimate::new(config, &shape).log(available);
    }
}

/// Bytes of each part of a training run's peak memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryEstimate {
    pub parameters: u64,
    /// The weights; with LoRA also the adapters and the merged copies of the adapted weights.
    pub weights: u64,
    /// AdamW's first and second moments.
    pub optimizer: u64,
    /// One micro-batch's gradients, and two embedding-sized blocks the embedding's and the
    /// head's gradients pass through at the end of the backward pass.
    pub gradients: u64,
    /// The sum kept across micro-batches (none with one micro-batch per step).
    pub accumulated: u64,
    /// What the forward pass keeps for the backward pass.
    pub activations: u64,
    /// Attention's scores: one chunk's of the lean op (off the CPU or in half precision).
    pub scores: u64,
    /// The half-precision operands the products keep ([`StepShape::half_precision`]).
    pub half_copies: u64,
    /// The head's share: for the LM head, the fused loss's `[scored, vocab]` logits (its
    /// gradient computed in place) and its head-sized gradient block.
    pub head: u64,
    pub runtime: u64,
}

impl MemoryEstimate {
    /// The estimate for training `config` (with the head of `shape`) on steps of `shape`.
    ///
    /// Per token and decoder layer the graph keeps (f32): the layer input and the residual
    /// after attention (2h), each RMSNorm's normalised input and output (4h), the query, key
    /// and value heads and the attention output (q + 2kv + q; the merged copy o_proj reads is
    /// one more q), the MLP's gate, up and SwiGLU output (3·intermediate); the raw
    /// projections before the head split are not kept. Attention keeps no `[seq, seq]` scores.
    pub fn new(config: &LlamaConfig, shape: &StepShape) -> Self {
        let h = config.hidden_size as u64;
        let q = (config.num_attention_heads * config.head_dim) as u64;
        let kv = (config.num_key_value_heads * config.head_dim) as u64;
        let inter = config.intermediate_size as u64;
        let vocab = config.vocab_size as u64;
        let tokens = shape.tokens as u64;
        let layers = config.num_hidden_layers as u64;
        let parameters = match shape.head {
            Head::Lm { .. } => config.num_parameters() as u64,
            Head::Score if config.tie_word_embeddings => config.num_parameters() as u64 + h,
            Head::Score => (config.num_parameters() as u64) - vocab * h + h,
        };
        let per_token_layer = 6 * h + 3 * q + 2 * kv + 3 * inter;
        // The embedding output and the final norm's input, normalised input and output.
        let outside_layers = 4 * h;
        // Checkpointed: each layer's input, plus one layer's activations while it is
        // recomputed and its output's gradient.
        let activations = if shape.checkpointing {
            F32 * tokens * (layers * h + per_token_layer + h + outside_layers)
        } else {
            F32 * tokens * (layers * per_token_layer + outside_layers)
        };
        // The lean attention keeps no scores for the backward pass: one chunk's scores,
        // probabilities and their gradients live at a time (the CPU's f32 kernel: a block in
        // cache). The composite it replaced kept three f32 score matrices per layer (`cargo
        // run -p xwin-bench --example attention_memory`).
        let score_elements = config.num_attention_heads as u64 * shape.score_elements as u64;
        let scores = if shape.fused_cpu_ops() {
            0
        } else {
            4 * F32 * score_elements.min(xwin_model::lean_attention::CHUNK_SCORES as u64)
        };
        // Half precision, as autocast's graph: each product keeps its operands cast to half —
        // the projections' weights, per token and layer the inputs of the seven projections
        // (q, k and v cast the same normalised input apart, as do gate and up). Checkpointed,
        // one layer's.
        let half_copies = if shape.half_precision {
            let kept_layers = if shape.checkpointing { 1 } else { layers };
            let layer_weights = 2 * h * q + 2 * h * kv + 3 * h * inter;
            let per_token = 5 * h + 2 * q + inter;
            2 * (kept_layers * (layer_weights + tokens * per_token) + h * vocab)
        } else {
            0
        };
        // With LoRA the weights are frozen: moments and gradients are the adapters', and the
        // embedding and head blocks of a full fine-tune are never formed.
        let full = shape.adapters.is_none();
        let head = match shape.head {
            // The logits `[n, vocab]`, turned into probabilities minus one-hot in place (off
            // the CPU a chunk of them at a time, and the chunk's logits beside), the weight's
            // gradient block `[h, vocab]` (when it trains), the scored hidden rows and their
            // gradient `[n, h]`. In f32 on the CPU the products run on host copies of the
            // weight and the scored rows (`xwin_model::head_host`), live beside the logits.
            Head::Lm { scored } => {
                let n = scored as u64;
                let logits = if shape.off_cpu {
                    2 * (n * vocab).min(xwin_model::head_device::CHUNK_LOGITS as u64)
                } else {
                    n * vocab
                };
                let host_copies = if shape.fused_cpu_ops() {
                    h * vocab + n * h
                } else {
                    0
                };
                F32 * (logits + if full { h * vocab } else { 0 } + 2 * n * h + host_copies)
            }
            Head::Score => 0,
        };
        let (adapters, merged) = shape.adapters.unwrap_or((0, 0));
        let (adapters, merged) = (adapters as u64, merged as u64);
        let weights = F32 * (parameters + adapters + merged);
        let trainable = if full { weights } else { F32 * adapters };
        let accumulated = if shape.grad_accum > 1 { trainable } else { 0 };
        let gradients = trainable + if full { 2 * F32 * h * vocab } else { 0 };
        Self {
            parameters: parameters + adapters,
            weights,
            optimizer: 2 * trainable,
            gradients,
            accumulated,
            activations,
            scores,
            half_copies,
            head,
            runtime: RUNTIME_BYTES,
        }
    }

    /// The live tensors at the peak: weights, moments and the accumulated sum throughout,
    /// plus the larger of the forward's saved tensors (at the end of the forward pass) and a
    /// full set of gradients (at the end of the backward pass, the saved tensors freed).
    pub fn live(&self) -> u64 {
        let transient =
            (self.activations + self.scores + self.half_copies + self.head).max(self.gradients);
        self.weights + self.optimizer + self.accumulated + transient
    }

    /// The allocator's slack at the peak ([`SLACK`] of the live tensors).
    pub fn slack(&self) -> u64 {
        (self.live() as f64 * SLACK) as u64
    }

    /// The peak memory of the run.
    pub fn peak(&self) -> u64 {
        self.live() + self.slack() + self.runtime
    }

    pub fn peak_gib(&self) -> f64 {
        self.peak() as f64 / GIB
    }

    /// Logs the estimate (`info`) and warns when it exceeds `available` bytes, if known.
    pub fn log(&self, available: Option<u64>) {
        let gib = |b: u64| format!("{:.2}", b as f64 / GIB);
        tracing::info!(
            peak_gib = gib(self.peak()),
            weights_gib = gib(self.weights),
            optimizer_gib = gib(self.optimizer),
            gradients_gib = gib(self.gradients + self.accumulated),
            activations_gib = gib(self.activations + self.scores + self.half_copies + self.head),
            "memory estimate"
        );
        if let Some(available) = available.filter(|&a| self.peak() > a) {
            tracing::warn!(
                needed_gib = gib(self.peak()),
                available_gib = gib(available),
                "the run may not fit in memory: lower batching.max_batch_tokens (or \
                 micro_batch_size / pairs_per_batch) and raise train.grad_accum to keep \
                 the effective batch"
            );
        }
    }
}

impl fmt::Display for MemoryEstimate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, bytes: u64| {
            writeln!(f, "{name:<34} {:>9.2} GiB", bytes as f64 / GIB)
        };
        writeln!(f, "parameters {:>33.3} B", self.parameters as f64 / 1e9)?;
        row(f, "weights (f32)", self.weights)?;
        row(f, "AdamW moments", self.optimizer)?;
        row(f, "gradients", self.gradients)?;
        row(f, "accumulated gradients", self.accumulated)?;
        row(f, "saved activations (largest batch)", self.activations)?;
        if self.scores > 0 {
            row(f, "attention scores (one chunk)", self.scores)?;
        }
        if self.half_copies > 0 {
            row(f, "half-precision operands", self.half_copies)?;
        }
        row(f, "head (fused loss)", self.head)?;
        row(f, "allocator slack", self.slack())?;
        row(f, "runtime", self.runtime)?;
        row(f, "peak", self.peak())
    }
}

/// `Σ len²` over the rows of one micro-batch.
fn square_lengths(ids: &[Vec<u32>]) -> usize {
    ids.iter().map(|row| row.len() * row.len()).sum()
}

/// Memory the system can still give this process (Linux `MemAvailable`), for the CPU.
pub fn available_host_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
