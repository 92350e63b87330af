"""Python reference for `xwin-bench data`: the same Vicuna v1.1 rendering, HF `tokenizers`
encode with offsets and the same loss mask, over a ShareGPT file. Prints one JSON line."""
import argparse
import json

from tokenizers import Tokenizer

from bench_common import timed

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")


def render(conv):
    text, replies = "<s>" + SYSTEM, []
    for i, turn in enumerate(conv["conversations"]):
        if turn["from"] == "human":
            text += (" " if i == 0 else "") + "USER: " + turn["value"] + " ASSISTANT:"
        else:
            start = len(text.encode())
            text += " " + turn["value"] + "</s>"
            replies.append((start, len(text.encode())))
    return text, replies


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--file", default="../shared/data/sft/fastchat_dummy_conversation.json")
    p.add_argument("--tokenizer", default="../shared/data/tokenizers/llama2/tokenizer.json")
    a = p.parse_args()
    tok = Tokenizer.from_file(a.tokenizer)
    convs = json.load(open(a.file))
    tokens = 0

    def run():
        nonlocal tokens
        tokens = 0
        for c in convs:
            text, replies = render(c)
            enc = tok.encode(text, add_special_tokens=False)
            mask = [any(s <= (b if b != e else e) < t for s, t in replies) for b, e in enc.offsets]
            tokens += len(mask)
    s = timed(a.repeats, run)
    print(json.dumps({"impl": "python tokenizers (Rust core), offsets + mask", "conversations": len(convs),
                      "tokens": tokens, "median_s": s,
                      "template_tokenize": {"tokens_per_s": tokens / s, "conversations_per_s": len(convs) / s}}))


if __name__ == "__main__":
    main()
