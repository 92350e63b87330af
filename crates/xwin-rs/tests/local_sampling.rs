//! The local sampler: records equal what `generate` gives each prompt alone, an interrupted
//! run resumes to the same artifact with every (prompt, sample) once, pairs are what
//! `xwin-annotate` reads, and bad input is named before anything is written.

use burn::tensor::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use xwin_data::{ChatTemplate, ReadOptions, ResponseSamples, TextEncoder, load_tokenizer};
use xwin_model::{GenerationConfig, LlamaForCausalLM, generate, load_causal_lm};
use xwin_rs::{LocalOptions, LocalSampler, Prompt, RsError, SampleSpec, read_prompts};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/tiny-llama")
}

/// Three conversations: one to unfold (two replies), one ending with a question, one more.
fn prompts_file(dir: &Path) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let lines = [
        r#"{"id":"c1","conversations":[{"from":"human","value":"Who are you?"},{"from":"gpt","value":"I am Vicuna."},{"from":"human","value":"Have a nice day!"},{"from":"gpt","value":"You too!"}]}"#,
        r#"{"id":"c2","conversations":[{"from":"human","value":"What is up?"}]}"#,
        r#"{"id":"c3","conversations":[{"from":"human","value":"Tell me your name."},{"from":"gpt","value":"Vicuna."}]}"#,
    ];
    std::fs::write(&path, lines.join("\n")).unwrap();
    path
}

fn spec() -> SampleSpec {
    SampleSpec {
        n: 3,
        temperature: 1.0,
        top_p: 0.95,
        top_k: 0,
        max_new_tokens: 12,
        seed: 11,
        pair_temperatures: None,
    }
}

struct Setup {
    model: LlamaForCausalLM,
    tokenizer: tokenizers::Tokenizer,
    device: Device,
}

fn setup() -> Setup {
    let device = Device::flex();
    Setup {
        model: load_causal_lm(fixture(), &device).unwrap(),
        tokenizer: load_tokenizer(&fixture().join("tokenizer.json")).unwrap(),
        device,
    }
}

fn sampler(s: &Setup) -> LocalSampler<'_> {
    LocalSampler {
        model: &s.model,
        tokenizer: &s.tokenizer,
        template: ChatTemplate::VicunaV11,
        name: "tiny".into(),
        device: s.device.clone(),
    }
}

fn records(path: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let id = v["id"].as_str().unwrap().to_string();
        assert!(out.insert(id.clone(), v).is_none(), "{id} written twice");
    }
    out
}

#[test]
fn prompts_unfold_and_drop_the_reply_to_sample() {
    let dir = tempfile::tempdir().unwrap();
    let (prompts, report) =
        read_prompts(&prompts_file(dir.path()), None, ReadOptions::default()).unwrap();
    let ids: Vec<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["c1#0", "c1#1", "c2", "c3#0"]);
    assert_eq!(prompts[1].conversation.turns.len(), 3);
    assert_eq!(prompts[1].conversation.turns[2].value, "Have a nice day!");
    assert_eq!(report.conversations, 3);
    let (first, _) =
        read_prompts(&prompts_file(dir.path()), Some(1), ReadOptions::default()).unwrap();
    assert_eq!(
        first.len(),
        3,
        "only the first reply of c1 with first_replies = 1"
    );
}

