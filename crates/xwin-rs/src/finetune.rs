//! The rejection-sampling stage (paper step 3) from one config: score the policy's samples
//! with the reward model into Xwin-Set (resumable), report score by rank, pick the response
//! at the configured rank for every prompt and finetune the policy on it with the SFT
//! objective, loss on that last reply only, through the shared loop.

use crate::RsError;
use crate::xwin_set::{RankStats, considered};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xwin_data::{
    ChatTemplate, Conversation, ReadOptions, ScoredResponse, TokenizedConversation, TrainOn, Turn,
    XwinSet, for_each_record, is_validation, load_tokenizer, tokenize,
};
use xwin_train::sft::BatchingSection;
use xwin_train::{
    CheckpointPolicy, FinetuneRun, Finetuned, LoopConfig, ModelSection, StepMetrics, finetune,
};

/// The `[reward]` table: the reward model that scores the samples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSection {
    pub path: PathBuf,
    #[serde(default = "xwin_train::stage::defaults::device")]
    pub device: String,
    /// Rows per scoring forward.
    #[serde(default = "batch_rows")]
    pub batch_rows: usize,
}

fn batch_rows() -> usize {
    32
}

/// The `[data]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// `ResponseSamples` JSONL from `xwin-sample` (scored into `output/xwin-set.jsonl`)...
    #[serde(default)]
    pub samples: Option<PathBuf>,
    /// ...or an Xwin-Set already scored.
    #[serde(default)]
    pub xwin_set: Option<PathBuf>,
    #[serde(default = "xwin_train::stage::defaults::template")]
    pub template: ChatTemplate,
    /// Longest prompt + selected response in tokens; longer examples are dropped and counted.
    #[serde(default = "xwin_train::stage::defaults::max_len")]
    pub max_len: usize,
    /// Prompts held out (by a stable hash of their id) for the evaluation loss.
    #[serde(default)]
    pub eval_fraction: f64,
}

/// The `[select]` table: which response of each prompt is trained on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SelectSection {
    /// 1 = the reward model's best (the paper); larger ranks for the ablation.
    pub rank: usize,
    /// Consider only the first `n` samples of each prompt (the N ablation); all by default.
    pub n: Option<usize>,
}

impl Default for SelectSection {
    fn default() -> Self {
        Self { rank: 1, n: None }
    }
}

/// A whole RS run, as written in its TOML file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsConfig {
    /// The policy to finetune (the SFT model that drew the samples).
    pub model: ModelSection,
    /// Needed with `data.samples`.
    #[serde(default)]
    pub reward: Option<RewardSection>,
    pub data: DataSection,
    #[serde(default)]
    pub select: SelectSection,
    pub batching: BatchingSection,
    pub train: LoopConfig,
    #[serde(default)]
    pub checkpoint: Option<CheckpointPolicy>,
    /// `xwin-set.jsonl`, `rank-stats.json`, metrics, checkpoints and `model/`.
    pub output: PathBuf,
}

/// What a finished run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RsSummary {
    pub scored: Option<xwin_rm::ScoreSummary>,
    pub stats: RankStats,
    pub prompts: usize,
    pub selected: usize,
    pub eval_selected: usize,
    /// Prompts with fewer than `select.rank` responses.
    pub too_few_responses: usize,
    /// Selected examples longer than `data.max_len`.
    pub too_long: usize,
    /// Mean RM score of the selected responses (training and held-out).
    pub mean_selected_score: f64,
    pub finetune: Finetuned,
}

