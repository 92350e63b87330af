//! Evaluation (paper §4): AlpacaEval win rates and MT-bench scores computed from the official
//! file formats exactly as the official tools compute them (`alpaca_eval`'s `get_winrate`,
//! FastChat's `show_result`), with seeded bootstrap intervals.

pub mod alpaca;
pub mod alpaca_protocol;
mod answers;
pub mod best_of_n;
pub mod bootstrap;
pub mod compare;
pub mod exact_match;
pub mod length_controlled;
pub mod mt_bench;
pub mod mt_bench_pairwise;
pub mod mt_bench_protocol;
pub mod plots;
pub mod report;
pub mod weighted_judge;

pub use alpaca::{AlpacaScore, read_annotation_rows, read_annotations, score_file, win_rate};
pub use alpaca_protocol::{
    AlpacaAnnotation, AlpacaOutput, AlpacaRun, align_outputs, generate_outputs, judge_outputs,
    read_outputs, write_run,
};
pub use best_of_n::{BestOfN, best_of_n, curve_points};
pub use bootstrap::{Interval, bootstrap_mean, bootstrap_percent};
pub use compare::{PairedComparison, paired_comparison, preferences_by_instruction};
pub use exact_match::{ExactMatch, evaluate_exact_match, score_exact_match, task_prompts};
pub use length_controlled::{LengthControlled, length_controlled};
pub use mt_bench::{
    PairwiseJudgment, PairwiseScore, SingleJudgment, SingleScore, pairwise_scores, read_judgments,
    single_scores,
};
pub use report::{ReportInputs, report_sections, write_report};
pub use weighted_judge::{WeightedVerdict, chatml_messages, judge_weighted};

/// Errors of evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Data(#[from] xwin_data::DataError),
    #[error("{path}: {message}")]
    Input { path: String, message: String },
    #[error(transparent)]
    Rs(#[from] xwin_rs::RsError),
}
