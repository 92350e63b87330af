//! Tokenization: exact ids on the SentencePiece/llama.cpp Llama-2 vectors and the fixture's
//! byte-level BPE examples; decode round-trips.

mod common;

use common::*;
use xwin_model::Tokenizer;

#[test]
fn llama2_ids_are_exact_on_all_46_sentencepiece_vectors() {
    let Some(tokenizer_path) = xwin_testkit::shared_data("data/tokenizers/llama2/tokenizer.json")
    else {
        return;
    };
    let dir = tokenizer_path.parent().unwrap();
    let tok = Tokenizer::from_file(&tokenizer_path).unwrap();
    let inputs = std::fs::read_to_string(dir.join("llamacpp_vocab_test.inp")).unwrap();
    let outputs = std::fs::read_to_string(dir.join("llamacpp_vocab_test.out")).unwrap();
    let mut texts: Vec<&str> = inputs.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let expected: Vec<Vec<u32>> = outputs
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(texts.len(), 46);
    assert_eq!(expected.len(), 46);
    for (text, want) in texts.iter().zip(&expected) {
        assert_eq!(&tok.encode(text, false).unwrap(), want, "text {text:?}");
    }
    // With BOS, the well-known reference encoding.
    assert_eq!(
        tok.encode("Hello, my dog is cute", true).unwrap(),
        vec![1, 15043, 29892, 590, 11203, 338, 274, 1082]
    );
    assert_eq!(tok.token_id("</s>"), Some(2));
    assert_eq!(tok.vocab_size(), 32000);
}

#[test]
fn llama2_decode_round_trips() {
    let Some(path) = xwin_testkit::shared_data("data/tokenizers/llama2/tokenizer.json") else {
        return;
    };
    let tok = Tokenizer::from_file(&path).unwrap();
    for text in [
        "Hello world",
        "USER: Hi! ASSISTANT: Hello.",
        "Äpfel 🦙 北京 3.14",
        "tabs\tand\nnewlines",
    ] {
        let ids = tok.encode(text, true).unwrap();
        assert_eq!(tok.decode(&ids, true).unwrap(), text);
    }
}

#[test]
fn fixture_byte_level_bpe_examples_are_exact() {
    let dir = fixtures().join("tiny-llama");
    let tok = Tokenizer::from_file(&dir).unwrap();
    let exp = expected(&dir);
    let examples = exp["tokenizer"]["examples"].as_array().unwrap();
    assert!(!examples.is_empty());
    for ex in examples {
        let text = ex["text"].as_str().unwrap();
        let want: Vec<u32> = serde_json::from_value(ex["ids"].clone()).unwrap();
        let want_bos: Vec<u32> = serde_json::from_value(ex["ids_with_bos"].clone()).unwrap();
        assert_eq!(tok.encode(text, false).unwrap(), want, "{text:?}");
        assert_eq!(tok.encode(text, true).unwrap(), want_bos, "{text:?}");
        assert_eq!(
            tok.decode(&want_bos, true).unwrap(),
            ex["decoded"].as_str().unwrap()
        );
    }
}

#[test]
fn missing_tokenizer_file_is_named() {
    let err = Tokenizer::from_file("/nonexistent/tokenizer.json")
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("/nonexistent/tokenizer.json"),
        "{err}"
    );
}
