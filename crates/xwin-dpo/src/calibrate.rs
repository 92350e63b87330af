//! The paper's calibrated dispreferred rank: sample the policy once on each probe prompt,
//! score the samples with the reward model, and take the Xwin-Set rank whose mean score is
//! closest to the policy's own mean, so the rejected response looks like what the policy
//! writes now. Probe samples and scores are artifacts in the run directory (resumable).

use crate::DpoError;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use xwin_data::{ChatTemplate, ReadOptions};
use xwin_model::{LlamaForCausalLM, load_reward_model};
use xwin_rs::{LocalOptions, LocalSampler, RankStats, SampleSpec, rank_stats, read_prompts};

/// The `[calibrate]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrateSection {
    /// The reward model that scored the Xwin-Set.
    pub reward: PathBuf,
    /// Conversations to probe with (unfolded as for sampling).
    pub prompts: PathBuf,
    /// How many prompts (the first ones); the paper uses 500.
    #[serde(default = "probe_prompts")]
    pub probe_prompts: usize,
    #[serde(default)]
    pub first_replies: Option<usize>,
    #[serde(default = "one")]
    pub temperature: f32,
    #[serde(default = "one")]
    pub top_p: f32,
    #[serde(default = "max_new_tokens")]
    pub max_new_tokens: usize,
    #[serde(default)]
    pub seed: u64,
}

fn probe_prompts() -> usize {
    500
}
fn one() -> f32 {
    1.0
}
fn max_new_tokens() -> usize {
    512
}

/// The choice and what it was based on (`calibration.json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// The policy's mean RM score over its probe samples.
    pub policy_mean: f64,
    pub probe_samples: usize,
    /// The Xwin-Set's mean score by rank.
    pub mean_by_rank: Vec<f64>,
    /// The rejected rank (2..=N) whose mean is closest to `policy_mean`.
    pub rank: usize,
}

/// The rank in `2..=N` whose mean is closest to `target` (the first of equals).
pub fn closest_rank(mean_by_rank: &[f64], target: f64) -> Option<usize> {
    (2..=mean_by_rank.len()).min_by(|&a, &b| {
        (mean_by_rank[a - 1] - target)
            .abs()
            .total_cmp(&(mean_by_rank[b - 1] - target).abs())
    })
}

/// Samples, scores and chooses; `dir` holds `probe-samples.jsonl`, `probe-xwin-set.jsonl` and
/// `calibration.json`.
#[allow(clippy::too_many_arguments)]
pub fn calibrate(
    policy: &LlamaForCausalLM,
    policy_dir: &Path,
    tokenizer: &tokenizers::Tokenizer,
    template: ChatTemplate,
    section: &CalibrateSection,
    xwin_set: &RankStats,
    dir: &Path,
    device: &Device,
) -> Result<Calibration, DpoError> {
    let (mut prompts, _) = read_prompts(
        &section.prompts,
        section.first_replies,
        ReadOptions::default(),
    )?;
    prompts.truncate(section.probe_prompts);
    if prompts.is_empty() {
        return Err(DpoError::Setup(format!(
            "{}: no probe prompts",
            section.prompts.display()
        )));
    }
    let spec = SampleSpec::single(
        section.temperature,
        section.top_p,
        section.max_new_tokens,
        section.seed,
    );
    let samples = dir.join("probe-samples.jsonl");
    let sampler = LocalSampler {
        model: policy,
        tokenizer,
        template,
        name: policy_dir.display().to_string(),
        device: device.clone(),
    };
    let options = LocalOptions {
        skip_long: true,
        ..LocalOptions::default()
    };
    sampler.run(&prompts, &spec, options, &samples, |p| {
        tracing::debug!(done = p.done, total = p.total, "probe samples");
    })?;
    let rm = load_reward_model(&section.reward, device)?;
    let scored = dir.join("probe-xwin-set.jsonl");
    let score = xwin_rm::ScoreOptions::for_model(&rm, template);
    let name = section.reward.display().to_string();
    xwin_rm::score_samples(
        &rm,
        tokenizer,
        &name,
        &samples,
        &scored,
        score,
        device,
        |_| {},
    )?;
    let probe = rank_stats(&scored, None)?;
    let rank = closest_rank(&xwin_set.mean_by_rank, probe.mean).ok_or_else(|| {
        DpoError::Setup("the Xwin-Set needs at least 2 responses per prompt to calibrate".into())
    })?;
    let calibration = Calibration {
        policy_mean: probe.mean,
        probe_samples: probe.responses,
        mean_by_rank: xwin_set.mean_by_rank.clone(),
        rank,
    };
    let path = dir.join("calibration.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&calibration).unwrap_or_default(),
    )
    .map_err(|e| xwin_data::DataError::io(&path, e))?;
    Ok(calibration)
}

#[cfg(test)]
mod checks {
    use super::closest_rank;

    #[test]
    fn the_closest_rank_never_picks_the_chosen_one() {
        let means = [3.0, 1.0, 0.2, -0.5, -2.0];
        assert_eq!(closest_rank(&means, 0.0), Some(3));
        assert_eq!(
            closest_rank(&means, 5.0),
            Some(2),
            "rank 1 is the chosen response"
        );
        assert_eq!(closest_rank(&means, -9.0), Some(5));
        assert_eq!(closest_rank(&[1.0], 0.0), None);
    }
}
