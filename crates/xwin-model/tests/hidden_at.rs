//! `LlamaModel::hidden_at` (the reward model's path: the last layer's MLP only at the pooled
//! positions) equals the full forward read at those positions, values and gradients, with
//! grouped KV heads and left and right padding.

use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use xwin_model::{BatchLayout, LlamaConfig, LlamaForCausalLM};
use xwin_testkit::assert_close;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.try_into_vec_as::<f32>().unwrap()
}

#[test]
fn hidden_at_equals_the_full_forward_read_at_those_positions() {
    let device = Device::flex().autodiff();
    let config = LlamaConfig {
        vocab_size: 97,
        hidden_size: 48,
        intermediate_size: 80,
        num_hidden_layers: 3,
        num_attention_heads: 6,
        num_key_value_heads: 2,
        head_dim: 8,
        max_position_embeddings: 64,
        ..LlamaConfig::llama2_7b()
    };
    let model = LlamaForCausalLM::random(&config, &device).model;
    let seq = 21;
    // Row 0 full, row 1 right-padded (last real token 12), row 2 left-padded by 5.
    let attention: Vec<Vec<bool>> = vec![
        vec![true; seq],
        (0..seq).map(|t| t <= 12).collect(),
        (0..seq).map(|t| t >= 5).collect(),
    ];
    let ids: Vec<Vec<u32>> = (0..3)
        .map(|r| {
            (0..seq)
                .map(|t| ((r * 31 + t * 17) % 94 + 3) as u32)
                .collect()
        })
        .collect();
    // Each row's last real token and, for row 0, an earlier one too.
    let rows: Vec<i64> = vec![20, 12, seq as i64 + 12, 2 * seq as i64 + 20];
    let layout = BatchLayout::from_attention_mask(&attention).unwrap();
    let tensor = || {
        let flat: Vec<i64> = ids.iter().flatten().map(|&t| t as i64).collect();
        Tensor::<2, Int>::from_data(TensorData::new(flat, [3, seq]), &device)
    };
    let index = || Tensor::<1, Int>::from_data(TensorData::new(rows.clone(), [4]), &device);
    // A fixed projection so every hidden element carries gradient.
    let probe = Tensor::<2>::random([48, 1], Distribution::Normal(0.0, 1.0), &device);

    let picked = model.hidden_at(tensor(), &layout, index());
    let full = model
        .forward(tensor(), &layout, None)
        .reshape([3 * seq, 48])
        .select(0, index());
    assert_close(
        "hidden at positions",
        &host(picked.clone()),
        &host(full.clone()),
        1e-5,
    );

    let g1 = picked.matmul(probe.clone()).sum().backward();
    let g2 = full.matmul(probe).sum().backward();
    let last = &model.layers[2];
    let first = &model.layers[0];
    for (name, param) in [
        ("embedding", &model.embed_tokens.weight),
        ("last down_proj", &last.mlp.down_proj.weight),
        ("last q_proj", &last.self_attn.q_proj.weight),
        ("first k_proj", &first.self_attn.k_proj.weight),
    ] {
        let (ours, theirs) = (
            host(param.grad(&g1).unwrap()),
            host(param.grad(&g2).unwrap()),
        );
        assert!(ours.iter().any(|g| *g != 0.0), "{name}: no gradient");
        assert_close(name, &ours, &theirs, 1e-5);
    }
    let gamma = &model.norm.gamma;
    let (ours, theirs) = (
        host(gamma.grad(&g1).unwrap()),
        host(gamma.grad(&g2).unwrap()),
    );
    assert_close("final norm", &ours, &theirs, 1e-5);
}
