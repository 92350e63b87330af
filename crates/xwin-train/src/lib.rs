//! Training shared by every stage: AdamW with the paper's defaults, learning-rate schedules,
//! the one loop (accumulation, clipping, evaluation, metrics, checkpoints and resume) and the
//! objectives that plug into it, starting with SFT.

pub mod checkpoint;
pub mod epochs;
pub mod fused_adamw;
pub mod loop_config;
pub mod lora;
pub mod loss_scale;
pub mod memory;
pub mod metrics;
pub mod objective;
pub mod optim;
pub mod schedule;
pub mod sft;
pub mod sft_loss;
pub mod stage;
pub mod trainer;

pub use checkpoint::{CheckpointError, CheckpointPolicy, Checkpointing, LoopState};
pub use epochs::EpochPlan;
pub use fused_adamw::FusedAdamW;
pub use lora::LoraConfig;
pub use loss_scale::{LossScale, LossScaleConfig};
pub use memory::{Head, MemoryEstimate, StepShape, available_host_memory};
pub use objective::{
    Evaluation, FnObjective, MessageError, MicroLoss, Objective, accumulate_passes, plain_backward,
    recomputed_loss,
};
pub use optim::AdamWSettings;
pub use schedule::{Schedule, Warmup};
pub use sft::{
    FinetuneRun, Finetuned, SftConfig, SftObjective, SftSummary, finetune, micro_batches, run_sft,
    tokenize_data,
};
pub use sft_loss::{num_targets, sft_loss, sft_loss_sum};
pub use stage::{
    ModelSection, StageDir, StageError, base_fingerprint, export_files, export_model, read_config,
    run_fingerprint,
};
pub use trainer::{LoopConfig, Run, StepMetrics, TrainError, Trained, train};
