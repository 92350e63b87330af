//! Judges for the xwin pipeline (paper step 2 and the evaluation stage): pairwise preference
//! with a reason and the four-level rating, 1–10 grading, and the MT-bench and AlpacaEval
//! formats, through any OpenAI-compatible endpoint ([`LlmJudge`]) or offline
//! ([`OracleJudge`]); a resumable runner that turns pairs into Xwin-Pair records; and the
//! scripted OpenAI-compatible server the tests and the benchmark use.

pub mod annotate;
pub mod client;
pub mod error;
pub mod judge;
pub mod limiter;
pub mod parse;
pub mod template;
pub mod test_server;

pub use annotate::{
    AnnotateOptions, AnnotateSummary, FailureRecord, PairInput, Progress, annotate_pairs,
    failures_path, read_pair_inputs,
};
pub use client::{CallError, ChatClient, EndpointConfig, Usage};
pub use error::{AnnotateError, Result};
pub use judge::{
    Grade, GradeQuery, Judge, JudgeFailure, JudgeIdentity, LlmJudge, OracleJudge, PairQuery,
    PairVerdict, VerdictFormat,
};
pub use parse::{ParseError, Shown};
pub use template::PromptTemplate;