/// The Xwin-Set the run trains from: scored now from `data.samples` (resuming a scoring
/// run that was cut off) or given.
fn xwin_set(
    config: &RsConfig,
    tokenizer: &tokenizers::Tokenizer,
) -> Result<(PathBuf, Option<xwin_rm::ScoreSummary>), RsError> {
    match (&config.data.samples, &config.data.xwin_set) {
        (Some(samples), None) => {
            let reward = config.reward.as_ref().ok_or_else(|| {
                RsError::Setup("data.samples needs a [reward] table (the reward model)".into())
            })?;
            check_same_tokenizer(
                tokenizer,
                &config.model.tokenizer_path(),
                &reward.path.join("tokenizer.json"),
            )?;
            let device = xwin_model::parse_device(&reward.device)?;
            let rm = xwin_model::load_reward_model(&reward.path, &device)?;
            let path = config.output.join("xwin-set.jsonl");
            let options = xwin_rm::ScoreOptions {
                batch_rows: reward.batch_rows,
                ..xwin_rm::ScoreOptions::for_model(&rm, config.data.template)
            };
            let name = reward.path.display().to_string();
            let summary = xwin_rm::score_samples(
                &rm,
                tokenizer,
                &name,
                samples,
                &path,
                options,
                &device,
                |n| {
                    tracing::info!(prompts = n, "scored");
                },
            )?;
            Ok((path, Some(summary)))
        }
        (None, Some(set)) => Ok((set.clone(), None)),
        _ => Err(RsError::Setup(
            "[data] needs exactly one of `samples` (to score) and `xwin_set` (scored)".into(),
        )),
    }
}

/// The reward model must read text as the policy writes it: the same vocabulary.
fn check_same_tokenizer(
    policy: &tokenizers::Tokenizer,
    policy_path: &Path,
    reward: &Path,
) -> Result<(), RsError> {
    if !reward.exists() {
        return Ok(());
    }
    let a = policy.get_vocab(true);
    let b = load_tokenizer(reward)?.get_vocab(true);
    if a != b {
        return Err(RsError::Setup(format!(
            "{} ({} tokens) and {} ({} tokens) differ: the reward model would score other \
             token ids than the policy wrote",
            policy_path.display(),
            a.len(),
            reward.display(),
            b.len()
        )));
    }
    Ok(())
}