#[test]
fn samples_equal_generation_alone_and_a_resumed_run_writes_each_once() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let (prompts, _) =
        read_prompts(&prompts_file(dir.path()), None, ReadOptions::default()).unwrap();
    let whole = dir.path().join("whole.jsonl");
    let summary = sampler(&s)
        .run(&prompts, &spec(), LocalOptions::default(), &whole, |_| {})
        .unwrap();
    assert_eq!((summary.sampled_prompts, summary.responses), (4, 12));
    let expected = records(&whole);

    // Each record is what `generate` gives its prompt alone (EOS dropped, text decoded).
    let eos = s.model.config().eos_token_ids.clone();
    for p in &prompts {
        let text = ChatTemplate::VicunaV11.prompt_text(&p.conversation);
        let (ids, _) = s.tokenizer.encode_with_offsets(&text).unwrap();
        let config = GenerationConfig {
            sampling: spec().sampling(0),
            max_new_tokens: 12,
            num_samples: 3,
            stop_ids: eos.clone(),
            seed: 11,
            // The sampler mixes each prompt's id into its seed.
            prompt_seeds: vec![xwin_model::text_seed(&p.id)],
            ..GenerationConfig::default()
        };
        let alone = generate(&s.model, &[ids], &config, &s.device).unwrap();
        let record: ResponseSamples = serde_json::from_value(expected[&p.id].clone()).unwrap();
        for (k, tokens) in alone[0].iter().enumerate() {
            let finished = tokens.last().is_some_and(|t| eos.contains(t));
            let body = &tokens[..tokens.len() - usize::from(finished)];
            let text = s.tokenizer.decode(body, true).unwrap();
            assert_eq!(
                record.responses[k].text,
                text.trim_start(),
                "{} sample {k}",
                p.id
            );
            assert_eq!(record.responses[k].finished, finished);
        }
    }

    // Interrupted after two prompts (a kill between lines), then the same command.
    let cut = dir.path().join("cut.jsonl");
    sampler(&s)
        .run(
            &prompts[..2],
            &spec(),
            LocalOptions::default(),
            &cut,
            |_| {},
        )
        .unwrap();
    let again = sampler(&s)
        .run(&prompts, &spec(), LocalOptions::default(), &cut, |_| {})
        .unwrap();
    assert_eq!((again.already_done, again.sampled_prompts), (2, 2));
    assert_eq!(records(&cut), expected);
    // A third run has nothing left to do.
    let done = sampler(&s)
        .run(&prompts, &spec(), LocalOptions::default(), &cut, |_| {})
        .unwrap();
    assert_eq!((done.already_done, done.sampled_prompts), (4, 0));
}

#[test]
fn pairs_are_what_the_judge_reads() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let (prompts, _) =
        read_prompts(&prompts_file(dir.path()), None, ReadOptions::default()).unwrap();
    let out = dir.path().join("pairs.jsonl");
    let spec = SampleSpec::pairs(10, 3);
    sampler(&s)
        .run(&prompts, &spec, LocalOptions::default(), &out, |_| {})
        .unwrap();
    let (pairs, report) = xwin_annotate::read_pair_inputs(&out, ReadOptions::default()).unwrap();
    assert_eq!((pairs.len(), report.skipped), (4, 0));
    let schema_path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data-schemas/sampled-pair.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_path).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for (line, pair) in std::fs::read_to_string(&out).unwrap().lines().zip(&pairs) {
        let value: serde_json::Value = serde_json::from_str(line).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}");
        let v: xwin_rs::SampledPair = serde_json::from_value(value).unwrap();
        assert_eq!(v.responses[0].sampling.temperature, 0.7);
        assert_eq!(v.responses[1].sampling.temperature, 0.3);
        assert_eq!(pair.response_a, v.responses[0].text);
        assert_eq!(pair.response_b, v.responses[1].text);
        assert_eq!(pair.prompt, v.prompt);
    }
}

#[test]
fn bad_input_is_named_and_nothing_is_written() {
    let s = setup();
    let dir = tempfile::tempdir().unwrap();
    let long = Prompt {
        id: "long-one".into(),
        conversation: xwin_data::Conversation::new(vec![xwin_data::Turn::human(
            "word ".repeat(400),
        )]),
    };
    let (mut prompts, _) =
        read_prompts(&prompts_file(dir.path()), None, ReadOptions::default()).unwrap();
    prompts.push(long);
    let out = dir.path().join("out.jsonl");
    let err = sampler(&s)
        .run(&prompts, &spec(), LocalOptions::default(), &out, |_| {})
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, RsError::Prompt { .. }), "{text}");
    assert!(
        text.contains("long-one") && text.contains("context of 256"),
        "{text}"
    );
    assert_eq!(std::fs::read_to_string(&out).unwrap_or_default(), "");

    // With skip_long it is recorded as a failure and the rest is sampled.
    let options = LocalOptions {
        skip_long: true,
        ..LocalOptions::default()
    };
    let summary = sampler(&s)
        .run(&prompts, &spec(), options, &out, |_| {})
        .unwrap();
    assert_eq!((summary.sampled_prompts, summary.too_long), (4, 1));
    let failures = std::fs::read_to_string(xwin_rs::failures_path(&out)).unwrap();
    assert!(failures.contains("long-one"), "{failures}");

    let zero = SampleSpec { n: 0, ..spec() };
    let err = sampler(&s)
        .run(
            &prompts,
            &zero,
            LocalOptions::default(),
            &dir.path().join("z.jsonl"),
            |_| {},
        )
        .unwrap_err();
    assert!(err.to_string().contains("n must be at least 1"), "{err}");
}
