//! Choosing the next token from logits: greedy, temperature, top-k, top-p.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// How to pick each next token.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Nucleus sampling mass; 1.0 disables it.
    pub top_p: f32,
    /// Keep only the `k` most likely tokens; 0 disables it.
    pub top_k: usize,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            top_k: 0,
        }
    }
}

impl SamplingConfig {
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Picks a token id from one row of logits. Follows HF's processor order:
    /// temperature, then top-k, then top-p.
    ///
    /// Only the candidates a filter can keep are sorted: without top-k and top-p the draw
    /// walks the whole softmax in id order (sorting a 32k vocabulary per row and step cost
    /// more than the decode itself); top-p sorts a growing prefix of the largest logits until
    /// it holds the nucleus.
    pub fn sample(&self, logits: &[f32], rng: &mut ChaCha8Rng) -> u32 {
        if self.temperature <= 0.0 {
            return argmax(logits);
        }
        let t = self.temperature;
        let top_k = (self.top_k > 0 && self.top_k < logits.len()).then_some(self.top_k);
        if top_k.is_none() && self.top_p >= 1.0 {
            // No filter: one pass for the max, one for the weights, no (id, logit) copies.
            let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l / t));
            let probs: Vec<f32> = logits.iter().map(|&l| (l / t - max).exp()).collect();
            return draw_index(&probs, rng) as u32;
        }
        let mut candidates: Vec<(u32, f32)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, l / t))
            .collect();
        // Descending by logit; ties keep the lower id first.
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let mut sorted = top_k.unwrap_or(64).min(candidates.len());
        loop {
            if sorted < candidates.len() {
                candidates.select_nth_unstable_by(sorted - 1, order);
            }
            candidates[..sorted].sort_by(order);
            if top_k.is_some() {
                candidates.truncate(sorted);
            }
            let max = candidates[0].1;
            // Normaliser over every candidate still in play (all of them without top-k).
            let total: f32 = candidates.iter().map(|(_, l)| (l - max).exp()).sum();
            let probs: Vec<f32> = candidates[..sorted]
                .iter()
                .map(|(_, l)| (l - max).exp() / total)
                .collect();
            if self.top_p >= 1.0 {
                return draw(&candidates[..sorted], &probs, rng);
            }
            // Keep the smallest prefix whose mass reaches top_p (at least one token).
            let mut mass = 0.0;
            let mut keep = None;
            for (i, p) in probs.iter().enumerate() {
                mass += p;
                if mass >= self.top_p {
                    keep = Some(i + 1);
                    break;
                }
            }
            match keep {
                Some(k) => return draw(&candidates[..k], &probs[..k], rng),
                None if sorted == candidates.len() => {
                    return draw(&candidates, &probs, rng);
                }
                // The nucleus reaches past the sorted prefix: sort more.
                None => sorted = (sorted * 4).min(candidates.len()),
            }
        }
    }
}

/// Draws one of `candidates` with probability proportional to `weights`.
fn draw(candidates: &[(u32, f32)], weights: &[f32], rng: &mut ChaCha8Rng) -> u32 {
    candidates[draw_index(weights, rng)].0
}

/// An index drawn with probability proportional to `weights`.
fn draw_index(weights: &[f32], rng: &mut ChaCha8Rng) -> usize {
    let total: f32 = weights.iter().sum();
    let mut u = rng.random::<f32>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

/// Index of the largest value; the first one on ties, as `torch.argmax`.
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best as u32
}
