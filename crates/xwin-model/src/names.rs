//! Every Hugging Face parameter name, spelled once. Building a model (from a checkpoint or at
//! random) and exporting it both take their names from here, so the two cannot drift apart.

/// `prefix.name`, as HF nests module names.
pub fn join(prefix: &str, name: &str) -> String {
    format!("{prefix}.{name}")
}

pub const EMBED_TOKENS: &str = "model.embed_tokens.weight";
pub const FINAL_NORM: &str = "model.norm.weight";
pub const LM_HEAD: &str = "lm_head.weight";
/// The reward model's head (`LlamaForSequenceClassification`).
pub const SCORE: &str = "score.weight";

/// Prefix of decoder layer `i`.
pub fn layer(i: usize) -> String {
    format!("model.layers.{i}")
}

// Inside a decoder layer.
pub const INPUT_NORM: &str = "input_layernorm.weight";
pub const POST_ATTENTION_NORM: &str = "post_attention_layernorm.weight";
pub const SELF_ATTN: &str = "self_attn";
pub const MLP: &str = "mlp";

// Inside `self_attn`.
pub const Q_PROJ: &str = "q_proj.weight";
pub const K_PROJ: &str = "k_proj.weight";
pub const V_PROJ: &str = "v_proj.weight";
pub const O_PROJ: &str = "o_proj.weight";

// Inside `mlp`.
pub const GATE_PROJ: &str = "gate_proj.weight";
pub const UP_PROJ: &str = "up_proj.weight";
pub const DOWN_PROJ: &str = "down_proj.weight";
