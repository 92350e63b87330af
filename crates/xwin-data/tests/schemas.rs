//! Every record type the code writes validates against its JSON Schema in `data-schemas/`,
//! checked with a real validator; and the schemas reject what the readers reject.

use serde::Serialize;
use serde_json::{Value, json};
use xwin_data::*;

fn validator(name: &str) -> jsonschema::Validator {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../data-schemas/{name}.schema.json"));
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes the record through `JsonlWriter` and validates what landed on disk.
fn assert_valid<T: Serialize>(name: &str, record: &T) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    JsonlWriter::create(&path).unwrap().write(record).unwrap();
    let line: Value = serde_json::from_str(std::fs::read_to_string(&path).unwrap().trim()).unwrap();
    let v = validator(name);
    let errors: Vec<String> = v
        .iter_errors(&line)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{line}");
}

fn conv() -> Conversation {
    Conversation {
        id: Some("c1".into()),
        system: Some("Be brief.".into()),
        turns: vec![Turn::human("Hi"), Turn::gpt("Hello"), Turn::human("2+2?")],
    }
}

fn judge() -> JudgeMeta {
    JudgeMeta {
        model: "gpt-4".into(),
        template: "xwin-pair-v1".into(),
        temperature: 0.0,
        key: "ab12".into(),
    }
}

#[test]
fn every_written_record_validates() {
    assert_valid("conversation", &conv());
    assert_valid(
        "conversation",
        &Conversation::new(vec![Turn::human("q"), Turn::gpt("a")]),
    );
    assert_valid(
        "preference-pair",
        &PreferencePair {
            id: None,
            prompt: conv(),
            chosen: "4".into(),
            rejected: "5".into(),
        },
    );
    let sampling = SamplingSettings {
        temperature: 0.7,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 512,
        seed: 3,
    };
    assert_valid(
        "response-samples",
        &ResponseSamples {
            id: "s1".into(),
            prompt: conv(),
            model: "sft".into(),
            responses: vec![SampledResponse {
                text: "4".into(),
                sampling: sampling.clone(),
                finished: true,
            }],
        },
    );
    // Every level, and no rating (judges whose format states no margin).
    for rating in Rating::ALL.map(Some).into_iter().chain([None]) {
        assert_valid(
            "xwin-pair",
            &XwinPair {
                id: "p1".into(),
                prompt: conv(),
                response_a: "4".into(),
                response_b: "5".into(),
                winner: Winner::B,
                rating,
                reason: "B is right".into(),
                judge: judge(),
                shown_order: [Winner::B, Winner::A],
            },
        );
    }
    let mut set = XwinSet {
        id: "x1".into(),
        prompt: conv(),
        reward_model: "rm".into(),
        responses: vec![
            ScoredResponse {
                text: "a".into(),
                score: -0.5,
                rank: 0,
                index: Some(0),
            },
            ScoredResponse {
                text: "b".into(),
                score: 1.5,
                rank: 0,
                index: None,
            },
        ],
    };
    set.rank();
    assert_eq!(set.responses[0].text, "b");
    assert_valid("xwin-set", &set);
    assert_valid(
        "eval-record",
        &EvalRecord {
            id: "e1".into(),
            benchmark: "alpaca_eval".into(),
            model: "xwin-7b".into(),
            instruction: "Say hi".into(),
            output: "Hi".into(),
            reference_model: Some("text_davinci_003".into()),
            reference_output: Some("Hello".into()),
            preference: Some(2.0),
            score: None,
            turn: None,
            judge: judge(),
            judgment: "[{'model': 'model_2', 'rank': 1}]".into(),
        },
    );
}

#[test]
fn schemas_reject_bad_records() {
    let pair = validator("xwin-pair");
    let mut bad = json!({"id": "p", "prompt": {"conversations": [{"from": "human", "value": "q"}]},
        "response_a": "a", "response_b": "b", "winner": "a", "rating": "hugely", "reason": "",
        "judge": {"model": "m", "template": "t", "temperature": 0.0, "key": "k"}, "shown_order": ["a", "b"]});
    assert!(!pair.is_valid(&bad), "unknown rating");
    bad["rating"] = json!("slightly");
    assert!(pair.is_valid(&bad));
    bad["shown_order"] = json!(["a", "a"]);
    assert!(!pair.is_valid(&bad), "order must be a permutation");
    let c = validator("conversation");
    assert!(!c.is_valid(&json!({"conversations": [{"from": "robot", "value": "x"}]})));
    assert!(!c.is_valid(&json!({"conversations": []})));
}
