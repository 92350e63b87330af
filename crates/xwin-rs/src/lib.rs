//! Sampling and rejection sampling (paper steps 2a and 3): prompts from unfolded
//! conversations; best-of-N or pair samples from the local policy (each prompt prefilled
//! once) or from any OpenAI-compatible server; Xwin-Set statistics by rank; the RS finetune
//! on the response at a chosen rank through `xwin-train`'s loop.

pub mod external;
pub mod finetune;
pub mod local;
pub mod output;
pub mod policy;
pub mod prompts;
pub mod spec;
pub mod xwin_set;

pub use external::{Api, sample_external};
pub use finetune::{DataSection, RewardSection, RsConfig, RsSummary, SelectSection, run_rs};
pub use local::{LocalOptions, LocalSampler};
pub use output::{Progress, SampleFailure, SampleSummary, failures_path};
pub use policy::LocalPolicy;
pub use prompts::{Prompt, PromptReport, read_prompts};
pub use spec::{SampleSpec, SampledPair, record};
pub use xwin_set::{RankStats, considered, rank_stats, rank_stats_of};

/// Errors of sampling and the RS stage.
#[derive(Debug, thiserror::Error)]
pub enum RsError {
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error(transparent)]
    Model(#[from] xwin_model::ModelError),
    #[error(transparent)]
    Rm(#[from] xwin_rm::RmError),
    #[error(transparent)]
    Sft(#[from] xwin_train::sft::SftError),
    #[error("prompt {id}: {message}")]
    Prompt { id: String, message: String },
    #[error("{0}")]
    Setup(String),
}
