//! `config.json` parsing in both transformers layouts, presets and config errors.

use serde_json::json;
use std::path::Path;
use xwin_model::{LlamaConfig, RopeScaling};

fn parse(value: serde_json::Value) -> Result<LlamaConfig, String> {
    LlamaConfig::from_json(&value, Path::new("test/config.json")).map_err(|e| e.to_string())
}

fn base() -> serde_json::Value {
    json!({
        "model_type": "llama", "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 11008,
        "num_hidden_layers": 32, "num_attention_heads": 32, "rms_norm_eps": 1e-5,
        "bos_token_id": 1, "eos_token_id": 2, "max_position_embeddings": 4096
    })
}

#[test]
fn real_llama2_7b_config_in_4x_layout() {
    // The meta-llama/Llama-2-7b-hf config: no rope_theta (= 10000), no head_dim, no kv heads.
    let mut v = base();
    v["torch_dtype"] = json!("float16");
    v["rope_scaling"] = json!(null);
    let c = parse(v).unwrap();
    assert_eq!(c, LlamaConfig::llama2_7b());
    assert_eq!(c.head_dim, 128);
    assert_eq!(c.num_key_value_heads, 32);
    // 6,738,415,616 parameters, as HF reports for Llama-2-7b.
    assert_eq!(c.num_parameters(), 6_738_415_616);
    assert_eq!(LlamaConfig::llama2_13b().num_parameters(), 13_015_864_320);
    assert_eq!(LlamaConfig::llama2_70b().num_parameters(), 68_976_648_192);
}

#[test]
fn both_layouts_give_the_same_config() {
    let mut legacy = base();
    legacy["rope_theta"] = json!(500000.0);
    legacy["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
    let mut modern = base();
    modern["rope_parameters"] = json!({"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
        "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
    let (a, b) = (parse(legacy).unwrap(), parse(modern).unwrap());
    assert_eq!(a, b);
    assert_eq!(a.rope_theta, 500000.0);
    assert!(matches!(
        a.rope_scaling,
        RopeScaling::Llama3 { factor: 8.0, .. }
    ));
    // And what we write reads back the same.
    assert_eq!(parse(a.to_json()).unwrap(), a);
}

#[test]
fn eos_list_and_gqa() {
    let mut v = base();
    v["eos_token_id"] = json!([2, 32000]);
    v["num_key_value_heads"] = json!(8);
    let c = parse(v).unwrap();
    assert_eq!(c.eos_token_ids, vec![2, 32000]);
    assert_eq!(c.num_key_value_heads, 8);
}

#[test]
fn errors_name_the_field() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            {
                let mut v = base();
                v["model_type"] = json!("mistral");
                v
            },
            "field `model_type`: `mistral` is not supported",
        ),
        (
            {
                let mut v = base();
                v.as_object_mut().unwrap().remove("hidden_size");
                v
            },
            "field `hidden_size`: required field is missing",
        ),
        (
            {
                let mut v = base();
                v["vocab_size"] = json!("32000");
                v
            },
            "field `vocab_size`: expected a non-negative integer",
        ),
        (
            {
                let mut v = base();
                v["num_key_value_heads"] = json!(5);
                v
            },
            "field `num_key_value_heads`: 5 does not divide",
        ),
        (
            {
                let mut v = base();
                v["rope_scaling"] = json!({"type": "yarn", "factor": 4.0});
                v
            },
            "field `rope_scaling.rope_type`: `yarn` is not supported",
        ),
        (
            {
                let mut v = base();
                v["rope_theta"] = json!(10000.0);
                v["rope_parameters"] = json!({"rope_type": "default", "rope_theta": 500000.0});
                v
            },
            "field `rope_theta`: top-level value 10000 contradicts rope_parameters.rope_theta 500000",
        ),
        (
            {
                let mut v = base();
                v["rope_parameters"] = json!({"rope_type": "llama3", "factor": 8.0});
                v
            },
            "field `rope_parameters.original_max_position_embeddings`: required for rope_type `llama3`",
        ),
        (
            {
                let mut v = base();
                v["hidden_act"] = json!("gelu");
                v
            },
            "field `hidden_act`",
        ),
        (
            {
                let mut v = base();
                v["attention_bias"] = json!(true);
                v
            },
            "field `attention_bias`",
        ),
    ];
    for (value, want) in cases {
        let msg = parse(value).unwrap_err();
        assert!(msg.starts_with("test/config.json: "), "{msg}");
        assert!(msg.contains(want), "expected `{want}` in `{msg}`");
    }
}

#[test]
fn presets_by_name() {
    assert_eq!(LlamaConfig::preset("7b"), Some(LlamaConfig::llama2_7b()));
    assert_eq!(
        LlamaConfig::preset("llama2-70b")
            .unwrap()
            .num_key_value_heads,
        8
    );
    assert_eq!(LlamaConfig::preset("8b"), None);
}
