//! Where a training step's time goes: the whole step split into forward, backward and AdamW,
//! and the step's kernels timed alone at the step's shapes (attention, the MLP's matmul,
//! RMSNorm, the LM head's log-softmax loss, composite and fused), each forward and
//! forward+backward. `scripts/bench_train_ops_torch.py` times the same list in PyTorch, so
//! each kernel has its own ratio.

use crate::{bench_config, full_loss_batch, median, time, train_step_seconds};
use burn::module::Module;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Distribution, Int, Tensor, activation::log_softmax};
use serde_json::{Map, Value, json};
use xwin_model::LlamaForCausalLM;

fn entry(seconds: f64, tokens: usize) -> Value {
    json!({ "median_s": seconds, "tokens_per_s": tokens as f64 / seconds })
}

fn rand<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 0.5), device).require_grad()
}

/// Times the step and its kernels for `batch × seq` tokens; JSON object of `{median_s, tokens_per_s}`.
pub fn train_ops(batch: usize, seq: usize, repeats: usize, device: &Device) -> Value {
    let device = device.clone().autodiff();
    let config = bench_config();
    let tokens = batch * seq;
    let (h, heads, hd) = (
        config.hidden_size,
        config.num_attention_heads,
        config.head_dim,
    );
    let sync = || device.sync().expect("sync");
    let mut out = Map::new();

    // The whole step, split.
    let model = LlamaForCausalLM::random(&config, &device);
    let data = full_loss_batch(batch, seq, config.vocab_size);
    let loss = || xwin_train::sft_loss(&model, &data, &device).expect("loss");
    // The forward alone, without a graph: a tracked forward whose graph is never consumed by a
    // backward keeps burn's autodiff bookkeeping alive and would time that instead.
    let frozen = model.valid();
    let plain = device.clone().inner();
    let fwd = median(time(repeats, || {
        let l = xwin_train::sft_loss(&frozen, &data, &plain).expect("loss");
        let _ = l.into_scalar::<f32>();
    }));
    let fwd_bwd = median(time(repeats, || {
        let _ = loss().backward();
        sync();
    }));
    let step = train_step_seconds(model.clone(), &data, &device, repeats);
    out.insert("step_forward_untracked".into(), entry(fwd, tokens));
    out.insert("step_forward_backward".into(), entry(fwd_bwd, tokens));
    out.insert("step_full".into(), entry(step, tokens));
    // Times one kernel: median of `repeats` after a warm-up, synchronised.
    let mut put = |name: &str, f: &mut dyn FnMut()| {
        let seconds = median(time(repeats, || {
            f();
            sync();
        }));
        out.insert(name.into(), entry(seconds, tokens));
    };

    // Kernels at the step's shapes (per layer; the model has `num_hidden_layers` of each).
    let q = rand([batch, heads, seq, hd], &device);
    let k = rand([batch, heads, seq, hd], &device);
    let v = rand([batch, heads, seq, hd], &device);
    let causal = AttentionModuleOptions {
        is_causal: true,
        ..Default::default()
    };
    let burn_attn = || attention(q.clone(), k.clone(), v.clone(), None, None, causal);
    let composite =
        || xwin_model::attention::causal_attention_tracked(q.clone(), k.clone(), v.clone(), None);
    // What the model runs on the CPU (xwin_model::cpu_ops), beside PyTorch's SDPA under
    // the same names; burn's own attention and our composite for comparison.
    let ones = Tensor::<2>::ones([batch, seq], &device);
    let fused = || {
        xwin_model::cpu_ops::fused_causal_attention(q.clone(), k.clone(), v.clone(), ones.clone())
    };
    let plain = device.clone().inner();
    let untracked = |t: &Tensor<4>| t.clone().detach().to_device(&plain);
    let (uq, uk, uv) = (untracked(&q), untracked(&k), untracked(&v));
    let uones = Tensor::<2>::ones([batch, seq], &plain);
    if xwin_model::cpu_ops::fused_ops_apply(&device, q.dtype()) {
        put("attention_forward", &mut || {
            let out = xwin_model::cpu_ops::fused_causal_attention(
                uq.clone(),
                uk.clone(),
                uv.clone(),
                uones.clone(),
            );
            let _ = out.into_data();
        });
        put("attention_forward_backward", &mut || {
            let _ = fused().sum().backward();
        });
    }
    put("attention_burn_forward_backward", &mut || {
        let _ = burn_attn().sum().backward();
    });
    put("attention_composite_forward_backward", &mut || {
        let _ = composite().sum().backward();
    });

    let x = rand([tokens, h], &device);
    let w = rand([h, config.intermediate_size], &device);
    let mm = || x.clone().matmul(w.clone());
    put("mlp_matmul_forward", &mut || {
        let _ = mm();
    });
    put("mlp_matmul_forward_backward", &mut || {
        let _ = mm().sum().backward();
    });

    let gamma = rand([h], &device);
    let norm = || {
        let var = x.clone().square().mean_dim(1);
        x.clone() * (var + 1e-5).sqrt().recip() * gamma.clone().unsqueeze::<2>()
    };
    put("rmsnorm_forward_backward", &mut || {
        let _ = norm().sum().backward();
    });

    // LM head + next-token loss: matmul to the vocabulary, log-softmax, gather, mean.
    let head = rand([h, config.vocab_size], &device);
    let targets: Tensor<2, Int> = Tensor::<1, Int>::from_ints(
        &(0..tokens)
            .map(|i| ((i * 104_729) % config.vocab_size) as i64)
            .collect::<Vec<_>>()[..],
        &device,
    )
    .reshape([tokens, 1]);
    let head_loss = |with_matmul: bool, logits: &Tensor<2>| {
        let logits = if with_matmul {
            x.clone().matmul(head.clone())
        } else {
            logits.clone()
        };
        log_softmax(logits, 1)
            .gather(1, targets.clone())
            .mean()
            .neg()
    };
    let logits = rand([tokens, config.vocab_size], &device);
    put("log_softmax_loss_forward_backward", &mut || {
        let _ = head_loss(false, &logits).backward();
    });
    put("lm_head_loss_forward_backward", &mut || {
        let _ = head_loss(true, &logits).backward();
    });
    // The fused path the SFT loss uses (crate::fused_loss): same work, one pass per row.
    let hidden = rand([batch, seq, h], &device);
    let mask = vec![vec![true; seq]; batch];
    put("lm_head_loss_fused_forward_backward", &mut || {
        let l =
            xwin_model::lm_head_nll_mean(&model, hidden.clone(), &data.ids, &mask).expect("loss");
        let _ = l.backward();
    });
    Value::Object(out)
}
