//! Judges for the xwin pipeline (paper step 2 and the evaluation stage): pairwise preference
//! with a reason and the four-level rating, 1–10 grading, and the MT-bench and AlpacaEval
//! formats, through any OpenAI-compatible endpoint ([`LlmJudge`]) or offline
//! ([`OracleJudge`]); a resumable, streaming runner that turns pairs into Xwin-Pair records,
//! one output lock per run.

pub mod annotate;
pub mod client;
pub mod error;
pub mod judge;
pub mod limiter;
pub mod pairs;
pub mod parse;
pub mod template;

pub use annotate::{
    AnnotateOptions, AnnotateSummary, FailureRecord, Progress, annotate_file, annotate_pairs,
    failures_path,
};
pub use client::{CallError, ChatClient, EndpointConfig, Parsed, Usage};
pub use error::{AnnotateError, Result};
pub use judge::{
    AnyJudge, Grade, GradeQuery, Judge, JudgeFailure, JudgeIdentity, LlmJudge, OracleJudge,
    PairQuery, PairVerdict, VerdictFormat,
};
pub use pairs::{PairInput, read_pair_inputs};
pub use parse::{ParseError, Shown};
pub use template::PromptTemplate;
