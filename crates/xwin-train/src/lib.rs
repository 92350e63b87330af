//! Training pieces shared by every stage. This first part holds the optimizer with the
//! paper's defaults, the learning-rate schedules and the SFT objective; the shared loop,
//! checkpoints and resume build on them.

pub mod objective;
pub mod optim;
pub mod schedule;

pub use objective::{num_targets, sft_loss};
pub use optim::AdamWSettings;
pub use schedule::{Schedule, Warmup};
pub mod trainer;
pub use trainer::{LoopConfig, StepMetrics, TrainError, train};
pub mod sft;
pub use sft::{SftConfig, SftSummary, run_sft};
