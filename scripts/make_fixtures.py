"""Make extra Hugging Face reference fixtures for xwin-model's parity tests.

Each variant is a tiny random LlamaForCausalLM saved with `save_pretrained` plus an
`expected.json` with logits, greedy continuations and span log-probs computed by
`transformers` in float32 (eager attention). Run: python3 scripts/make_fixtures.py
(needs torch and transformers; writes fixtures/gen/<variant>/).
"""
import json
import os
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gen")

VARIANTS = {
    # Tied embeddings, plain multi-head attention, Llama-3 style theta, 4.x config layout.
    "tied-mha-theta500k": dict(
        config=dict(vocab_size=300, hidden_size=48, intermediate_size=128, num_hidden_layers=3,
                    num_attention_heads=3, num_key_value_heads=3, rope_theta=500000.0,
                    tie_word_embeddings=True, rms_norm_eps=1e-6, max_position_embeddings=128),
        layout="4.x", dtype=torch.float32, shard=None),
    # Llama-3.1 rope scaling, GQA 8:2, head_dim 8, bf16 weights in shards with an index file.
    "llama3-rope-gqa-bf16-sharded": dict(
        config=dict(vocab_size=256, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                    num_attention_heads=8, num_key_value_heads=2, rope_theta=500000.0,
                    rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                      high_freq_factor=4.0, original_max_position_embeddings=16),
                    tie_word_embeddings=False, rms_norm_eps=1e-5, max_position_embeddings=128),
        layout="5.x", dtype=torch.bfloat16, shard="60KB"),
}


def randomize_norms(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))


def to_legacy_config(path):
    """Rewrite config.json as transformers 4.x does: top-level rope_theta/rope_scaling."""
    with open(path) as f:
        cfg = json.load(f)
    params = cfg.pop("rope_parameters", None) or {}
    cfg["rope_theta"] = params.get("rope_theta", 10000.0)
    scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    cfg["rope_scaling"] = None if scaling.get("rope_type", "default") == "default" else scaling
    cfg.pop("head_dim", None)
    cfg["torch_dtype"] = cfg.pop("dtype", "float32")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def main():
    for index, (name, spec) in enumerate(VARIANTS.items()):
        out = os.path.join(OUT, name)
        os.makedirs(out, exist_ok=True)
        gen = torch.Generator().manual_seed(1000 + index)
        torch.manual_seed(index)
        cfg = LlamaConfig(bos_token_id=1, eos_token_id=2, initializer_range=0.1,
                          attn_implementation="eager", **spec["config"])
        model = LlamaForCausalLM(cfg)
        randomize_norms(model, gen)
        model.to(spec["dtype"])
        kwargs = {"max_shard_size": spec["shard"]} if spec["shard"] else {}
        model.save_pretrained(out, **kwargs)
        if spec["layout"] == "4.x":
            to_legacy_config(os.path.join(out, "config.json"))
        # Reference numbers in float32 from exactly the saved (possibly bf16-rounded) weights.
        model = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").eval()
        vocab = cfg.vocab_size
        ids = torch.randint(3, vocab, (2, 10), generator=gen)
        ids[:, 0] = 1
        with torch.no_grad():
            logits = model(ids).logits
            greedy = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=None,
                                    pad_token_id=0, attention_mask=torch.ones_like(ids))
            logp = torch.log_softmax(logits, -1)
            start = 4
            per_token = [[logp[b, t - 1, ids[b, t]].item() for t in range(start, ids.shape[1])]
                         for b in range(ids.shape[0])]
            # A left-padded batch through generate: rows must equal their unpadded runs.
            short = ids[1, :6]
            padded = torch.stack([ids[0], torch.cat([torch.zeros(4, dtype=ids.dtype), short])])
            mask = torch.stack([torch.ones(10, dtype=torch.long),
                                torch.cat([torch.zeros(4, dtype=torch.long), torch.ones(6, dtype=torch.long)])])
            padded_greedy = model.generate(padded, attention_mask=mask, max_new_tokens=8, do_sample=False,
                                           eos_token_id=None, pad_token_id=0)
        expected = {
            "generator": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, float32, eager",
            "config_layout": spec["layout"],
            "saved_dtype": str(spec["dtype"]),
            "input_ids": ids.tolist(),
            "logits": [[[round(x, 6) for x in row] for row in seq] for seq in logits.tolist()],
            "greedy_new_tokens": greedy[:, ids.shape[1]:].tolist(),
            "span": {"start": start, "per_token": per_token, "sum": [sum(r) for r in per_token]},
            "left_padded": {"prompts": [ids[0].tolist(), short.tolist()],
                            "new_tokens": padded_greedy[:, 10:].tolist()},
        }
        with open(os.path.join(out, "expected.json"), "w") as f:
            json.dump(expected, f)
        print(name, "->", out, file=sys.stderr)


if __name__ == "__main__":
    main()