/// Scores (if needed), reports score by rank, selects and finetunes; resumable throughout.
pub fn run_rs(config: &RsConfig, on_step: impl FnMut(&StepMetrics)) -> Result<RsSummary, RsError> {
    if config.select.rank == 0 {
        return Err(RsError::Setup(
            "select.rank counts from 1 (the best)".into(),
        ));
    }
    xwin_train::stage::check_eval_fraction(config.data.eval_fraction).map_err(RsError::Setup)?;
    std::fs::create_dir_all(&config.output)
        .map_err(|e| xwin_data::DataError::io(&config.output, e))?;
    let tokenizer = load_tokenizer(&config.model.tokenizer_path())?;
    let (set_path, scored) = xwin_set(config, &tokenizer)?;
    let (mut train, mut eval) = (Vec::new(), Vec::new());
    let (mut prompts, mut too_few, mut too_long) = (0, 0, 0);
    let (mut score_sum, mut failure) = (0.0f64, None);
    // One pass: the score-by-rank statistics and the selection read the same records.
    let mut stats = RankStats::default();
    for_each_record(&set_path, ReadOptions::default(), |set: XwinSet| {
        if failure.is_some() {
            return;
        }
        prompts += 1;
        let responses = match considered(&set, config.select.n) {
            Ok(r) => r,
            Err(e) => {
                failure = Some(e);
                return;
            }
        };
        stats.add(&responses);
        let result = select(config, &set.prompt, &responses, &tokenizer);
        match result {
            Ok(Some((example, score))) => {
                if example.len() > config.data.max_len {
                    too_long += 1;
                    return;
                }
                score_sum += f64::from(score);
                // Held out by the record id, the key the samples were written under.
                let keyed = Conversation {
                    id: Some(set.id.clone()),
                    ..set.prompt.clone()
                };
                let held_out = config.data.eval_fraction > 0.0
                    && is_validation(&keyed, config.data.eval_fraction, config.batching.seed);
                if held_out {
                    eval.push(example)
                } else {
                    train.push(example)
                }
            }
            Ok(None) => too_few += 1,
            Err(e) => failure = Some(e),
        }
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    let stats_path = config.output.join("rank-stats.json");
    std::fs::write(
        &stats_path,
        serde_json::to_string_pretty(&stats).unwrap_or_default(),
    )
    .map_err(|e| xwin_data::DataError::io(&stats_path, e))?;
    tracing::info!(
        prompts = stats.prompts,
        best = stats.mean_by_rank.first().copied().unwrap_or(f64::NAN),
        worst = stats.mean_by_rank.last().copied().unwrap_or(f64::NAN),
        "mean RM score by rank written to {}",
        stats_path.display()
    );

    let selected = train.len() + eval.len();
    tracing::info!(prompts, selected, too_few, too_long, "RS data ready");
    let run = FinetuneRun {
        model: &config.model,
        template: config.data.template,
        max_len: config.data.max_len,
        batching: &config.batching,
        train: &config.train,
        checkpoint: config.checkpoint,
        output: &config.output,
    };
    let finetune = finetune(&run, &train, &eval, on_step)?;
    Ok(RsSummary {
        scored,
        stats,
        prompts,
        selected: train.len(),
        eval_selected: eval.len(),
        too_few_responses: too_few,
        too_long,
        mean_selected_score: score_sum / selected.max(1) as f64,
        finetune,
    })
}

/// The example of one prompt: its history plus the response at `select.rank`, loss on that
/// response only; `None` when the prompt has fewer responses.
fn select(
    config: &RsConfig,
    prompt: &Conversation,
    responses: &[ScoredResponse],
    tokenizer: &tokenizers::Tokenizer,
) -> Result<Option<(TokenizedConversation, f32)>, RsError> {
    let Some(chosen) = responses.get(config.select.rank - 1) else {
        return Ok(None);
    };
    let mut conversation: Conversation = prompt.clone();
    conversation.turns.push(Turn::gpt(&chosen.text));
    let example = tokenize(
        config.data.template,
        &conversation,
        tokenizer,
        TrainOn::LastAssistant,
    )?;
    Ok(Some((example, chosen.score)))
}

#[cfg(test)]
mod checks {
    use super::*;

    /// The loss covers the selected reply (and its `</s>`) only, not the earlier replies of
    /// a multi-turn prompt.
    #[test]
    fn only_the_selected_reply_is_trained() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama");
        let tokenizer = load_tokenizer(&fixture.join("tokenizer.json")).unwrap();
        let toml = format!(
            "output = \"x\"\n[model]\npath = {:?}\n[data]\nxwin_set = \"s\"\n[select]\nrank = 2\n\
             [batching]\nepochs = 1\nmicro_batch_size = 1\n[train]\nlr = 1e-3\n\
             schedule = \"constant\"\nwarmup = {{ steps = 0 }}\ngrad_accum = 1\n",
            fixture.display().to_string()
        );
        let config: RsConfig = toml::from_str(&toml).unwrap();
        let set = XwinSet {
            id: "p".into(),
            prompt: Conversation::new(vec![
                Turn::human("Who are you?"),
                Turn::gpt("I am Vicuna."),
                Turn::human("Have a nice day!"),
            ]),
            reward_model: "rm".into(),
            responses: [("Bye.", 0.1), ("You too!", 0.5), ("Thanks!", 2.0)]
                .iter()
                .enumerate()
                .map(|(i, (t, s))| xwin_data::ScoredResponse {
                    text: t.to_string(),
                    score: *s,
                    rank: 0,
                    index: Some(i),
                })
                .collect(),
        };
        let responses = considered(&set, config.select.n).unwrap();
        let (example, score) = select(&config, &set.prompt, &responses, &tokenizer)
            .unwrap()
            .unwrap();
        assert_eq!(score, 0.5);
        let trained: Vec<u32> = example
            .ids
            .iter()
            .zip(&example.mask)
            .filter(|(_, m)| **m)
            .map(|(i, _)| *i)
            .collect();
        let text = tokenizer.decode(&trained, false).unwrap();
        assert_eq!(text.trim(), "You too!</s>");
    }
}
