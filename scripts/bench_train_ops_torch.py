"""PyTorch reference for `xwin-bench train-ops`: the training step split (forward,
forward+backward, full step with AdamW) and its kernels timed alone at the step's shapes,
under the same names. Prints one JSON line."""
import json

import torch
import torch.nn.functional as F

from bench_common import timed
from bench_infer_torch import config
from bench_train_torch import step_args, training_step


def main():
    a = step_args()
    cfg = config()
    n = a.batch * a.seq
    h, heads, hd, vocab = cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim, cfg.vocab_size
    out = {"impl": f"torch {torch.__version__}", "batch": a.batch, "seq": a.seq}

    def put(name, fn):
        s = timed(a.repeats, fn)
        out[name] = {"median_s": s, "tokens_per_s": n / s}

    model, ids, step = training_step(a.batch, a.seq)

    def fwd_bwd():
        model(input_ids=ids, labels=ids).loss.backward()
        model.zero_grad(set_to_none=True)

    def fwd():
        with torch.no_grad():
            model(input_ids=ids, labels=ids).loss.item()

    put("step_forward_untracked", fwd)
    put("step_forward_backward", fwd_bwd)
    put("step_full", step)

    rand = lambda *shape: (torch.randn(*shape) * 0.5).requires_grad_()
    q, k, v = (rand(a.batch, heads, a.seq, hd) for _ in range(3))
    with torch.no_grad():
        put("attention_forward", lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True))
    put("attention_forward_backward",
        lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True).sum().backward())
    x, w = rand(n, h), rand(h, cfg.intermediate_size)
    with torch.no_grad():
        put("mlp_matmul_forward", lambda: x @ w)
    put("mlp_matmul_forward_backward", lambda: (x @ w).sum().backward())
    gamma = rand(h)
    put("rmsnorm_forward_backward",
        lambda: (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * gamma).sum().backward())
    head = rand(h, vocab)
    targets = torch.tensor([(i * 104729) % vocab for i in range(n)])
    logits = rand(n, vocab)
    put("log_softmax_loss_forward_backward",
        lambda: F.cross_entropy(logits, targets).backward())
    put("lm_head_loss_forward_backward",
        lambda: F.cross_entropy(x @ head, targets).backward())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
