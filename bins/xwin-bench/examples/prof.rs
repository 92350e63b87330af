use burn::tensor::{Device, Distribution, Tensor};
use std::time::Instant;
use xwin_model::*;
fn main() {
    let device = Device::flex();
    let config = LlamaConfig {
        vocab_size: 32000,
        hidden_size: 256,
        intermediate_size: 688,
        num_hidden_layers: 6,
        num_attention_heads: 8,
        num_key_value_heads: 8,
        head_dim: 32,
        ..LlamaConfig::llama2_7b()
    };
    let model = LlamaForCausalLM::random(&config, &device);
    let ids: Vec<Vec<u32>> = (0..4)
        .map(|b| {
            (0..256)
                .map(|t| ((b * 7 + t * 13) % 31000 + 3) as u32)
                .collect()
        })
        .collect();
    let layout = BatchLayout::contiguous(4, 256, 0);
    for _ in 0..3 {
        let t0 = Instant::now();
        let t = model.ids_tensor(&ids, &device).unwrap();
        let h = model.hidden_states(t, &layout, None);
        let hv = h.clone().try_into_vec_as::<f32>().unwrap();
        let t1 = Instant::now();
        let l = model.lm_logits(h);
        let _ = l.clone().sum().try_into_vec_as::<f32>().unwrap();
        let t2 = Instant::now();
        let _v = l.try_into_vec_as::<f32>().unwrap();
        let t3 = Instant::now();
        println!(
            "hidden {:?} head {:?} readback {:?} {}",
            t1 - t0,
            t2 - t1,
            t3 - t2,
            hv.len()
        );
    }
    let a = Tensor::<2>::random([1024, 256], Distribution::Default, &device);
    let w = Tensor::<2>::random([256, 32000], Distribution::Default, &device);
    for _ in 0..3 {
        let t = Instant::now();
        let _ = a.clone().matmul(w.clone()).sum().try_into_vec_as::<f32>();
        println!("matmul 1024x256x32000 {:?}", t.elapsed());
    }
    let a3 = Tensor::<3>::random([4, 256, 256], Distribution::Default, &device);
    for _ in 0..3 {
        let t = Instant::now();
        let _ = burn::tensor::module::linear(a3.clone(), w.clone(), None)
            .sum()
            .try_into_vec_as::<f32>();
        println!("linear3d {:?}", t.elapsed());
    }
}
