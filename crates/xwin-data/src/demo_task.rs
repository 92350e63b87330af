//! A verifiable instruction task for demos: small instructions whose answers are computed
//! (adding numbers, reversing and upper-casing words, sorting, counting letters), so a
//! reference answer exists for every prompt and exact match means something. Each task also
//! carries a plausible mistake (the word not reversed, the sum off by one, …): SFT data with
//! a share of mistakes stands in for ShareGPT's imperfect replies, which is what a reward
//! model and rejection sampling improve on. Seeded and stable across platforms (splitmix64,
//! no library RNG whose stream could change).

use crate::conversation::{Conversation, Turn};
use serde::{Deserialize, Serialize};

/// One instruction with its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoTask {
    pub id: String,
    /// `add`, `reverse`, `sort`, `count` or `upper`.
    pub kind: String,
    pub instruction: String,
    pub answer: String,
    /// A typical wrong answer for this task.
    #[serde(default)]
    pub mistake: String,
}

impl DemoTask {
    /// The task as a one-round ShareGPT conversation (for SFT) with its id.
    pub fn conversation(&self) -> Conversation {
        self.conversation_answering(&self.answer)
    }

    /// The task answered with `reply`.
    pub fn conversation_answering(&self, reply: &str) -> Conversation {
        Conversation {
            id: Some(self.id.clone()),
            ..Conversation::new(vec![Turn::human(&self.instruction), Turn::gpt(reply)])
        }
    }
}

/// SFT conversations for `tasks` where a seeded `noise` share (0–1) of the replies is the
/// task's mistake instead of its answer.
pub fn noisy_conversations(tasks: &[DemoTask], noise: f64, seed: u64) -> Vec<Conversation> {
    let mut rng = SplitMix(seed ^ 0x0015e);
    tasks
        .iter()
        .map(|t| {
            let draw = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
            let wrong = draw < noise;
            t.conversation_answering(if wrong { &t.mistake } else { &t.answer })
        })
        .collect()
}

/// splitmix64: tiny, stable, good enough to pick task parameters.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// Few words and digits: a 2-layer model learns the tasks from a few thousand examples, so
// its samples are often right and its mistakes are mostly the demonstrations' mistakes,
// which a reward model can learn to recognise.
const WORDS: [&str; 12] = [
    "apple", "river", "planet", "garden", "silver", "window", "candle", "forest", "rocket",
    "pencil", "orange", "banana",
];

/// `n` tasks from `seed`, kinds in rotation.
pub fn demo_tasks(n: usize, seed: u64) -> Vec<DemoTask> {
    let mut rng = SplitMix(seed ^ 0x5eed);
    (0..n)
        .map(|i| {
            let word = |rng: &mut SplitMix| WORDS[rng.below(WORDS.len() as u64) as usize];
            let (kind, instruction, answer, mistake) = match i % 5 {
                0 => {
                    let (a, b) = (rng.below(5) + 1, rng.below(5) + 1);
                    (
                        "add",
                        format!("What is {a} + {b}? Answer with the number only."),
                        (a + b).to_string(),
                        (a + b + 1).to_string(),
                    )
                }
                1 => {
                    let w = word(&mut rng);
                    (
                        "reverse",
                        format!("Reverse the letters of the word \"{w}\"."),
                        w.chars().rev().collect(),
                        w.to_string(),
                    )
                }
                2 => {
                    let mut v: Vec<u64> = (0..3).map(|_| rng.below(6) + 1).collect();
                    let shown = v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                    v.sort_unstable();
                    let sorted = v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                    v.reverse();
                    let descending = v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
                    (
                        "sort",
                        format!("Sort these numbers from smallest to largest: {shown}."),
                        sorted,
                        descending,
                    )
                }
                3 => {
                    let w = word(&mut rng);
                    let letters: Vec<char> = w.chars().collect();
                    let c = letters[rng.below(letters.len() as u64) as usize];
                    let count = letters.iter().filter(|&&x| x == c).count();
                    (
                        "count",
                        format!("How many times does the letter '{c}' appear in \"{w}\"?"),
                        count.to_string(),
                        (count + 1).to_string(),
                    )
                }
                _ => {
                    let w = word(&mut rng);
                    (
                        "upper",
                        format!("Write \"{w}\" in capital letters."),
                        w.to_uppercase(),
                        w.to_string(),
                    )
                }
            };
            DemoTask {
                id: format!("task-{seed}-{i}"),
                kind: kind.to_string(),
                instruction,
                answer,
                mistake,
            }
        })
        .collect()
}

/// Exact match after trimming whitespace and trailing periods: how a generated answer is
/// scored against the reference.
pub fn exact_match(answer: &str, reference: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('.').trim().to_string();
    norm(answer) == norm(reference)
}

#[cfg(test)]
mod checks {
    use super::*;

    #[test]
    fn tasks_are_seeded_verifiable_and_varied() {
        let a = demo_tasks(50, 7);
        assert_eq!(a, demo_tasks(50, 7));
        assert_ne!(a, demo_tasks(50, 8));
        for t in &a {
            match t.kind.as_str() {
                "add" => {
                    let nums: Vec<u64> = t
                        .instruction
                        .split(|c: char| !c.is_ascii_digit())
                        .filter_map(|s| s.parse().ok())
                        .collect();
                    assert_eq!(t.answer, (nums[0] + nums[1]).to_string());
                }
                "reverse" => {
                    let w = t.instruction.split('"').nth(1).unwrap();
                    assert_eq!(t.answer, w.chars().rev().collect::<String>());
                }
                "sort" => {
                    let v: Vec<u64> = t.answer.split(", ").map(|x| x.parse().unwrap()).collect();
                    assert!(v.windows(2).all(|w| w[0] <= w[1]));
                }
                "count" => assert!(t.answer.parse::<usize>().unwrap() >= 1),
                "upper" => assert_eq!(t.answer, t.answer.to_uppercase()),
                other => panic!("kind {other}"),
            }
        }
        assert_eq!(a.iter().filter(|t| t.kind == "add").count(), 10);
        assert!(exact_match(" 85. ", "85") && !exact_match("86", "85"));
        assert_eq!(a[1].conversation().turns.len(), 2);
    }
}
