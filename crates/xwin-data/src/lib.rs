//! Every dataset of the xwin pipeline in one place: typed records, streaming JSON/JSONL I/O
//! with errors that name file, line and field, chat templates with loss masks, the paper's
//! transforms (blocks, unfolding, splits), batching and statistics.

pub mod batch;
pub mod conversation;
pub mod demo_task;
pub mod error;
pub mod formats;
pub mod io;
pub mod lock;
pub mod records;
pub mod stats;
pub mod template;
pub mod transform;

pub use batch::{
    Batch, PadSide, Padding, length_buckets, pad_batch, pad_batch_to, pad_rows, pad_rows_to,
    padded_width,
};
pub use conversation::{Conversation, Role, Turn};
pub use demo_task::{DemoTask, demo_tasks, exact_match, noisy_conversations};
pub use error::{DataError, FieldError, Location, Result};
pub use formats::{
    PreferencePair, for_each_conversation, for_each_preference_pair, read_conversations,
};
pub use io::{JsonlWriter, ReadOptions, ReadReport, for_each_record, read_records};
pub use lock::{OutputLock, lock_path_for, sidecar};
pub use records::{
    EvalRecord, JudgeMeta, Rating, ResponseSamples, SampledResponse, SamplingSettings,
    ScoredResponse, Winner, XwinPair, XwinSet,
};
pub use stats::{ConversationStats, PairStats};
pub use template::{
    ChatTemplate, TextEncoder, TokenizedConversation, TrainOn, VICUNA_SYSTEM, tokenize,
};
pub use transform::{
    Blocks, DEFAULT_BLOCK_LEN, is_validation, split_into_blocks, stable_hash, strip_last_reply,
    unfold,
};

/// Loads a HF `tokenizer.json` as a [`TextEncoder`].
pub fn load_tokenizer(path: &std::path::Path) -> Result<tokenizers::Tokenizer> {
    tokenizers::Tokenizer::from_file(path)
        .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))
}
