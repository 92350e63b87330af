//! Batched scoring: every response's score equals its reward computed alone (batching and
//! padding change nothing), responses are ranked per prompt, and an interrupted output
//! (a torn last line) is completed by a rerun with every prompt exactly once.

use burn::tensor::Device;
use std::path::PathBuf;
use xwin_data::{
    ChatTemplate, Conversation, ResponseSamples, SampledResponse, SamplingSettings, TrainOn, Turn,
    XwinSet, load_tokenizer, tokenize,
};
use xwin_model::load_reward_model;
use xwin_rm::{ScoreOptions, score_samples};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn samples(n: usize) -> Vec<ResponseSamples> {
    (0..n)
        .map(|i| ResponseSamples {
            id: format!("p{i}"),
            prompt: Conversation::new(vec![Turn::human(format!("Question number {i}?"))]),
            model: "policy".into(),
            responses: (0..4)
                .map(|k| SampledResponse {
                    text: "word ".repeat(1 + (i * 3 + k * 5) % 9) + &format!("answer {k}"),
                    sampling: SamplingSettings {
                        temperature: 0.7,
                        top_p: 1.0,
                        top_k: 0,
                        max_new_tokens: 32,
                        seed: 0,
                    },
                    finished: true,
                })
                .collect(),
        })
        .collect()
}

fn read(path: &std::path::Path) -> Vec<XwinSet> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn scores_equal_single_rewards_and_a_rerun_completes_a_torn_output() {
    let device = Device::flex();
    let rm = load_reward_model(fixtures().join("tiny-llama-rm"), &device).unwrap();
    let tokenizer = load_tokenizer(&fixtures().join("tiny-llama/tokenizer.json")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("samples.jsonl");
    let all = samples(10);
    let lines: String = all
        .iter()
        .map(|s| serde_json::to_string(s).unwrap() + "\n")
        .collect();
    std::fs::write(&input, lines).unwrap();
    let output = dir.path().join("xwin-set.jsonl");
    let options = ScoreOptions {
        max_len: 256,
        batch_rows: 7,
        chunk_prompts: 3,
        ..ScoreOptions::default()
    };
    let run = || {
        score_samples(
            &rm,
            &tokenizer,
            "rm",
            &input,
            &output,
            options,
            &device,
            |_| {},
        )
        .unwrap()
    };
    let first = run();
    assert_eq!((first.scored_prompts, first.scored_responses), (10, 40));
    let sets = read(&output);
    // Each response alone (no padding, batch of one).
    for set in &sets {
        let original = all.iter().find(|s| s.id == set.id).unwrap();
        assert!(set.responses.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(
            set.responses.iter().map(|r| r.rank).collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
        for r in &set.responses {
            let mut conversation = original.prompt.clone();
            conversation.turns.push(Turn::gpt(&r.text));
            let mut ids = tokenize(
                ChatTemplate::VicunaV11,
                &conversation,
                &tokenizer,
                TrainOn::LastAssistant,
            )
            .unwrap()
            .ids;
            if ids.last() != Some(&2) {
                ids.push(2);
            }
            let alone = rm
                .rewards(&[ids.clone()], &[vec![true; ids.len()]], &device)
                .unwrap()
                .into_scalar::<f32>();
            assert!(
                (alone - r.score).abs() < 1e-5,
                "{}: {alone} vs {}",
                set.id,
                r.score
            );
        }
    }
    // Cut after 4 prompts plus half a line, as a killed run leaves it; rerun.
    let text = std::fs::read_to_string(&output).unwrap();
    let kept: Vec<&str> = text.lines().take(5).collect();
    let torn = format!(
        "{}\n{}",
        kept[..4].join("\n"),
        &kept[4][..kept[4].len() / 2]
    );
    std::fs::write(&output, torn).unwrap();
    let second = run();
    assert_eq!((second.already_done, second.scored_prompts), (4, 6));
    let mut ids: Vec<String> = read(&output).into_iter().map(|s| s.id).collect();
    ids.sort();
    let mut want: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    want.sort();
    assert_eq!(ids, want, "every prompt exactly once");
}
