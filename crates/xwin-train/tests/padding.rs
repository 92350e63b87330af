//! `batching.pad_to_multiple_of` changes shapes, not results: SFT losses and gradients of
//! micro-batches padded to a multiple of 16 equal those padded to the longest row, on a
//! random tiny Llama (GQA), over several micro-batches.

use burn::tensor::{Device, Tensor};
use xwin_data::TokenizedConversation;
use xwin_model::{LlamaConfig, LlamaForCausalLM};
use xwin_testkit::assert_close;
use xwin_train::sft::BatchingSection;
use xwin_train::{micro_batches, sft_loss_sum};

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

#[test]
fn padding_to_a_multiple_leaves_losses_and_gradients_unchanged() {
    let device = Device::flex().autodiff();
    let config = LlamaConfig {
        vocab_size: 101,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        max_position_embeddings: 128,
        ..LlamaConfig::llama2_7b()
    };
    let model = LlamaForCausalLM::random(&config, &device);
    let blocks: Vec<TokenizedConversation> = [5usize, 9, 13, 17, 22, 30, 31]
        .iter()
        .enumerate()
        .map(|(r, &n)| TokenizedConversation {
            ids: (0..n)
                .map(|t| ((r * 37 + t * 11) % 98 + 3) as u32)
                .collect(),
            mask: (0..n).map(|t| t >= n / 3).collect(),
            round_starts: vec![0],
        })
        .collect();
    let batching = |multiple| BatchingSection {
        epochs: 1,
        micro_batch_size: 3,
        max_batch_tokens: 1 << 16,
        seed: 0,
        pad_to_multiple_of: multiple,
    };
    let plain = micro_batches(&blocks, &batching(None), 0);
    let rounded = micro_batches(&blocks, &batching(Some(16)), 0);
    assert_eq!(plain.len(), rounded.len());
    assert!(plain.len() >= 3, "several micro-batches");
    assert!(rounded.iter().all(|b| b.seq_len() % 16 == 0));
    assert!(
        plain.iter().any(|b| b.seq_len() % 16 != 0),
        "some width actually changes"
    );
    let total = |batches: &[xwin_data::Batch]| {
        let sums: Vec<Tensor<1>> = batches
            .iter()
            .map(|b| sft_loss_sum(&model, b, &device).unwrap())
            .collect();
        let values: Vec<f32> = sums.iter().map(|s| host(s.clone())[0]).collect();
        (values, Tensor::cat(sums, 0).sum())
    };
    let (v1, t1) = total(&plain);
    let (v2, t2) = total(&rounded);
    assert_close("per-batch loss sums", &v2, &v1, 1e-5);
    let (g1, g2) = (t1.backward(), t2.backward());
    let layer = &model.model.layers[1];
    for (name, param) in [
        ("embedding", &model.model.embed_tokens.weight),
        ("k_proj", &layer.self_attn.k_proj.weight),
        ("down_proj", &layer.mlp.down_proj.weight),
    ] {
        let (a, b) = (
            host(param.grad(&g2).unwrap()),
            host(param.grad(&g1).unwrap()),
        );
        assert!(b.iter().any(|g| *g != 0.0), "{name}: no gradient");
        assert_close(name, &a, &b, 1e-5);
    }
}
